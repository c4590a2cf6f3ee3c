rule align:
    input:
        tiltseries="results/{sample}/00_import/tiltseries.tif",
        angles="results/{sample}/00_import/angles.txt",
    output:
        tiltseries="results/{sample}/01_align/tiltseries.tif",
        json="results/{sample}/01_align/alignment.json",
        xf="results/{sample}/01_align/tiltseries.xf",
        tlt="results/{sample}/01_align/tiltseries.tlt",
        figure=report(
            "results/{sample}/01_align/qc.png",
            caption="../report/align.rst",
            category="2 Align",
            labels={"sample": "{sample}", "figure": "alignment QC"},
        ),
    params:
        settings=lambda wc: rule_params(config, wc.sample, "align"),
    log:
        "results/{sample}/logs/align.log",
    threads: 2
    resources:
        gpu=1,  # used when present (astra-gpu); never shared between jobs
        attempt=attempt_number,  # the runner retries a GPU out of memory only
    retries: GPU_RETRIES
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/align.py"
