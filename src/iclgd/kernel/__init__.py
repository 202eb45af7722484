"""ICL as kernel regression (Han et al. 2023): last-token attention over the demonstrations read as
kernel weights.

Experiment (rule kernel; study kernel, src/iclgd/kernel/study.py): `run.run_kernel`, built on `spans` (where each demonstration's
input and label token sit in the prompt), `attention` (eager last-token attention capture),
`heads` (reconstruction from kernel weights, head scores and selection, similarity correlation),
`probes` (ridge probes of keys and values), `embeddings` (kernel regression and kNN on sentence
embeddings), `prompt_sets` (extra queries, retrieved demonstrations, label symbols) and
`summaries` (the per-run frames and held-out statistics).
Paper outputs (rules figure_kernel, kernel_paper_numbers): `report`.
"""
