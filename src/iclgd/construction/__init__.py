"""Study construction: the hand-constructed "ICL = GD" weights against real ones (Dai et al. 2023; von Oswald
et al. 2023 as Shen et al. 2023 test it)."""
