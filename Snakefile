"""iclgd: how do pretrained language models learn in context?

A shared core (workflow/rules/data.smk: data, models, prompts; claims.smk: statistics; paper.smk:
the paper) around one rule file per study (icl_vs_gd, dai_metrics, kernel_regression,
label_relationships), each with one library package of the same name under src/iclgd/. Inside a
study the DAG runs run -> metrics -> figures -> paper numbers; every study feeds the claims table
and the paper. Run `make reproduce` (default config) or `snakemake --configfile config/smoke.yaml`.
"""

from snakemake.utils import min_version, validate

from iclgd.core.config import typed

min_version("9.0")


report: "workflow/report/workflow.rst"


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# config/schema.yaml: every default and description; --config values arrive as strings (typed fixes them)
typed(config, os.path.join(workflow.basedir, "config", "schema.yaml"))
validate(
    config, os.path.join(workflow.basedir, "config", "schema.yaml"), set_default=True
)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/icl_vs_gd.smk"
include: "workflow/rules/dai_metrics.smk"
include: "workflow/rules/kernel_regression.smk"
include: "workflow/rules/label_relationships.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
