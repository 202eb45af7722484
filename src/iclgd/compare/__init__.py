"""Study compare: how ICL and fine-tuning move the output distribution on the same examples (Shen et al. 2023;
Dai et al. 2023), next to an untrained control (Deutch et al. 2024)."""
