rule denoise_split:
    """One slab of rows of one Noise2Inverse sub-reconstruction: the tilts of subset {split}
    (interleaved by angle), reconstructed like the sample itself (reconstruct section)."""
    wildcard_constraints:
        sample=samples_pattern(["simulate", "tiltseries"]),
        split=r"\d+",
    input:
        unpack(recon_inputs),
    output:
        slab=temp("results/{sample}/02b_denoise/splits/{split}_{slab}.npy"),
        json=temp("results/{sample}/02b_denoise/splits/{split}_{slab}.json"),
    params:
        settings=lambda wc: rule_params(config, wc.sample, "reconstruct"),
        splits=lambda wc: stage_settings(config, wc.sample, "denoise")["splits"],
    log:
        "results/{sample}/logs/denoise_split{split}_slab{slab}.log",
    threads: 2
    resources:
        gpu=1,  # used when present (astra-gpu); never shared between jobs
        attempt=attempt_number,  # the runner retries a GPU out of memory only
    retries: GPU_RETRIES
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/denoise_split.py"


rule denoise:
    """Noise2Inverse: a network trained to predict each sub-reconstruction from the others and
    averaged over them; later stages read its volume (volume_of)."""
    wildcard_constraints:
        sample=samples_pattern(["simulate", "tiltseries"]),
    input:
        volume="results/{sample}/02_recon/volume.tif",
        slabs=lambda wc: denoise_split_files(wc.sample, "npy"),
        records=lambda wc: denoise_split_files(wc.sample, "json"),
    output:
        volume="results/{sample}/02b_denoise/volume.tif",
        json="results/{sample}/02b_denoise/denoise.json",
        figure=report(
            "results/{sample}/02b_denoise/comparison.png",
            caption="../report/denoise.rst",
            category="3b Denoise",
            labels={"sample": "{sample}", "figure": "raw and denoised"},
        ),
    params:
        settings=lambda wc: rule_params(config, wc.sample, "denoise"),
        # Not an output: it must survive a killed job so that the rerun resumes from it.
        checkpoint=lambda wc: f"results/{wc.sample}/02b_denoise/checkpoint.pt",
    log:
        "results/{sample}/logs/denoise.log",
    threads: 2
    resources:
        gpu=1,
        attempt=attempt_number,  # the runner retries a GPU out of memory only (from the checkpoint)
    retries: GPU_RETRIES
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/denoise.py"
