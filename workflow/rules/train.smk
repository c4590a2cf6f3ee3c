rule train:
    input:
        train="results/{sample}/03_patches/train.npz",
        val="results/{sample}/03_patches/val.npz",
        patches="results/{sample}/03_patches/patches.json",
    output:
        model="results/{sample}/04_models/{model}/model.pt",
        history="results/{sample}/04_models/{model}/history.csv",
        figure=report(
            "results/{sample}/04_models/{model}/curves.png",
            caption="../report/train.rst",
            category="5 Train",
            labels={"sample": "{sample}", "model": "{model}"},
        ),
    params:
        settings=lambda wc: model_settings(config, wc.sample, wc.model),
        # Not an output: it must survive a killed job so that the rerun resumes from it.
        checkpoint=lambda wc: f"results/{wc.sample}/04_models/{wc.model}/checkpoint.pt",
    log:
        "results/{sample}/logs/train_{model}.log",
    wildcard_constraints:
        model="|".join(MODELS),  # not the ensemble: it is made of these
    threads: 2
    resources:
        gpu=1,
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/train.py"
