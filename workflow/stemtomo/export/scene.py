"""The ParaView scene of an export folder (scene.py, loading its neighbours by relative path) and
its render: ParaView's pvbatch (under xvfb-run where that is how ParaView renders), else PyPI vtk
in a child process (export.vtkrender)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..core.io import atomic_path

log = logging.getLogger("stemtomo.export")
# colours shared by the scene and the fallback render: Pt gold, alumina translucent grey-blue
# Xvfb for ParaView: 24-bit visuals, and no server reset when a client disconnects (a reset while
# pvbatch starts makes it abort with "bad X server connection": 4 of 10 renders failed so under
# load, 0 of 10 with -noreset).
XVFB = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24 -noreset"]
STYLE = {"alumina": {"color": (0.62, 0.70, 0.82), "opacity": 0.45},
         "pt": {"color": (1.0, 0.76, 0.15), "opacity": 1.0}}


def write_scene(path: Path, volume_range: tuple[float, float], turntable: int = 0) -> None:
    """scene.py: a ParaView Python state that loads its neighbours by relative path."""
    text = SCENE.format(alumina=STYLE["alumina"]["color"], alumina_opacity=STYLE["alumina"]["opacity"],
                        pt=STYLE["pt"]["color"], vmin=volume_range[0], vmax=volume_range[1],
                        turntable=turntable)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def render(scene: Path, png: Path, size: tuple[int, int] = (1200, 900), timeout: int = 600,
           turntable: int = 0) -> str:
    """Render the scene with ParaView's pvbatch (under xvfb-run where that is how ParaView renders),
    else with PyPI vtk (EGL, offscreen). Returns what rendered it. STEMTOMO_PVBATCH= (empty)
    forces the fallback; STEMTOMO_PVBATCH=/path/pvbatch picks a ParaView. `turntable` frames are
    what the scene was written with (ParaView reads them from it; the fallback is told)."""
    pvbatch = os.environ.get("STEMTOMO_PVBATCH", shutil.which("pvbatch") or "")
    args = [str(scene), "--render", str(png), "--size", str(size[0]), str(size[1])]
    if pvbatch:
        attempts = [[pvbatch, "--force-offscreen-rendering", *args]]
        if shutil.which("xvfb-run"):  # Debian's ParaView renders only with an X server
            attempts.insert(0 if not os.environ.get("DISPLAY") else 1,
                            [*XVFB, pvbatch, "--force-offscreen-rendering", *args])
        errors = []
        for cmd in attempts:
            try:  # a missing or hanging ParaView must leave the fallback its chance
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                   env={**os.environ, "PYTHONPATH": ""})
            except (OSError, subprocess.TimeoutExpired) as exc:
                errors.append(f"{' '.join(cmd[:2])}: {exc}")
                continue
            if r.returncode == 0 and png.is_file() and png.stat().st_size > 0:
                via = "xvfb-run -a " if cmd[0] == "xvfb-run" else ""
                return f"paraview ({via}{pvbatch})"
            errors.append(f"{' '.join(cmd[:2])}: exit {r.returncode}: {(r.stderr or r.stdout)[-400:]}")
        log.warning("ParaView could not render (%s); falling back to PyPI vtk", " | ".join(errors))
    else:
        log.info("ParaView (pvbatch) not found: rendering with PyPI vtk instead")
    # a separate process: this one must never hold ParaView's VTK and PyPI vtk together
    r = subprocess.run([sys.executable, "-m", "stemtomo.export.vtkrender", str(scene.parent), str(png),
                        str(size[0]), str(size[1]), str(turntable)], capture_output=True, text=True,
                       timeout=timeout,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    if r.returncode != 0 or not png.is_file():
        raise RuntimeError(f"no renderer worked: PyPI vtk: {r.stderr[-800:]}")
    return "vtk (PyPI, offscreen)"


SCENE = '''# ParaView scene written by stemtomo: File > Load State (Python state), or
#   pvpython scene.py            (interactive)
#   pvbatch scene.py --render render.png [--size 1200 900]
# Surfaces and volume are loaded from this file's folder, so the folder can be moved.
import os
import sys

from paraview.simple import (GetActiveViewOrCreate, GetColorTransferFunction,
                             GetOpacityTransferFunction, Render, ResetCamera, SaveScreenshot, Show,
                             XMLImageDataReader, XMLPolyDataReader)

try:
    HERE = os.path.dirname(os.path.abspath(__file__))
except NameError:  # some ParaView versions run a state file without __file__: use the cwd
    HERE = os.getcwd()


def path(name):
    return os.path.join(HERE, name)


view = GetActiveViewOrCreate("RenderView")
view.Background = [1.0, 1.0, 1.0]
try:  # ParaView >= 5.10 keeps the background per view only when told so
    view.UseColorPaletteForBackground = 0
except AttributeError:
    pass
view.OrientationAxesVisibility = 1

volume = XMLImageDataReader(registrationName="volume.vti", FileName=[path("volume.vti")])
vol_display = Show(volume, view)
vol_display.SetRepresentationType("Outline")  # switch to "Volume" to volume-render it
vol_display.AmbientColor = vol_display.DiffuseColor = [0.5, 0.5, 0.5]
lut = GetColorTransferFunction("density")
lut.ApplyPreset("Grayscale", True)
lut.RescaleTransferFunction({vmin}, {vmax})
GetOpacityTransferFunction("density").RescaleTransferFunction({vmin}, {vmax})

alumina = XMLPolyDataReader(registrationName="alumina.vtp", FileName=[path("alumina.vtp")])
al_display = Show(alumina, view)
al_display.DiffuseColor = al_display.AmbientColor = list({alumina})
al_display.Opacity = {alumina_opacity}
al_display.Specular = 0.2

pt = XMLPolyDataReader(registrationName="pt.vtp", FileName=[path("pt.vtp")])
pt_display = Show(pt, view)
pt_display.DiffuseColor = pt_display.AmbientColor = list({pt})
pt_display.Specular = 0.6
pt_display.SpecularPower = 40.0
# colour by particle size instead: pt_display.ColorArrayName = ["CELLS", "diameter_nm"]

view.KeyLightIntensity = 0.8
view.CameraPosition = [1.0, -1.6, 1.2]  # from the front-right, above: a 3/4 view
view.CameraFocalPoint = [0.0, 0.0, 0.0]
view.CameraViewUp = [0.0, 0.0, 1.0]
ResetCamera(view)
view.CameraParallelProjection = 0
Render(view)

TURNTABLE = {turntable}
if "--render" in sys.argv:
    out = sys.argv[sys.argv.index("--render") + 1]
    size = [1200, 900]
    if "--size" in sys.argv:
        i = sys.argv.index("--size")
        size = [int(sys.argv[i + 1]), int(sys.argv[i + 2])]
    SaveScreenshot(out, view, ImageResolution=size)
    camera = view.GetActiveCamera()
    for k in range(TURNTABLE):
        camera.Azimuth(360.0 / TURNTABLE)
        frame = out.replace(".png", "_%03d.png" % k)
        SaveScreenshot(frame, view, ImageResolution=[size[0] // 2, size[1] // 2])
'''
