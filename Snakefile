"""iclgd: how do pretrained language models learn in context?

data -> prompts -> icl -> finetune -> metrics -> stats -> figures -> paper.
Run `make reproduce` (default config) or `snakemake --configfile config/smoke.yaml`.
"""

from snakemake.utils import min_version, validate

min_version("9.0")


report: "workflow/report/workflow.rst"


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(
    config, os.path.join(workflow.basedir, "config", "schema.yaml"), set_default=True
)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/prompts.smk"
include: "workflow/rules/icl.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
