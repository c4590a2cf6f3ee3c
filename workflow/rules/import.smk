rule import_tiltseries:
    input:
        unpack(import_inputs),
    output:
        tiltseries="results/{sample}/00_import/tiltseries.tif",
        angles="results/{sample}/00_import/angles.txt",
        meta="results/{sample}/00_import/meta.json",
        figure=report(
            "results/{sample}/00_import/qc.png",
            caption="../report/import.rst",
            category="1 Import",
            labels={"sample": "{sample}", "figure": "imported tilt series"},
        ),
    params:
        settings=lambda wc: rule_params(config, wc.sample, "import"),
        angles=import_angles,
        pixel_size_nm=lambda wc: sample_cfg(wc.sample).get("pixel_size_nm"),
    log:
        "results/{sample}/logs/import.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/import.py"


rule import_slices:
    """A 2D dataset (samples.<s>.slices): images and masks paired, checked and stacked."""
    wildcard_constraints:
        sample=samples_pattern(["slices"]),
    input:
        lambda wc: slice_files(wc.sample),
    output:
        images="results/{sample}/00_slices/images.tif",
        labels="results/{sample}/00_slices/labels.tif",
        json="results/{sample}/00_slices/slices.json",
        figure=report(
            "results/{sample}/00_slices/overview.png",
            caption="../report/slices.rst",
            category="1 Import",
            labels={"sample": "{sample}", "figure": "2D dataset"},
        ),
    params:
        slices=lambda wc: canonical(sample_cfg(wc.sample)["slices"]),
        label_values=lambda wc: canonical(sample_cfg(wc.sample).get("label_values")),
        pixel_size_nm=lambda wc: sample_cfg(wc.sample).get("pixel_size_nm"),
    log:
        "results/{sample}/logs/import_slices.log",
    conda:
        "../../envs/io.yaml"
    script:
        "../scripts/import_slices.py"
