rule evaluate_model:
    input:
        unpack(evaluate_truth),
        unpack(evaluate_patches),
        volume=lambda wc: volume_of(wc.sample),
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
    params:
        # a 2D dataset's images are unrelated: particles are 2D components of each image
        planar=lambda wc: start(wc.sample) == "slices",
    log:
        "results/{sample}/logs/evaluate_{model}.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/evaluate_model.py"


rule agreement:
    """Where the networks disagree: their agreement on the unannotated slices and the slices worth
    annotating next (suggestions.csv, ranked), for the annotation helper and the report."""
    input:
        labels=labels_input,
        volume=lambda wc: volume_of(wc.sample),
        segmentations=lambda wc: expand("results/{{sample}}/05_segment/{model}/labels.tif",
                                        model=segmenting_networks(wc.sample)),
    output:
        csv="results/{sample}/06_evaluate/suggestions.csv",
        json="results/{sample}/06_evaluate/agreement.json",
        figure=report(
            "results/{sample}/06_evaluate/suggestions.png",
            caption="../report/evaluate_suggestions.rst",
            category="7 Evaluate",
            labels={"sample": "{sample}", "figure": "slices to annotate next"},
        ),
    params:
        models=lambda wc: segmenting_networks(wc.sample),  # not their ensemble
    log:
        "results/{sample}/logs/agreement.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/agreement.py"


rule evaluate:
    input:
        unpack(evaluate_truth),
        unpack(evaluate_agreement),
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
    params:
        planar=lambda wc: start(wc.sample) == "slices",
    log:
        "results/{sample}/logs/evaluate.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/evaluate.py"
