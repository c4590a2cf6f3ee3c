"""Benchmark: segmentation on the hard synthetic catalyst (workflow/presets/hard.yaml).

The preset's sample is simulated, imported and reconstructed once (cached under --out, keyed by
the settings that make it); then one recipe (the preset's settings plus --set overrides) goes
through the stages' own library calls: simulated annotation with a person's errors, patches,
training of each network, segmentation, evaluation on the validation slab against the clean
truth. Prints one JSON object (Table 1 per model: Dice, precision and recall per class; best
epochs; timings) and writes Table 1 as markdown next to it.

    .venv/bin/python bench/segment.py --name baseline
    .venv/bin/python bench/segment.py --name context1 --set patches.context=1

With --preset config.yaml --from-results results/demo the sample is the demo's, its volume and
truth taken from a pipeline run (the demo is misaligned: this script does not align).
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

from stemtomo.core.config import (  # noqa: E402
    input_volumes,
    model_settings,
    stage_settings,
    validate_config,
)
from stemtomo.core.labels import CLASS_NAMES  # noqa: E402

PRESET = ROOT / "workflow" / "presets" / "hard.yaml"
SAVE: Path | None = None  # where segmentations are kept (--save-labels)
SLAB_MARGIN: int | None = None  # segment only the validation slab ± this many slices (--slab)
PATCH_VALIDATION = 0  # validate on this many Pt-enriched patches instead (--patch-validation)
REUSE = False  # the recipe's networks saved by an earlier run, not trained again (--reuse)


def load_config(overrides: list[str], preset: Path = PRESET) -> tuple[dict, str]:
    """The preset's config with `section.key=value` overrides (values in YAML), validated."""
    cfg = yaml.safe_load(Path(preset).read_text())
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
    """Reconstruction (denoised when the config enables denoise; with denoise.input both, the
    (2, z, y, x) stack of the reconstruction and the denoised volume), clean truth and voxel
    size of the preset's sample (cached)."""
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
    denoise = stage_settings(cfg, sample, "denoise")
    if path.exists():
        with np.load(path) as f:
            data = {k: f[k] for k in f.files}
    else:
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
        data = {"volume": volume, "truth": sim.labels, "voxel_nm": np.float64(px),
                "record": np.str_(json.dumps(record)), "density": sim.density,
                "stack": imported.stack, "angles": np.asarray(imported.angles)}
        cache.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **data)
    record = json.loads(str(data["record"]))
    volume = data["volume"]
    if denoise["enabled"]:
        volume, record["denoise"] = denoised(data, denoise, making["reconstruct"], cache, key)
    if "density" in data:  # the reconstruction's and, when denoised, the denoised volume's
        from stemtomo.learn.denoise_data import relative_error

        record["reconstruction_error_vs_density"] = round(
            relative_error(data["volume"], data["density"]), 4)
        record["volume_error_vs_density"] = round(relative_error(volume, data["density"]), 4)
    if input_volumes(cfg, sample) == 2:  # denoise.input both: two sources, as patches reads
        volume = np.stack([data["volume"], volume])
    return volume, data["truth"], float(data["voxel_nm"]), record


def from_results(res: Path, both: bool = False) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """A pipeline run's volume (denoised where it was; `both`: stacked after the
    reconstruction, as denoise.input both), clean truth and voxel size."""
    from stemtomo.core.readers import read_tiltseries

    recon, path = res / "02_recon" / "volume.tif", res / "02b_denoise" / "volume.tif"
    paths = [recon, path] if both else [path if path.is_file() else recon]
    vols = [read_tiltseries(str(p)) for p in paths]
    truth = read_tiltseries(str(res / "00_simulate" / "labels.tif")).data
    data = [v.data.astype(np.float32) for v in vols]
    return (data[0] if len(data) == 1 else np.stack(data), np.asarray(truth),
            float(vols[0].pixel_size_nm), {"from_results": [str(p) for p in paths]})


