"""iclgd: how do pretrained language models learn in context?

A shared core (workflow/rules/data.smk: data, models, prompts; claims.smk: statistics; paper.smk:
the paper) around one rule file per study, each with one library package of the same name under
src/iclgd/ that declares the study (study.py; iclgd.core.studies finds them): icl, finetune, compare,
order, construction, dai, labels, kernel. Inside a study the DAG runs run -> metrics -> figures -> paper
numbers; a study feeds the claims table and the paper through `contribute` (common.smk). Run
`make reproduce` (default config) or `snakemake --configfile config/smoke.yaml`.
"""

from snakemake.utils import min_version, validate

from iclgd.core.config import check_renamed
from iclgd.core.config_files import typed

min_version("9.0")


report: "workflow/report/workflow.rst"


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# config/schema.yaml: every default and description; --config values arrive as strings (typed fixes them)
check_renamed(config)
typed(config, os.path.join(workflow.basedir, "config", "schema.yaml"))
validate(
    config, os.path.join(workflow.basedir, "config", "schema.yaml"), set_default=True
)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


# one rule file per study, found through the study registry (src/iclgd/<study>/study.py)
for study in RUN.specs:

    include: f"workflow/rules/{study.name}.smk"


include: "workflow/rules/claims.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
