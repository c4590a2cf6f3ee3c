# Shared helpers: config validation (defaults filled from the schema), the sample table, inputs.
import re
import sys
from argparse import Namespace
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from stemtomo.core.config import (  # noqa: E402
    canonical,
    check_files,
    input_volumes,
    model_settings,
    rule_params,
    stage_settings,
    validate_config,
)
from stemtomo.core.errors import ConfigError, InputError, OutputError  # noqa: E402
from stemtomo.core.labels import ENSEMBLE, MODELS  # noqa: E402
from stemtomo.core.precheck import check_results_writable  # noqa: E402
from stemtomo.core.samples import start_point  # noqa: E402
from stemtomo.prep.inputs import check_inputs, mask_inputs  # noqa: E402
from stemtomo.prep.slices import find_pairs  # noqa: E402

try:
    validate_config(config)
    check_files(config)
    if workflow.is_main_process:  # not again in each cluster job
        check_inputs(config)  # annotations, truth, 2D datasets and volumes: before any job
except (ConfigError, InputError) as exc:
    raise WorkflowError(str(exc)) from None


onstart:
    # only before real runs (not dry runs): a folder that cannot take results stops here, with
    # its name and the fix, not as a traceback from the first job
    try:
        check_results_writable(".", list(config["samples"]))
    except OutputError as exc:
        raise WorkflowError(str(exc)) from None


# GPU rules are retried once, for a GPU out of memory: Snakemake restarts a failed job whatever
# its exit status, so these rules pass the attempt number to their script and the runner
# (stemtomo.core.runner) fails a retry at once when the first attempt failed on bad input or a
# bug. No other rule is retried (the profiles set no `retries`).
GPU_RETRIES = 1


def attempt_number(wildcards, attempt):
    return attempt

SAMPLES = list(config["samples"])


wildcard_constraints:
    sample="|".join(re.escape(s) for s in SAMPLES),
    slab=r"\d+",
    model="|".join(MODELS) + f"|{ENSEMBLE}",


def samples_pattern(kinds):
    """A wildcard regex matching the samples that start from one of `kinds` (never matching
    when there are none): rules that produce the same file for different start points."""
    names = [s for s in SAMPLES if start_point(config["samples"][s]) in kinds]
    return "|".join(re.escape(s) for s in names) if names else "(?!)"


def sample_cfg(sample):
    return config["samples"][sample]


def start(sample):
    return start_point(sample_cfg(sample))


def is_simulated(sample):
    return start(sample) == "simulate"


def reconstructs(sample):
    """The sample's volume comes from stemtomo's own reconstruction (simulate or tiltseries)."""
    return start(sample) in ("simulate", "tiltseries")


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
    """Alignment runs: a tilt series not declared `aligned: true`, with align.enabled."""
    return reconstructs(sample) and not sample_cfg(sample).get("aligned", False) \
        and stage_settings(config, sample, "align")["enabled"]


def recon_inputs(wildcards):
    """The aligned series and its angles, or the imported ones where alignment is disabled."""
    s = wildcards.sample
    if aligned(s):
        return {"tiltseries": f"results/{s}/01_align/tiltseries.tif",
                "tlt": f"results/{s}/01_align/tiltseries.tlt"}
    return {"tiltseries": f"results/{s}/00_import/tiltseries.tif",
            "tlt": f"results/{s}/00_import/angles.txt"}


def has_labels(sample):
    """The sample has annotations that train networks."""
    return is_simulated(sample) or "labels" in sample_cfg(sample) or start(sample) == "slices"


def denoises(sample):
    """Noise2Inverse runs: a sample that reconstructs its tilt series, with denoise.enabled (the
    config checks refuse it for the others)."""
    return reconstructs(sample) and stage_settings(config, sample, "denoise")["enabled"]


def denoise_split_files(sample, ext):
    """Every slab of every sub-reconstruction (denoise.splits × reconstruct.slabs)."""
    return expand("results/{sample}/02b_denoise/splits/{split}_{slab}.{ext}", sample=sample,
                  split=range(stage_settings(config, sample, "denoise")["splits"]),
                  slab=range(slab_count(sample)), ext=ext)


def volume_of(sample):
    """The volume every later stage reads: the reconstruction (stemtomo's or the user's), its
    denoised form (denoise.enabled), or the stacked images of a 2D dataset."""
    if start(sample) == "slices":
        return f"results/{sample}/00_slices/images.tif"
    if denoises(sample):
        return f"results/{sample}/02b_denoise/volume.tif"
    return f"results/{sample}/02_recon/volume.tif"


def network_inputs(sample):
    """The volumes the segmentation networks read, one input source each (patches, segment_slab):
    volume_of, after the reconstruction itself with denoise.input both."""
    if input_volumes(config, sample) == 2:  # the config checks: only a denoised sample
        return [f"results/{sample}/02_recon/volume.tif", volume_of(sample)]
    return [volume_of(sample)]


def annotation_inputs(wildcards):
    """Inputs of the annotations job: the simulated truth, or the sample's label volume or the
    mask files of its folder (listed, so adding or changing a slice reruns what follows)."""
    s = wildcards.sample
    if is_simulated(s):
        return {"labels": f"results/{s}/00_simulate/labels.tif"}
    return {"masks": mask_inputs(sample_cfg(s)["labels"])}


