rule patches:
    input:
        volume="results/{sample}/02_recon/volume.tif",
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
        simulated=lambda wc: is_simulated(wc.sample),
    log:
        "results/{sample}/logs/patches.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/patches.py"
