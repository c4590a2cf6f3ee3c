rule evaluate_model:
    input:
        unpack(evaluate_truth),
        unpack(evaluate_patches),
        volume="results/{sample}/02_recon/volume.tif",
        labels="results/{sample}/05_segment/{model}/labels.tif",
        segment="results/{sample}/05_segment/{model}/segment.json",
    output:
        particles="results/{sample}/06_evaluate/{model}_particles.csv",
        json="results/{sample}/06_evaluate/{model}.json",
        errors=report(
            "results/{sample}/06_evaluate/{model}_errors.png",
            caption="../report/evaluate_errors.rst",
            category="7 Evaluate",
            labels={"sample": "{sample}", "model": "{model}", "figure": "error maps"},
        ),
    log:
        "results/{sample}/logs/evaluate_{model}.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/evaluate_model.py"


rule evaluate:
    input:
        unpack(evaluate_truth),
        records=lambda wc: expand("results/{{sample}}/06_evaluate/{model}.json",
                                  model=evaluated_models(wc.sample)),
        particles=lambda wc: expand("results/{{sample}}/06_evaluate/{model}_particles.csv",
                                    model=evaluated_models(wc.sample)),
    output:
        csv="results/{sample}/06_evaluate/metrics.csv",
        md="results/{sample}/06_evaluate/metrics.md",
        truth_particles="results/{sample}/06_evaluate/truth_particles.csv",
        figure=report(
            "results/{sample}/06_evaluate/particles.png",
            caption="../report/evaluate_particles.rst",
            category="7 Evaluate",
            labels={"sample": "{sample}", "figure": "Pt particle sizes"},
        ),
    log:
        "results/{sample}/logs/evaluate.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/evaluate.py"
