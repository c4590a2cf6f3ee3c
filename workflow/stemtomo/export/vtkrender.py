"""Fallback render of an export folder with PyPI vtk (offscreen, EGL), styled like scene.py.
Run as its own process (python -m stemtomo.export.vtkrender FOLDER PNG W H [FRAMES]): PyPI vtk must never
share a process with ParaView's VTK. FRAMES turntable views (PNG_000.png, ...) at half size follow,
as scene.py writes them."""

from __future__ import annotations

import sys
from pathlib import Path


def render_folder(folder: Path, png: Path, size: tuple[int, int], turntable: int = 0) -> None:
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL render window)
    from vtkmodules.vtkIOImage import vtkPNGWriter
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader
    from vtkmodules.vtkRenderingCore import (
        vtkActor,
        vtkPolyDataMapper,
        vtkRenderer,
        vtkRenderWindow,
        vtkWindowToImageFilter,
    )

    from .scene import STYLE

    renderer = vtkRenderer()
    renderer.SetBackground(1.0, 1.0, 1.0)
    for name in ("alumina", "pt"):
        reader = vtkXMLPolyDataReader()
        reader.SetFileName(str(folder / f"{name}.vtp"))
        reader.Update()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(reader.GetOutputPort())
        mapper.ScalarVisibilityOff()
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*STYLE[name]["color"])
        actor.GetProperty().SetOpacity(STYLE[name]["opacity"])
        actor.GetProperty().SetSpecular(0.6 if name == "pt" else 0.2)
        renderer.AddActor(actor)
    camera = renderer.GetActiveCamera()
    camera.SetPosition(1.0, -1.6, 1.2)  # the scene's 3/4 view
    camera.SetFocalPoint(0.0, 0.0, 0.0)
    camera.SetViewUp(0.0, 0.0, 1.0)
    renderer.ResetCamera()
    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.AddRenderer(renderer)
    window.SetSize(*size)

    def save(path: Path) -> None:
        window.Render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(window)
        grab.Update()
        writer = vtkPNGWriter()
        writer.SetFileName(str(path))
        writer.SetInputConnection(grab.GetOutputPort())
        writer.Write()

    save(png)
    window.SetSize(size[0] // 2, size[1] // 2)
    for k in range(turntable):
        camera.Azimuth(360.0 / turntable)
        save(png.with_name(f"{png.stem}_{k:03d}.png"))


if __name__ == "__main__":
    render_folder(Path(sys.argv[1]), Path(sys.argv[2]), (int(sys.argv[3]), int(sys.argv[4])),
                  int(sys.argv[5]) if len(sys.argv) > 5 else 0)
