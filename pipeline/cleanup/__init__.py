"""Stage 4: optional per-track 2D clean-up (outlier frames, Savitzky-Golay, robust PCA, ankle correction)."""


