"""Study order: sensitivity of ICL and of fine-tuning to the order of the demonstrations (Shen et al. 2023)."""
