"""Benchmark: segmentation on the hard synthetic catalyst (workflow/presets/hard.yaml).

The preset's sample is simulated, imported and reconstructed once (cached under --out, keyed by
the settings that make it); then one recipe (the preset's settings plus --set overrides) goes
through the stages' own library calls: simulated annotation with a person's errors, patches,
training of each network, segmentation, evaluation on the validation slab against the clean
truth. Prints one JSON object (Table 1 per model: Dice, precision and recall per class; best
epochs; timings) and writes Table 1 as markdown next to it.

    .venv/bin/python bench/segment.py --name baseline
    .venv/bin/python bench/segment.py --name context1 --set patches.context=1
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from stemtomo.core.config import model_settings, stage_settings, validate_config  # noqa: E402
from stemtomo.core.labels import CLASS_NAMES  # noqa: E402

PRESET = ROOT / "workflow" / "presets" / "hard.yaml"


def load_config(overrides: list[str]) -> tuple[dict, str]:
    """The preset's config with `section.key=value` overrides (values in YAML), validated."""
    cfg = yaml.safe_load(PRESET.read_text())
    sample = next(iter(cfg["samples"]))
    for item in overrides:
        key, value = item.split("=", 1)
        node = cfg
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return validate_config(cfg), sample


def build_data(cfg: dict, sample: str, cache: Path) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """Reconstruction, clean truth and voxel size of the preset's sample (cached)."""
    from stemtomo.core.readers import RawSeries
    from stemtomo.prep.importer import import_tiltseries
    from stemtomo.prep.settings import ImportSettings
    from stemtomo.recon.reconstruct import reconstruct
    from stemtomo.recon.settings import ReconstructSettings
    from stemtomo.simulate.acquisition import simulate
    from stemtomo.simulate.settings import SimulateSettings

    sim_cfg = cfg["samples"][sample]["simulate"]
    making = {k: stage_settings(cfg, sample, k) for k in ("import", "reconstruct")}
    key = hashlib.sha256(json.dumps([sim_cfg, making], sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"data-{key}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["volume"], f["truth"], float(f["voxel_nm"]), json.loads(str(f["record"]))
    t0 = time.perf_counter()
    sim = simulate(SimulateSettings.from_section(sim_cfg))
    px = sim_cfg["pixel_size_nm"]
    imported = import_tiltseries(RawSeries(sim.tiltseries, "simulated", None, px),
                                 [float(a) for a in sim.angles], px,
                                 ImportSettings.from_section(making["import"]))
    volume, _ = reconstruct(imported.stack, imported.angles,
                            ReconstructSettings.from_section(making["reconstruct"]), threads=2)
    record = {"class_fractions": sim.truth["class_fractions"],
              "pt_particles": len(sim.truth["pt_particles"]),
              "pt_median_diameter_nm": float(np.median([p["diameter_nm"]
                                                         for p in sim.truth["pt_particles"]])),
              "seconds": round(time.perf_counter() - t0, 1)}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, volume=volume, truth=sim.labels, voxel_nm=px,
                        record=json.dumps(record))
    return volume, sim.labels, px, record


def run_recipe(cfg: dict, sample: str, volume: np.ndarray, truth: np.ndarray, voxel_nm: float,
               work: Path) -> dict:
    """Patches, training, segmentation and evaluation of every configured network."""
    import torch

    from stemtomo.evaluate.stage import evaluate_model, summary
    from stemtomo.learn.patches import extract, simulate_annotation
    from stemtomo.learn.segmentation import segment_volume
    from stemtomo.learn.settings import PatchSettings, SegmentSettings, TrainSettings
    from stemtomo.learn.training import train

    torch.set_num_threads(2)
    device = torch.device("cpu")
    patch_settings = PatchSettings.from_section(stage_settings(cfg, sample, "patches"))
    annotation = simulate_annotation(truth, patch_settings.annotate_slices,
                                     patch_settings.annotation_noise, voxel_nm, patch_settings.seed)
    annotated = (annotation != 255).any(axis=(1, 2))
    from stemtomo.core.overlap import dice_per_class

    # the annotation against the clean truth: how far a person's labels are from the objects
    noise_floor = dice_per_class(annotation[annotated], truth[annotated])
    train_set, val_set, prec = extract(volume, annotation, patch_settings)
    as_dict = {"train": {"images": train_set.images, "labels": train_set.labels},
               "val": {"images": val_set.images, "labels": val_set.labels}}
    seg_settings = SegmentSettings.from_section(stage_settings(cfg, sample, "segment"))
    out = {"patches": {k: prec[k] for k in ("train_slices", "val_slices", "train", "val")},
           "annotation_dice_vs_truth": {CLASS_NAMES[c]: round(d, 4)
                                        for c, d in zip(CLASS_NAMES, noise_floor, strict=True)},
           "models": {}}
    records = []
    for name in stage_settings(cfg, sample, "train")["models"]:
        settings = TrainSettings.from_section(model_settings(cfg, sample, name))
        t0 = time.perf_counter()
        result = train(name, as_dict["train"], as_dict["val"], settings,
                       str(work / f"{name}.ckpt"))
        t_train = time.perf_counter() - t0
        from stemtomo.learn.models import build_model

        model = build_model(**result.model_config)
        model.load_state_dict(result.state_dict)
        model.eval()
        t0 = time.perf_counter()
        labels, _ = segment_volume(volume, model, device, seg_settings,
                                   channels=result.model_config["in_channels"],
                                   multiple=model.multiple)
        t_seg = time.perf_counter() - t0
        record, _, _ = evaluate_model(name, labels, truth, voxel_nm, prec["val_slices"])
        records.append(record)
        best = result.history[result.best_epoch - 1]
        out["models"][name] = {
            "epochs_run": len(result.history), "best_epoch": result.best_epoch,
            "best_validation": {k: round(v, 4) for k, v in best.items() if k.startswith("val_")},
            "train_s": round(t_train, 1), "segment_s": round(t_seg, 1),
            **table_row(record)}
        (work / f"{name}.ckpt").unlink(missing_ok=True)
        print(f"{name}: {json.dumps(out['models'][name])}", file=sys.stderr, flush=True)
    _, md = summary(sample, records, {}, [])
    out["table1_md"] = md
    return out


def table_row(record: dict) -> dict:
    """Dice, precision and recall per class, rounded, from an evaluate_model record."""
    return {f"{CLASS_NAMES[c]}_{m}": round(record["classes"][CLASS_NAMES[c]][m], 4)
            for c in CLASS_NAMES for m in ("dice", "precision", "recall")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="recipe", help="name of this recipe in the output")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. patches.context=1 (repeatable)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "segment"))
    args = parser.parse_args()
    out_dir = Path(args.out)
    work = out_dir / args.name
    work.mkdir(parents=True, exist_ok=True)
    cfg, sample = load_config(args.set)
    t0 = time.perf_counter()
    volume, truth, voxel_nm, data = build_data(cfg, sample, out_dir)
    result = {"benchmark": "segment", "recipe": args.name, "overrides": args.set,
              "machine": f"{os.cpu_count()} CPU cores, torch threads 2, no GPU",
              "volume": list(volume.shape), "voxel_nm": voxel_nm, "data": data}
    result.update(run_recipe(copy.deepcopy(cfg), sample, volume, truth, voxel_nm, work))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    (work / "table1.md").write_text(result["table1_md"])
    (work / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
