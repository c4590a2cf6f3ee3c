"""Benchmark: the demo phantom driven through the paths a microscopist takes (issue 18).

1. `volume:` — the demo's reconstruction given as a file made elsewhere (stored (y, z, x) like
   IMOD's tilt output), its 12 annotated slices as per-slice PNG masks in napari's encoding, the
   phantom as `truth:`; Table 1 against the demo's.
2. A correction round — the two best-ranked suggested slices annotated (from the phantom), five
   epochs from the previous weights (`train.init_from: previous`); its time and Table 1.
3. `slices:` — a 2D dataset in the study's layout: 45 training and 15 validation slices of the
   demo at 128², images and masks as separate files with differing names (pairing: sorted).

Run in an empty folder (it runs the demo first unless results/demo exists):
    python bench/annotation_paths.py [WORKDIR]
Prints one JSON object.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

import numpy as np
import tifffile
import yaml

from stemtomo.core import io
from stemtomo.core.annotations import NAPARI, annotated_slices
from stemtomo.core.images import write_png

ROOT = Path(__file__).resolve().parents[1]
NAPARI_VALUES = {"unlabelled": 0, "background": 1, "alumina": 2, "pt": 3}


def run(work: Path, config: dict, name: str) -> float:
    (work / f"{name}.yaml").write_text(yaml.safe_dump(config))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
                        "--cores", "2", "--resources", "gpu=1", "--configfile", f"{name}.yaml"],
                       cwd=work, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{name}: snakemake failed\n{r.stderr[-3000:]}")
    return round(time.perf_counter() - t0, 1)


def table(work: Path, sample: str) -> dict:
    with open(work / f"results/{sample}/06_evaluate/metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    keys = ("alumina_dice", "pt_dice", "background_dice", "pt_precision", "pt_recall")
    return {r["model"]: {k: round(float(r[k]), 4) for k in keys} for r in rows}


def masks(work: Path, labels: np.ndarray, slices, folder: str = "masks") -> None:
    (work / folder).mkdir(exist_ok=True)
    for z in slices:
        write_png(work / folder / f"z{z:04d}.png", NAPARI.invert(labels[z]))


def main() -> None:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    demo = yaml.safe_load((ROOT / "config.yaml").read_text())
    out: dict = {"benchmark": "annotation_paths", "workdir": str(work)}
    if not (work / "results/demo/06_evaluate/metrics.csv").exists():
        out["demo_s"] = run(work, demo, "demo")
    res = work / "results"
    volume = tifffile.imread(res / "demo/02_recon/volume.tif")
    truth = tifffile.imread(res / "demo/00_simulate/labels.tif")
    annotations = tifffile.imread(res / "demo/03_patches/labels.tif")
    io.write_mrc(work / "tomo.rec", volume.transpose(1, 0, 2), 0.4)
    masks(work, annotations, annotated_slices(annotations))
    common = {k: v for k, v in demo.items() if k != "samples"}
    vol = {"volume": "tomo.rec", "volume_axes": "yzx", "labels": "masks",
           "label_values": NAPARI_VALUES, "truth": "results/demo/00_simulate/labels.tif"}
    out["volume_path_s"] = run(work, {**common, "samples": {"vol": vol}}, "vol")
    out["table_demo"], out["table_volume_path"] = table(work, "demo"), table(work, "vol")
    out["max_abs_dice_difference"] = max(
        abs(out["table_demo"][m][k] - out["table_volume_path"][m][k])
        for m in out["table_demo"] for k in ("alumina_dice", "pt_dice", "background_dice"))
    # A correction round: the two best-ranked slices, five epochs from the previous weights.
    with open(res / "vol/06_evaluate/suggestions.csv") as fh:
        ranked = sorted((r for r in csv.DictReader(fh) if int(r["rank"])), key=lambda r: int(r["rank"]))
    added = [int(r["z"]) for r in ranked[:2]]
    masks(work, truth, added)
    vol["train"] = {"init_from": "previous", "epochs": 5}
    out["correction"] = {"added_slices": added,
                         "seconds": run(work, {**common, "samples": {"vol": vol}}, "vol_round2"),
                         "table": table(work, "vol")}
    # The study's layout: 45 + 15 slices, images and masks under differing names.
    val = list(range(56, 71))
    rest = [z for z in range(truth.shape[0]) if (truth[z] > 0).any() and not 50 <= z <= 76]
    train = [rest[i] for i in np.linspace(0, len(rest) - 1, 45).round().astype(int)]
    for part, zs in (("train", train), ("val", val)):
        for sub in ("images", "masks"):
            (work / "study" / part / sub).mkdir(parents=True, exist_ok=True)
        for i, z in enumerate(zs):
            io.write_tiff(work / f"study/{part}/images/img_{i:03d}.tif", volume[z], 0.4, axes="YX")
            write_png(work / f"study/{part}/masks/label_{i:03d}.png", (truth[z] * 127).astype(np.uint8))
    study = {"slices": {p: {"images": f"study/{p}/images/*.tif", "masks": f"study/{p}/masks/*.png"}
                        for p in ("train", "val")} | {"pairing": "sorted"},
             "label_values": {"background": 0, "alumina": 127, "pt": 254}}
    out["slices_path_s"] = run(work, {**common, "samples": {"study": study}}, "study")
    out["table_slices_path"] = table(work, "study")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
