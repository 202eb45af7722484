"""Tooling around the science core (bench, shape run, GPU checks, Slurm profile, cost table): depends on core and studies, never the reverse."""
