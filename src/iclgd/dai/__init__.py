"""Study dai: Dai et al.'s (2023) metrics of ICL as implicit fine-tuning (SimAOU, SimAM, Rec2FTP)."""
