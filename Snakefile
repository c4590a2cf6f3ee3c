# stemtomo: raw HAADF-STEM tilt series → aligned series → reconstruction → segmentation → 3D.
from snakemake.utils import min_version

min_version("9.0")


# The demo's config.yaml, unless --configfile names another: Snakemake would otherwise merge the
# two, keeping the demo sample and its settings under the user's.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/import.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/reconstruct.smk"
include: "workflow/rules/denoise.smk"
include: "workflow/rules/patches.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/export.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
