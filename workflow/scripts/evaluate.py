"""Rule evaluate: Table 1 (metrics.csv, metrics.md) over every model, the truth's particle table
and the particle-size figure."""

import csv
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stemtomo, without installing it

import numpy as np

from stemtomo import evaluation as ev
from stemtomo import figures, io
from stemtomo.readers import read_tiltseries
from stemtomo.runner import run_rule

log = logging.getLogger("stemtomo.evaluate")
PARTICLE_KEYS = ("particles", "particles_pred", "particles_true", "particles_matched",
                 "detection_precision", "detection_recall", "detection_f1",
                 "fraction_background", "fraction_alumina", "fraction_pt")


def main(smk) -> None:
    records = [json.loads(Path(p).read_text()) for p in smk.input.records]
    diameters = {}
    for rec, path in zip(records, smk.input.particles, strict=True):
        with open(path) as fh:
            diameters[rec["model"]] = [float(r["diameter_nm"]) for r in csv.DictReader(fh)]
    truth_rows: list[dict] = []
    if smk.input.get("truth"):
        truth = read_tiltseries(smk.input.truth).data.astype(np.uint8)
        if not (truth == ev.IGNORE).any():
            truth_rows = ev.particles(truth, records[0]["voxel_nm"]).table
            diameters = {"truth": [r["diameter_nm"] for r in truth_rows], **diameters}
    io.write_csv(smk.output.truth_particles, truth_rows, fields=ev.PARTICLE_FIELDS)
    figures.particle_sizes(smk.output.figure, diameters)
    rows, table = [], {}
    for rec in records:
        per_class = {c: rec["classes"][name] for c, name in ev.CLASS_NAMES.items()} \
            if "classes" in rec else None
        rows.append(ev.wide_row(rec["model"], per_class, {k: rec[k] for k in PARTICLE_KEYS if k in rec}))
        if per_class:
            table[rec["model"]] = per_class
    fields = list(dict.fromkeys(k for r in rows for k in r))
    io.write_csv(smk.output.csv, rows, fields=fields)
    md = [f"# {smk.wildcards.sample}: evaluation", ""]
    if table:
        md.append(ev.table1_markdown(table, records[0]["region"]))
    md += ["Pt particles (3D components; equivalent diameter) and volume fractions:", "",
           "| Model | particles | median diameter (nm) | detection P / R / F1 | Pt fraction "
           "| alumina fraction |",
           "|---|---|---|---|---|---|"]
    for rec in records:
        d = diameters.get(rec["model"], [])
        det = " / ".join(ev.fmt(rec[k], digits=2) for k in ("detection_precision", "detection_recall",
                                                             "detection_f1")) \
            if "detection_f1" in rec else rec.get("detection_note", "no labels")
        md.append(f"| {rec['model']} | {rec['particles']} | "
                  f"{ev.fmt(np.median(d) if d else float('nan'), digits=2)} | {det} | "
                  f"{100 * rec['fraction_pt']:.3f} % | {100 * rec['fraction_alumina']:.2f} % |")
    if truth_rows:
        md.append(f"| truth | {len(truth_rows)} | "
                  f"{np.median([r['diameter_nm'] for r in truth_rows]):.2f} | — | — | — |")
    text = "\n".join(md) + "\n"
    with io.atomic_path(smk.output.md) as tmp:
        Path(tmp).write_text(text)
    log.info("\n%s", text)
    log.info("throughput: %d models evaluated", len(records))


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
