# Shared helpers: config validation (defaults filled from the schema), the sample table, inputs.
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from stemtomo.core.config import (  # noqa: E402
    canonical,
    check_files,
    model_settings,
    rule_params,
    stage_settings,
    validate_config,
)
from stemtomo.core.errors import ConfigError  # noqa: E402
from stemtomo.core.labels import ENSEMBLE, MODELS  # noqa: E402

try:
    validate_config(config)
    check_files(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

SAMPLES = list(config["samples"])


wildcard_constraints:
    sample="|".join(re.escape(s) for s in SAMPLES),
    slab=r"\d+",
    model="|".join(MODELS) + f"|{ENSEMBLE}",


def sample_cfg(sample):
    return config["samples"][sample]


def is_simulated(sample):
    return "simulate" in sample_cfg(sample)


def import_inputs(wildcards):
    """Raw stack (and angle file) of a sample: the simulated series or the configured files."""
    s = wildcards.sample
    if is_simulated(s):
        return {"tiltseries": f"results/{s}/00_simulate/tiltseries.tif",
                "angles": f"results/{s}/00_simulate/angles.txt"}
    inputs = {"tiltseries": sample_cfg(s)["tiltseries"]}
    if isinstance(sample_cfg(s).get("angles"), str):
        inputs["angles"] = sample_cfg(s)["angles"]
    return inputs


def import_angles(wildcards):
    """Angles given in the config itself (list or {start, step}); None means: from a file."""
    angles = sample_cfg(wildcards.sample).get("angles")
    return None if isinstance(angles, str) else angles


def aligned(sample):
    return stage_settings(config, sample, "align")["enabled"]


def recon_inputs(wildcards):
    """The aligned series and its angles, or the imported ones where alignment is disabled."""
    s = wildcards.sample
    if aligned(s):
        return {"tiltseries": f"results/{s}/01_align/tiltseries.tif",
                "tlt": f"results/{s}/01_align/tiltseries.tlt"}
    return {"tiltseries": f"results/{s}/00_import/tiltseries.tif",
            "tlt": f"results/{s}/00_import/angles.txt"}


def has_labels(sample):
    return is_simulated(sample) or "labels" in sample_cfg(sample)


def labels_input(wildcards):
    """Ground truth of a synthetic sample, or the sample's own annotation file."""
    s = wildcards.sample
    if is_simulated(s):
        return f"results/{s}/00_simulate/labels.tif"
    return sample_cfg(s)["labels"]


def model_source(sample):
    """The sample whose trained networks segment this one (itself, or samples.<s>.models_from)."""
    return sample_cfg(sample).get("models_from", sample)


def trained_models(sample):
    """The networks trained on a sample with labels (train.models)."""
    return stage_settings(config, sample, "train")["models"]


def model_input(wildcards):
    """The model.pt of the network, or of every network of the source sample for the ensemble."""
    src = model_source(wildcards.sample)
    if wildcards.model == ENSEMBLE:
        return expand("results/{src}/04_models/{model}/model.pt", src=src,
                      model=trained_models(src))
    return f"results/{src}/04_models/{wildcards.model}/model.pt"


for _s in SAMPLES:
    _src = model_source(_s)
    if _src != _s and (_src not in config["samples"] or not has_labels(_src)):
        raise WorkflowError(f"config samples.{_s}.models_from: {_src!r} is not a sample with labels\n"
                            f"  fix: name a sample that has `labels:` or `simulate:`")


def segment_slabs(sample):
    """Number of segmentation slab jobs per model (segment.slabs)."""
    return stage_settings(config, sample, "segment")["slabs"]


def slab_count(sample):
    """Number of reconstruction slab jobs (reconstruct.slabs)."""
    return stage_settings(config, sample, "reconstruct")["slabs"]


def evaluate_truth(wildcards):
    """The sample's ground truth / annotation, where it has one (else no input)."""
    return {"truth": labels_input(wildcards)} if has_labels(wildcards.sample) else {}


def evaluate_patches(wildcards):
    """patches.json when the sample's own annotations trained the networks: its validation slab
    is the evaluation region. Networks from another sample never saw this one: no patches."""
    s = wildcards.sample
    return {"patches": f"results/{s}/03_patches/patches.json"} if model_source(s) == s else {}


def evaluated_models(sample):
    """The networks that segment this sample (and whose results are evaluated and exported),
    and their ensemble where segment.ensemble is on and there are two or more."""
    models = list(trained_models(model_source(sample)))
    if len(models) > 1 and stage_settings(config, sample, "segment")["ensemble"]:
        models.append(ENSEMBLE)
    return models


def all_outputs():
    out = []
    for s in SAMPLES:
        if is_simulated(s):
            out += expand("results/{sample}/00_simulate/{f}", sample=s,
                          f=["tiltseries.tif", "labels.tif", "phantom.tif", "truth.json"])
        out += expand("results/{sample}/00_import/{f}", sample=s,
                      f=["tiltseries.tif", "angles.txt", "meta.json", "qc.png"])
        if aligned(s):
            out += expand("results/{sample}/01_align/{f}", sample=s,
                          f=["tiltseries.tif", "alignment.json", "tiltseries.xf", "tiltseries.tlt",
                             "qc.png"])
        out += expand("results/{sample}/02_recon/{f}", sample=s,
                      f=["volume.tif", "recon.json", "orthoslices.png"])
        if stage_settings(config, s, "reconstruct")["mrc"]:
            out.append(f"results/{s}/02_recon/volume.mrc")
        if has_labels(s):
            out += expand("results/{sample}/03_patches/{f}", sample=s,
                          f=["train.npz", "val.npz", "patches.json", "patches.png"])
            out += expand("results/{sample}/04_models/{model}/{f}", sample=s,
                          model=trained_models(s),
                          f=["model.pt", "history.csv", "curves.png"])
        if has_labels(model_source(s)):
            out += expand("results/{sample}/05_segment/{model}/{f}", sample=s,
                          model=evaluated_models(s),
                          f=["labels.tif", "segment.json"])
            out += expand("results/{sample}/06_evaluate/{f}", sample=s,
                          f=["metrics.csv", "metrics.md", "particles.png", "truth_particles.csv"])
            out += expand("results/{sample}/07_export/{model}/{f}", sample=s,
                          model=evaluated_models(s),
                          f=["render.png", "scene.py", "export.json"])
    return out
