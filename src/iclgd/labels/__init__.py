"""Study labels: ICL learns label relationships but is not conventional learning (Kossen et al. 2023)."""
