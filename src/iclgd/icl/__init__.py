"""Study icl: ICL accuracy against the number of demonstrations N, per model and dataset (Shen et al. 2023)."""
