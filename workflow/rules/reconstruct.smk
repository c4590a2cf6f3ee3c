rule reconstruct_slab:
    wildcard_constraints:
        sample=samples_pattern(["simulate", "tiltseries"]),
    input:
        unpack(recon_inputs),
    output:
        slab=temp("results/{sample}/02_recon/slabs/{slab}.npy"),
        json=temp("results/{sample}/02_recon/slabs/{slab}.json"),
    params:
        settings=lambda wc: rule_params(config, wc.sample, "reconstruct"),
    log:
        "results/{sample}/logs/reconstruct_slab{slab}.log",
    threads: 2
    resources:
        gpu=1,  # used when present (astra-gpu); never shared between jobs
        attempt=attempt_number,  # the runner retries a GPU out of memory only
    retries: GPU_RETRIES
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/reconstruct_slab.py"


rule reconstruct:
    wildcard_constraints:
        sample=samples_pattern(["simulate", "tiltseries"]),
    input:
        slabs=lambda wc: expand("results/{{sample}}/02_recon/slabs/{slab}.npy",
                                slab=range(slab_count(wc.sample))),
        records=lambda wc: expand("results/{{sample}}/02_recon/slabs/{slab}.json",
                                  slab=range(slab_count(wc.sample))),
        tiltseries=lambda wc: recon_inputs(wc)["tiltseries"],
    output:
        volume="results/{sample}/02_recon/volume.tif",
        json="results/{sample}/02_recon/recon.json",
        figure=report(
            "results/{sample}/02_recon/orthoslices.png",
            caption="../report/reconstruct.rst",
            category="3 Reconstruct",
            labels={"sample": "{sample}", "figure": "orthoslices"},
        ),
    log:
        "results/{sample}/logs/reconstruct.log",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/reconstruct.py"


rule reconstruct_mrc:
    """volume.mrc for IMOD and tomviz, asked for with reconstruct.mrc: true."""
    input:
        volume="results/{sample}/02_recon/volume.tif",
    output:
        mrc="results/{sample}/02_recon/volume.mrc",
    log:
        "results/{sample}/logs/reconstruct_mrc.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/reconstruct_mrc.py"


rule import_volume:
    """A reconstruction made elsewhere (samples.<s>.volume) as the sample's volume."""
    wildcard_constraints:
        sample=samples_pattern(["volume"]),
    input:
        volume=lambda wc: sample_cfg(wc.sample)["volume"],
    output:
        volume="results/{sample}/02_recon/volume.tif",
        json="results/{sample}/02_recon/recon.json",
        figure=report(
            "results/{sample}/02_recon/orthoslices.png",
            caption="../report/reconstruct.rst",
            category="3 Reconstruct",
            labels={"sample": "{sample}", "figure": "orthoslices"},
        ),
    params:
        axes=lambda wc: sample_cfg(wc.sample).get("volume_axes", "zyx"),
        pixel_size_nm=lambda wc: sample_cfg(wc.sample).get("pixel_size_nm"),
    log:
        "results/{sample}/logs/import_volume.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/import_volume.py"