def denoised(data: dict, denoise: dict, recon: dict, cache: Path, key: str) -> tuple[np.ndarray, dict]:
    """The denoise stage's calls on the cached series: K sub-reconstructions with the main
    reconstruction's settings, Noise2Inverse, applied to the reconstruction (cached)."""
    import tempfile

    from stemtomo.learn.denoise import blended, denoise_volume
    from stemtomo.learn.denoise_split import reconstruct_split
    from stemtomo.learn.settings import DenoiseSettings
    from stemtomo.recon.settings import ReconstructSettings

    # The network's output is cached unblended: a blend needs no retraining (nor does what the
    # segmentation reads, `input`).
    pure = {k: v for k, v in denoise.items() if k not in ("blend", "input")}
    dkey = hashlib.sha256(json.dumps(pure, sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"data-{key}-denoised-{dkey}.npz"
    weight = float(denoise.get("blend", 1.0))
    if path.exists():
        with np.load(path) as f:
            return (blended(data["volume"], f["volume"], weight),
                    json.loads(str(f["record"])) | {"blend": weight})
    if "stack" not in data:
        raise SystemExit(f"{cache}/data-{key}.npz predates the denoise option: delete it")
    settings = DenoiseSettings.from_section({**pure, "blend": 1.0})
    t0 = time.perf_counter()
    splits = [reconstruct_split(data["stack"], data["angles"],
                                ReconstructSettings.from_section(recon), k, settings.splits,
                                threads=2)[0] for k in range(settings.splits)]
    with tempfile.TemporaryDirectory() as tmp:
        volume, run = denoise_volume(data["volume"], splits, settings, str(Path(tmp) / "ck.pt"))
    record = {"seconds": round(time.perf_counter() - t0, 1), "epochs": run["epochs"],
              "final_loss": run["loss"][-1]}
    np.savez_compressed(path, volume=volume, record=json.dumps(record))
    return blended(data["volume"], volume, weight), record | {"blend": weight}


def run_recipe(cfg: dict, sample: str, volume: np.ndarray, truth: np.ndarray, voxel_nm: float,
               work: Path, last: bool = False, transfer: tuple | None = None) -> dict:
    """Patches, training, segmentation (calibrated, cleaned up) and evaluation of every
    configured network and of their ensemble, through the functions the rules call. `last`
    also evaluates each network's last epoch; `transfer` = (volume, truth) of a second sample
    segmented by these networks (whole volume evaluated), with both input scalings."""
    import torch

    from stemtomo.core.labels import class_statistics
    from stemtomo.core.overlap import dice_per_class
    from stemtomo.evaluate.stage import summary
    from stemtomo.learn.modelfile import calibrate_ensemble, load_model, save_model
    from stemtomo.learn.patches import extract, simulate_annotation
    from stemtomo.learn.settings import PatchSettings, SegmentSettings, TrainSettings
    from stemtomo.learn.training import class_dice

    torch.set_num_threads(2)
    ps = PatchSettings.from_section(stage_settings(cfg, sample, "patches"))
    annotation = simulate_annotation(truth, ps.annotate_slices, ps.annotation_noise, voxel_nm,
                                     ps.seed)
    annotated = (annotation != 255).any(axis=(1, 2))
    # the annotation against the clean truth: how far a person's labels are from the objects
    noise_floor = dice_per_class(annotation[annotated], truth[annotated])
    train_set, val_set, prec = extract(volume, annotation, ps)
    if PATCH_VALIDATION:  # the recipe before issue 17: validation on Pt-enriched patches
        val_set = patch_validation(volume, annotation, prec["val_slices"], ps)
        prec["val"] = {"patches": PATCH_VALIDATION, **class_statistics(val_set.labels)}
    sets = [{"images": p.images, "labels": p.labels} for p in (train_set, val_set)]
    seg = SegmentSettings.from_section(stage_settings(cfg, sample, "segment"))
    out = {"patches": {k: prec[k] for k in ("train_slices", "val_slices", "train", "val")},
           "annotation_dice_vs_truth": {CLASS_NAMES[c]: round(d, 4)
                                        for c, d in zip(CLASS_NAMES, noise_floor, strict=True)},
           "models": {}}
    nets, raw_nets, records = {}, {}, []
    for name in stage_settings(cfg, sample, "train")["models"]:
        settings = TrainSettings.from_section(model_settings(cfg, sample, name))
        t0 = time.perf_counter()
        if REUSE:  # this recipe's saved networks (same patches: same config and seeds)
            if not (work / f"{name}.pt").is_file():
                raise SystemExit(f"--reuse: {work / name}.pt is missing; run without --reuse")
            raw_best = None
        else:
            result, raw_best = train_tracked(name, sets, settings, work / f"{name}.ckpt")
            save_model(str(work / f"{name}.pt"), result, prec, settings, {"bench": "segment"})
        t_train = time.perf_counter() - t0
        nets[name] = load_model(str(work / f"{name}.pt"), torch.device("cpu"))
        row = {"epochs_run": len(nets[name].record["history"]),
               "best_epoch": nets[name].record["best_epoch"],
               "pt_prior": None if nets[name].priors is None else round(nets[name].priors[-1], 4),
               "best_validation": {k: round(v, 4) for k, v in nets[name].validation.items()
                                   if k.startswith("val_")},
               "train_s": None if REUSE else round(t_train, 1),
               # whole-slice validation Dice per epoch, as the selection sees it (calibrated)
               "val_curve": {c: [round(class_dice(h, c), 3) for h in nets[name].record["history"]]
                             for c in ("alumina", "pt")}}
        record, row["segment_s"], row["before_cleanup"] = segment_and_evaluate(
            [nets[name]], name, volume, truth, voxel_nm, prec["val_slices"], seg)
        if nets[name].priors is not None and raw_best is not None:
            # the same weights without the Pt prior, and the whole-slice validation without
            # calibration: the epoch of best argmax Pt Dice, argmax decision
            row["argmax"] = _row([_with(nets[name], priors=None)], f"{name}~argmax", volume,
                                 truth, voxel_nm, prec, seg)
            raw_nets[name] = _with(nets[name], state=raw_best["state"], priors=None)
            row["uncalibrated_selection"] = {"epoch": raw_best["epoch"], **_row(
                [raw_nets[name]], f"{name}~uncalibrated", volume, truth, voxel_nm, prec, seg)}
        if last and not REUSE:
            row["last_epoch"] = _row([_with(nets[name], state=torch.load(
                work / f"{name}.ckpt", map_location="cpu", weights_only=False)["model"])],
                f"{name}~last", volume, truth, voxel_nm, prec, seg)
        (work / f"{name}.ckpt").unlink(missing_ok=True)
        out["models"][name] = {**row, **record["table"]}
        records.append(record)
        print(f"{name}: {json.dumps(out['models'][name])}", file=sys.stderr, flush=True)
    if len(nets) > 1 and seg.ensemble:  # as the calibrate_ensemble and segment rules do
        fit = calibrate_ensemble(list(nets.values()), val_set.images, val_set.labels,
                                 torch.device("cpu"), seg.batch_size, seg.tta)
        record, seconds, raw = segment_and_evaluate(list(nets.values()), "ensemble", volume,
                                                    truth, voxel_nm, prec["val_slices"], seg, fit)
        out["models"]["ensemble"] = {
            "pt_prior": None if fit["priors"] is None else round(fit["priors"][-1], 4),
            "validation": {k: round(v, 4) for k, v in fit["validation"].items()},
            "segment_s": seconds, "before_cleanup": raw, **record["table"],
            # the mean of the calibrated networks without the ensemble's own prior
            "without_own_prior": _row(list(nets.values()), "ensemble~mean", volume, truth,
                                      voxel_nm, prec, seg)}
        if raw_nets:
            out["models"]["ensemble"]["uncalibrated_selection"] = _row(
                list(raw_nets.values()), "ensemble~uncalibrated", volume, truth, voxel_nm, prec,
                seg)
        records.append(record)
    if transfer is not None:
        out["transfer"] = transfer_rows(nets, seg, *transfer, voxel_nm)
    _, out["table1_md"] = summary(sample, records, {}, [])
    return out


def patch_validation(volume: np.ndarray, annotation: np.ndarray, val_slices: list[int], ps):
    """The validation set of the recipe before issue 17: PATCH_VALIDATION patches of the
    validation slices drawn like the training patches (pt_fraction centred on Pt), so that Pt
    fills ~2 % of their pixels instead of ~0.3 % in whole slices."""
    from stemtomo.core.intensity import Normalisation
    from stemtomo.learn.patches import sample

    if volume.ndim != 3:
        raise SystemExit("--patch-validation takes one input volume (not denoise.input both)")
    norm = Normalisation.of(volume, ps.normalisation).apply(volume)
    rng = np.random.default_rng([ps.seed, 1])
    return sample(norm, annotation, np.asarray(val_slices), PATCH_VALIDATION, ps.patch_size,
                  ps.pt_fraction, ps.context, rng)


def segment_and_evaluate(nets: list, name: str, volume: np.ndarray, truth: np.ndarray,
                         voxel_nm: float, val_slices: list[int] | None, seg,
                         fit: dict | None = None) -> tuple[dict, float, dict]:
    """segment_with (the segment_slab rule's call; `fit`: an ensemble's calibrate_ensemble), the
    clean-up (the segment rule's) and evaluate_model: the record (with its Table 1 row under
    "table"), seconds, the row before the clean-up."""
    import torch

    from stemtomo.evaluate.stage import evaluate_model
    from stemtomo.learn.cleanup import clean_labels
    from stemtomo.learn.modelfile import segment_with

    prior = fit["priors"] if fit else None
    t0 = time.perf_counter()
    if SLAB_MARGIN is None or not val_slices:
        labels, _ = segment_with(nets, volume, torch.device("cpu"), seg, ensemble_prior=prior)
    else:  # only the evaluated slab and a margin for the 3D clean-up; background elsewhere
        z0 = max(0, min(val_slices) - SLAB_MARGIN)
        z1 = min(truth.shape[0], max(val_slices) + 1 + SLAB_MARGIN)
        labels = np.zeros(truth.shape, np.uint8)
        labels[z0:z1] = segment_with(nets, volume, torch.device("cpu"), seg, (z0, z1),
                                     ensemble_prior=prior)[0]
    seconds = round(time.perf_counter() - t0, 1)
    if SAVE is not None:  # for clean-up studies on the very labels (bench --save-labels)
        np.save(SAVE / f"{name}-{seg.normalisation}-{len(val_slices or [])}.npy", labels)
    raw, _, _ = evaluate_model(name, labels, truth, voxel_nm, val_slices)
    labels, cleaned = clean_labels(labels, voxel_nm, seg.cleanup.alumina_min_nm3,
                                   seg.cleanup.pt_min_nm3)
    validation = {name: nets[0].validation if len(nets) == 1 else (fit or {}).get("validation", {})}
    record, _, _ = evaluate_model(name, labels, truth, voxel_nm, val_slices,
                                  validation=validation)
    record["table"] = {**table_row(record), "cleanup": cleaned}
    return record, seconds, table_row(raw)


def train_tracked(name: str, sets: list, settings, checkpoint: Path) -> tuple:
    """train(), one epoch per call (it resumes exactly from its checkpoint, so the run is the
    uninterrupted one), also keeping the weights of the best argmax validation score
    (train.selection, among the epochs that segment every annotated class, as train() selects):
    the selection without calibration, from the same run."""
    import torch

    from stemtomo.learn.training import annotated_classes, missing_classes, selection_score, train

    annotated = annotated_classes(sets[1]["labels"])
    raw = {"score": -1.0, "epoch": 0, "state": None}
    done = -1
    while True:
        result = train(name, *sets, settings, str(checkpoint), stop_after=1)
        if len(result.history) == done:  # early stop: no epoch ran
            return result, raw
        done = len(result.history)
        argmax = {k: v for k, v in result.history[-1].items() if not k.startswith("val_cal_")}
        score = selection_score(argmax, annotated, settings.selection)
        if score > raw["score"] and not missing_classes(argmax, annotated, settings.min_class_dice):
            state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
            raw = {"score": score, "epoch": done, "state": state}
        if done >= settings.epochs:
            return result, raw


def _with(net, state: dict | None = None, **changes):
    """A copy of a ModelFile with other weights and/or fields."""
    import dataclasses

    if state is not None:
        model = copy.deepcopy(net.model)
        model.load_state_dict(state)
        changes["model"] = model.eval()
    return dataclasses.replace(net, **changes)


def _row(nets: list, name: str, volume, truth, voxel_nm, prec: dict, seg) -> dict:
    return segment_and_evaluate(nets, name, volume, truth, voxel_nm, prec["val_slices"],
                                seg)[0]["table"]


def transfer_rows(nets: dict, seg, volume: np.ndarray, truth: np.ndarray, voxel_nm: float) -> dict:
    """Table 1 rows of a second sample segmented by these networks, with the training's input
    scaling (`model`) and with the scaling recomputed on that volume (`volume`)."""
    rows = {}
    for setting in ("model", "volume"):
        options = seg.replace(normalisation=setting)
        for name, net in nets.items():
            record, _, _ = segment_and_evaluate([net], name, volume, truth, voxel_nm, None, options)
            rows[f"{name}/{setting}"] = record["table"]
    return rows


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
    parser.add_argument("--last", action="store_true", help="also evaluate each last epoch")
    parser.add_argument("--save-labels", action="store_true",
                        help="keep each segmentation (before clean-up) as .npy in the recipe's folder")
    parser.add_argument("--transfer", action="store_true",
                        help="also segment a second sample (seed 2, twice the Pt) with these "
                             "networks, with the training's and the volume's own input scaling")
    parser.add_argument("--patch-validation", type=int, default=0, metavar="N",
                        help="validate (early stopping, best epoch, calibration) on N Pt-enriched "
                             "patches of the validation slices, as before issue 17 (128 there)")
    parser.add_argument("--preset", default=str(PRESET),
                        help="the config whose first sample is benchmarked (default: the hard preset)")
    parser.add_argument("--from-results", default=None, metavar="DIR",
                        help="take the volume (02b_denoise or 02_recon/volume.tif) and the truth "
                             "(00_simulate/labels.tif) from a pipeline run's results/<sample>")
    parser.add_argument("--reuse", action="store_true",
                        help="segment and evaluate with the networks an earlier run of this --name "
                             "saved, without training (for changes after training; no --last)")
    parser.add_argument("--slab", type=int, default=None, metavar="MARGIN",
                        help="segment only the evaluated validation slab and MARGIN slices on "
                             "each side (faster; the particle counts then cover the slab only)")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    out_dir = Path(args.out)
    work = out_dir / args.name
    work.mkdir(parents=True, exist_ok=True)
    global SAVE, SLAB_MARGIN, PATCH_VALIDATION, REUSE
    REUSE = args.reuse
    SAVE = work if args.save_labels else None
    SLAB_MARGIN = args.slab
    PATCH_VALIDATION = args.patch_validation
    cfg, sample = load_config(args.set, args.preset)
    t0 = time.perf_counter()
    if args.from_results:
        volume, truth, voxel_nm, data = from_results(Path(args.from_results),
                                                     input_volumes(cfg, sample) == 2)
    else:
        volume, truth, voxel_nm, data = build_data(cfg, sample, out_dir)
    result = {"benchmark": "segment", "recipe": args.name, "overrides": args.set,
              "slab_margin": args.slab, "patch_validation": args.patch_validation,
              "reused_networks": args.reuse,
              "machine": f"{os.cpu_count()} CPU cores, torch threads 2, no GPU",
              "volume": list(volume.shape), "voxel_nm": voxel_nm, "data": data}
    transfer = None
    if args.transfer:
        other, _ = load_config(args.set + [f"samples.{sample}.simulate.seed=2",
                                           f"samples.{sample}.simulate.pt.volume_fraction=0.005"])
        t_volume, t_truth, _, result["transfer_data"] = build_data(other, sample, out_dir)
        transfer = (t_volume, t_truth)
    result.update(run_recipe(copy.deepcopy(cfg), sample, volume, truth, voxel_nm, work,
                             args.last, transfer))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    suffix = "-reused" if args.reuse else ""  # the training run's own result stays
    (work / f"table1{suffix}.md").write_text(result["table1_md"])
    result = _finite(result)
    (work / f"result{suffix}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


def _finite(value):
    """NaN (an undefined precision) as null: strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and value != value else value


if __name__ == "__main__":
    main()
