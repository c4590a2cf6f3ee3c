rule calibrate_ensemble:
    input:
        models=lambda wc: ensemble_members(wc.sample),
        val=lambda wc: f"results/{model_source(wc.sample)}/03_patches/val.npz",
    output:
        json=f"results/{{sample}}/05_segment/{ENSEMBLE}/calibration.json",
    params:
        settings=lambda wc: rule_params(config, wc.sample, "segment"),
    log:
        "results/{sample}/logs/calibrate_ensemble.log",
    threads: 2
    resources:
        gpu=1,
        attempt=attempt_number,  # the runner retries a GPU out of memory only
    retries: GPU_RETRIES
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/calibrate_ensemble.py"


rule segment_slab:
    input:
        unpack(ensemble_calibration),
        volumes=lambda wc: network_inputs(wc.sample),
        model=model_input,
    output:
        labels=temp("results/{sample}/05_segment/{model}/slabs/{slab}.npy"),
        probabilities=temp("results/{sample}/05_segment/{model}/slabs/{slab}.prob.npy"),
        json=temp("results/{sample}/05_segment/{model}/slabs/{slab}.json"),
    params:
        settings=lambda wc: rule_params(config, wc.sample, "segment"),
    log:
        "results/{sample}/logs/segment_{model}_slab{slab}.log",
    threads: 2
    resources:
        gpu=1,
        attempt=attempt_number,  # the runner retries a GPU out of memory only
    retries: GPU_RETRIES
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/segment_slab.py"


rule segment:
    input:
        volume=lambda wc: volume_of(wc.sample),
        labels=lambda wc: expand("results/{{sample}}/05_segment/{{model}}/slabs/{slab}.npy",
                                 slab=range(segment_slabs(wc.sample))),
        probabilities=lambda wc: expand(
            "results/{{sample}}/05_segment/{{model}}/slabs/{slab}.prob.npy",
            slab=range(segment_slabs(wc.sample))),
        records=lambda wc: expand("results/{{sample}}/05_segment/{{model}}/slabs/{slab}.json",
                                  slab=range(segment_slabs(wc.sample))),
    output:
        labels="results/{sample}/05_segment/{model}/labels.tif",
        json="results/{sample}/05_segment/{model}/segment.json",
    params:
        settings=lambda wc: rule_params(config, wc.sample, "segment"),
        probabilities=lambda wc: f"results/{wc.sample}/05_segment/{wc.model}/probabilities.tif",
    log:
        "results/{sample}/logs/segment_{model}.log",
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/segment.py"
