"""stemtomo: HAADF-STEM tomography of supported catalysts, from raw tilt series to segmented 3D.

The package only imports NumPy at top level so that every rule's conda env can import it; heavy
dependencies (torch, astra, paraview) are imported inside the modules that need them.
"""

__version__ = "0.1.0"
