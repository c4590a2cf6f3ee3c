rule segment:
    input:
        volume="results/{sample}/02_recon/volume.tif",
        model=model_input,
    output:
        labels="results/{sample}/05_segment/{model}/labels.tif",
        json="results/{sample}/05_segment/{model}/segment.json",
    params:
        settings=lambda wc: stage_settings(config, wc.sample, "segment"),
        probabilities=lambda wc: f"results/{wc.sample}/05_segment/{wc.model}/probabilities.tif",
    log:
        "results/{sample}/logs/segment_{model}.log",
    threads: 2
    resources:
        gpu=1,
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/segment.py"
