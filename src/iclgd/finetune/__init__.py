"""Study finetune: ICL vs fine-tuning on the same demonstrations (Shen et al. 2023; Dai et al. 2023)."""
