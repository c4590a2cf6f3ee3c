"""The napari part of the annotation helper: the volume, a labels layer in stemtomo's classes and
colours (napari's 0 = unpainted), key bindings to save and to walk the suggested slices."""

from __future__ import annotations

import numpy as np

from ..core.labels import CLASS_NAMES, CLASSES, COLOURS, IGNORE
from .session import Session

KEYS = {"s": "save into the sample's annotations", "n": "next suggested slice",
        "p": "previous suggested slice"}


def open_viewer(session: Session, show: bool = True):
    """A napari Viewer with the session's volume and labels; returns (viewer, labels layer)."""
    import napari
    from napari.utils import DirectLabelColormap

    viewer = napari.Viewer(title=f"stemtomo annotate: {session.sample}", show=show)
    lo, hi = np.percentile(session.volume, [1, 99.5])
    viewer.add_image(session.volume, name="volume", contrast_limits=(float(lo), float(hi)))
    colours = {0: (0.0, 0.0, 0.0, 0.0), None: (1.0, 0.0, 1.0, 1.0)}
    colours.update({c + 1: (*COLOURS[c], 1.0) for c in CLASSES})
    names = {IGNORE: "unpainted (unlabelled)", **{c: CLASS_NAMES[c] for c in CLASSES}}
    layer = viewer.add_labels(
        session.layer_values(), name="classes", opacity=0.5,
        colormap=DirectLabelColormap(color_dict=colours),
        features={"index": [0, *(c + 1 for c in CLASSES)],
                  "class": [names[IGNORE], *(names[c] for c in CLASSES)]})
    layer.selected_label = 1 + CLASSES[-1]  # Pt: the class that matters most
    layer.mode = "paint"
    walk = {"at": -1}

    def go(step: int) -> None:
        if session.suggestions:
            walk["at"] = (walk["at"] + step) % len(session.suggestions)
            viewer.dims.set_current_step(0, session.suggestions[walk["at"]])

    @viewer.bind_key("s", overwrite=True)
    def _save(_viewer) -> None:
        written = session.save(np.asarray(layer.data))
        viewer.status = f"saved {len(written)} slices to {session.target}"

    viewer.bind_key("n", lambda _v: go(1), overwrite=True)
    viewer.bind_key("p", lambda _v: go(-1), overwrite=True)
    go(1)
    return viewer, layer
