"""Study icl declares itself (iclgd.core.studies): ICL scoring of every prompt set, on every model in use and
the untrained controls. Its config block `icl` also sets the shared prompt sets every study reads (core)."""

from iclgd.core.studies import StudySpec

STUDY = StudySpec(name="icl", title="ICL accuracy against N (Shen et al. 2023)", position=10)
