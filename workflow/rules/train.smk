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
        # Not outputs: the checkpoint must survive a killed job so that the rerun resumes from it,
        # the last weights (previous.pt) a rerun so that it can start from them (train.init_from).
        checkpoint=lambda wc: f"results/{wc.sample}/04_models/{wc.model}/checkpoint.pt",
        previous=lambda wc: f"results/{wc.sample}/04_models/{wc.model}/previous.pt",
    log:
        "results/{sample}/logs/train_{model}.log",
    wildcard_constraints:
        model="|".join(MODELS),  # not the ensemble: it is made of these
    threads: 2
    resources:
        gpu=1,
        attempt=attempt_number,  # the runner retries a GPU out of memory only
    retries: GPU_RETRIES
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/train.py"
