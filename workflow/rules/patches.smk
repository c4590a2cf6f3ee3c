rule annotations:
    """The sample's annotations in stemtomo's classes, on the volume's grid: the simulated truth
    on `patches.annotate_slices` slices (as a person would annotate, with the errors of
    `patches.annotation_noise`), or the user's label volume or per-slice masks mapped by
    `label_values`."""
    wildcard_constraints:
        sample=samples_pattern(["simulate", "tiltseries", "volume"]),
    input:
        unpack(annotation_inputs),
        volume=lambda wc: volume_of(wc.sample),
    output:
        labels="results/{sample}/03_patches/labels.tif",
    params:
        source=lambda wc: sample_cfg(wc.sample).get("labels"),
        label_values=lambda wc: canonical(sample_cfg(wc.sample).get("label_values")),
        annotate_slices=lambda wc: stage_settings(config, wc.sample, "patches")["annotate_slices"],
        annotation_noise=lambda wc: stage_settings(config, wc.sample, "patches")["annotation_noise"],
        seed=lambda wc: stage_settings(config, wc.sample, "patches")["seed"],
    log:
        "results/{sample}/logs/annotations.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/annotations.py"


rule patches:
    input:
        unpack(patch_split),
        volumes=lambda wc: network_inputs(wc.sample),
        labels=labels_input,
    output:
        train="results/{sample}/03_patches/train.npz",
        val="results/{sample}/03_patches/val.npz",
        json="results/{sample}/03_patches/patches.json",
        figure=report(
            "results/{sample}/03_patches/patches.png",
            caption="../report/patches.rst",
            category="4 Patches",
            labels={"sample": "{sample}", "figure": "training patches"},
        ),
    params:
        settings=lambda wc: rule_params(config, wc.sample, "patches"),
    log:
        "results/{sample}/logs/patches.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/patches.py"