def slice_files(sample):
    """Every image and mask of a 2D dataset (inputs of import_slices)."""
    pairs = find_pairs(sample_cfg(sample)["slices"], f"samples.{sample}.slices")
    return [str(f) for part in pairs.values() for pair in part for f in pair]


def patch_split(wildcards):
    """A 2D dataset's own train/validation split (slices.json); others split their slices."""
    s = wildcards.sample
    return {"split": f"results/{s}/00_slices/slices.json"} if start(s) == "slices" else {}


def labels_input(wildcards):
    """stemtomo-encoded annotations that train the networks (unlabelled = 255)."""
    s = wildcards.sample
    if start(s) == "slices":
        return f"results/{s}/00_slices/labels.tif"
    return f"results/{s}/03_patches/labels.tif"


def truth_input(sample):
    """What the evaluation compares with: the sample's `truth:`, the simulated phantom, or the
    annotations themselves (held-out slices only count)."""
    cfg = sample_cfg(sample)
    if "truth" in cfg:
        return cfg["truth"]
    if is_simulated(sample):
        return f"results/{sample}/00_simulate/labels.tif"
    return labels_input(Namespace(sample=sample))


def model_source(sample):
    """The sample whose trained networks segment this one (itself, or samples.<s>.models_from)."""
    return sample_cfg(sample).get("models_from", sample)


def trained_models(sample):
    """The networks trained on a sample with labels (train.models)."""
    return stage_settings(config, sample, "train")["models"]


def ensemble_members(sample):
    """The model.pt of every network of the sample's source sample (the ensemble's)."""
    src = model_source(sample)
    return expand("results/{src}/04_models/{model}/model.pt", src=src, model=trained_models(src))


def model_input(wildcards):
    """The model.pt of the network, or of every network of the source sample for the ensemble."""
    if wildcards.model == ENSEMBLE:
        return ensemble_members(wildcards.sample)
    return f"results/{model_source(wildcards.sample)}/04_models/{wildcards.model}/model.pt"


def ensemble_calibration(wildcards):
    """The ensemble's own Pt calibration, for its segmentation jobs only."""
    if wildcards.model != ENSEMBLE:
        return {}
    return {"calibration": f"results/{wildcards.sample}/05_segment/{ENSEMBLE}/calibration.json"}


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
    s = wildcards.sample
    return {"truth": truth_input(s)} if has_labels(s) or "truth" in sample_cfg(s) else {}


def evaluate_patches(wildcards):
    """patches.json when the sample's own annotations trained the networks: its validation slab
    is the evaluation region. Networks from another sample never saw this one: no patches."""
    s = wildcards.sample
    return {"patches": f"results/{s}/03_patches/patches.json"} if model_source(s) == s else {}


def evaluate_agreement(wildcards):
    """agreement.json, whose agreement table metrics.md shows, where it is made."""
    s = wildcards.sample
    return {"agreement": f"results/{s}/06_evaluate/agreement.json"} if suggests(s) else {}


def suggests(sample):
    """Slices to annotate next are ranked for samples with a volume, annotations and several
    networks (a 2D dataset has no unannotated slices)."""
    return has_labels(sample) and start(sample) != "slices" and model_source(sample) == sample \
        and len(segmenting_networks(sample)) > 1


def segmenting_networks(sample):
    """The networks (not their ensemble) that segment this sample."""
    return list(trained_models(model_source(sample)))


def evaluated_models(sample):
    """The networks that segment this sample (and whose results are evaluated and exported),
    and their ensemble where segment.ensemble is on and there are two or more."""
    models = segmenting_networks(sample)
    if len(models) > 1 and stage_settings(config, sample, "segment")["ensemble"]:
        models.append(ENSEMBLE)
    return models


def all_outputs():
    out = []
    for s in SAMPLES:
        if is_simulated(s):
            out += expand("results/{sample}/00_simulate/{f}", sample=s,
                          f=["tiltseries.tif", "labels.tif", "phantom.tif", "truth.json"])
        if reconstructs(s):
            out += expand("results/{sample}/00_import/{f}", sample=s,
                          f=["tiltseries.tif", "angles.txt", "meta.json", "qc.png"])
        if aligned(s):
            out += expand("results/{sample}/01_align/{f}", sample=s,
                          f=["tiltseries.tif", "alignment.json", "tiltseries.xf", "tiltseries.tlt",
                             "qc.png"])
        if start(s) == "slices":
            out += expand("results/{sample}/00_slices/{f}", sample=s,
                          f=["images.tif", "labels.tif", "slices.json", "overview.png"])
        else:
            out += expand("results/{sample}/02_recon/{f}", sample=s,
                          f=["volume.tif", "recon.json", "orthoslices.png"])
        if reconstructs(s) and stage_settings(config, s, "reconstruct")["mrc"]:
            out.append(f"results/{s}/02_recon/volume.mrc")
        if denoises(s):
            out += expand("results/{sample}/02b_denoise/{f}", sample=s,
                          f=["volume.tif", "denoise.json", "comparison.png"])
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
            if suggests(s):
                out += expand("results/{sample}/06_evaluate/{f}", sample=s,
                              f=["suggestions.csv", "suggestions.png", "agreement.json"])
            if start(s) != "slices":  # unrelated 2D images have no 3D surfaces
                out += expand("results/{sample}/07_export/{model}/{f}", sample=s,
                              model=evaluated_models(s),
                              f=["render.png", "scene.py", "export.json"])
    return out
