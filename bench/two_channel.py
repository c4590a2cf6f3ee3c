"""Benchmark: the reconstruction and its Noise2Inverse-denoised form as two input channels of the
segmentation network, against either alone (issue 20's untried recipe), on the hard preset.

Uses bench/segment.py's cached data (the preset's reconstruction and the 180-epoch denoiser's
unblended output) and its training loop; the networks see `--mode`'s volumes, each normalised
on its own, stacked as channels (the same patch positions: sampling depends on the labels and
the seed only). The validation slab ±8 slices is segmented with the stored Pt calibration and
cleaned up as bench/segment.py --slab 8 does. Prints one JSON row per run.

    .venv/bin/python bench/two_channel.py --mode both75 --seed 0
Modes: raw, b75 (blend 0.75 alone, the workstation preset), both75 (raw + blend 0.75),
both (raw + the network's output).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import segment as bench  # noqa: E402  (puts workflow/ on the path)

from stemtomo.core.config import model_settings, stage_settings  # noqa: E402
from stemtomo.core.intensity import Normalisation  # noqa: E402

MODES = ("raw", "b75", "both75", "both")


def sources(mode: str, raw: np.ndarray, den: np.ndarray) -> list[np.ndarray]:
    from stemtomo.learn.denoise import blended

    return {"raw": [raw], "b75": [blended(raw, den, 0.75)],
            "both75": [raw, blended(raw, den, 0.75)], "both": [raw, den]}[mode]


def run(mode: str, seed: int, dose: float, out: Path) -> dict:
    import torch

    from stemtomo.evaluate.stage import evaluate_model
    from stemtomo.learn.cleanup import clean_labels
    from stemtomo.learn.modelfile import load_model, save_model
    from stemtomo.learn.patches import extract, simulate_annotation
    from stemtomo.learn.segmentation import labels_from_scores, predict_slices
    from stemtomo.learn.settings import PatchSettings, SegmentSettings, TrainSettings

    torch.set_num_threads(2)
    base = ["train.models=[unet]", f"samples.hard.simulate.haadf.dose_e_per_A2={dose:g}",
            f"train.seed={seed}"]
    cfg, sample = bench.load_config(base)
    raw, truth, voxel_nm, _ = bench.build_data(cfg, sample, out)
    cfg_d, _ = bench.load_config(base + ["denoise.enabled=true", "denoise.epochs=180",
                                         "denoise.blend=1"])
    den, _, _, record = bench.build_data(cfg_d, sample, out)
    inputs = sources(mode, raw, den)
    ps = PatchSettings.from_section(stage_settings(cfg, sample, "patches"))
    annotation = simulate_annotation(truth, ps.annotate_slices, ps.annotation_noise, voxel_nm,
                                     ps.seed)
    parts = [extract(v, annotation, ps) for v in inputs]
    if any((p[0].centres != parts[0][0].centres).any() for p in parts[1:]):
        raise SystemExit("the sources' patches differ in position")
    prec = parts[0][2]
    sets = [{"images": np.concatenate([p[i].images for p in parts], axis=1),
             "labels": parts[0][i].labels} for i in (0, 1)]
    work = out / f"two-channel-{mode}-{dose:g}-{seed}"
    work.mkdir(parents=True, exist_ok=True)
    settings = TrainSettings.from_section(model_settings(cfg, sample, "unet"))
    t0 = time.perf_counter()
    result, _ = bench.train_tracked("unet", sets, settings, work / "unet.ckpt")
    save_model(str(work / "unet.pt"), result, {**prec, "channels": sets[0]["images"].shape[1]},
               settings, {"bench": "two_channel"})
    (work / "unet.ckpt").unlink(missing_ok=True)
    net = load_model(str(work / "unet.pt"), torch.device("cpu"))
    t_train = time.perf_counter() - t0
    seg = SegmentSettings.from_section(stage_settings(cfg, sample, "segment"))
    val = prec["val_slices"]
    z0, z1 = max(0, min(val) - 8), min(raw.shape[0], max(val) + 9)
    # each source with the scaling its patches were made with (as segment applies model.pt's)
    x = np.concatenate([Normalisation.from_record(p[2]["normalisation"]).apply(v[z0:z1])[:, None]
                        for v, p in zip(inputs, parts, strict=True)], axis=1)
    probs = predict_slices(net.model, torch.as_tensor(np.ascontiguousarray(x, np.float32)),
                           net.model.multiple, seg.batch_size, torch.device("cpu"), net.priors,
                           seg.tile, seg.overlap, tta=seg.tta)
    labels = np.zeros(raw.shape, np.uint8)
    labels[z0:z1] = labels_from_scores(probs).numpy()
    labels, _ = clean_labels(labels, voxel_nm, seg.cleanup.alumina_min_nm3,
                             seg.cleanup.pt_min_nm3)
    evaluated, _, _ = evaluate_model("unet", labels, truth, voxel_nm, val)
    return {"mode": mode, "seed": seed, "dose_e_per_A2": dose, "channels": x.shape[1],
            "best_epoch": net.record["best_epoch"], "epochs_run": len(net.record["history"]),
            "train_s": round(t_train, 1), **bench.table_row(evaluated), "denoise": record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=MODES, action="append", required=True)
    parser.add_argument("--seed", type=int, action="append", required=True)
    parser.add_argument("--dose", type=float, default=20.0, help="e/Å² of the hard preset")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "segment"))
    args = parser.parse_args()
    for mode in args.mode:
        for seed in args.seed:
            print(json.dumps(run(mode, seed, args.dose, Path(args.out))), flush=True)


if __name__ == "__main__":
    main()
