rule export:
    input:
        volume=lambda wc: volume_of(wc.sample),
        labels="results/{sample}/05_segment/{model}/labels.tif",
    output:
        alumina_vtp="results/{sample}/07_export/{model}/alumina.vtp",
        pt_vtp="results/{sample}/07_export/{model}/pt.vtp",
        alumina_stl="results/{sample}/07_export/{model}/alumina.stl",
        pt_stl="results/{sample}/07_export/{model}/pt.stl",
        volume="results/{sample}/07_export/{model}/volume.vti",
        scene="results/{sample}/07_export/{model}/scene.py",
        json="results/{sample}/07_export/{model}/export.json",
        render=report(
            "results/{sample}/07_export/{model}/render.png",
            caption="../report/export.rst",
            category="8 3D",
            labels={"sample": "{sample}", "model": "{model}", "figure": "3D render"},
        ),
    params:
        settings=lambda wc: rule_params(config, wc.sample, "export"),
    log:
        "results/{sample}/logs/export_{model}.log",
    conda:
        "../../envs/viz.yaml"
    script:
        "../scripts/export.py"
