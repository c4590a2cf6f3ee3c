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
