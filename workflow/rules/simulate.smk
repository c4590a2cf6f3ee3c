rule simulate:
    output:
        tiltseries="results/{sample}/00_simulate/tiltseries.tif",
        angles="results/{sample}/00_simulate/angles.txt",
        labels="results/{sample}/00_simulate/labels.tif",
        phantom="results/{sample}/00_simulate/phantom.tif",
        truth="results/{sample}/00_simulate/truth.json",
        figure=report(
            "results/{sample}/00_simulate/overview.png",
            caption="../report/simulate.rst",
            category="0 Simulate",
            labels={"sample": "{sample}", "figure": "phantom and tilt series"},
        ),
    params:
        settings=lambda wc: canonical(sample_cfg(wc.sample)["simulate"]),
    log:
        "results/{sample}/logs/simulate.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/simulate.py"
