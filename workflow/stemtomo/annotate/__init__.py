"""The annotation helper: a sample's volume in napari with a labels layer in stemtomo's classes,
pre-filled on request with a network's prediction, opening at the slices worth annotating next,
saving into the sample's own annotation file or folder (`python -m stemtomo.annotate SAMPLE`).

`session` holds everything but the viewer (tested without napari); `viewer` is the napari part.
"""
