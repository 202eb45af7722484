"""Study compare declares itself (iclgd.core.studies): it compares ICL with the fine-tuned runs of study finetune
on the same (model, dataset) pairs and has no config block; its claims are sized, like finetune's, by the
demonstration sets per setting."""

from iclgd.core.studies import StudySpec, prompt_sets_knob

STUDY = StudySpec(name="compare", title="ICL vs fine-tuning: output distributions and the untrained control "
                  "(Shen et al. 2023; Dai et al. 2023; Deutch et al. 2024)", position=25, block=False,
                  knob=prompt_sets_knob)
