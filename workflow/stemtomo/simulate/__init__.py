"""The simulate stage: a synthetic Pt/γ-Al2O3 catalyst (phantom) and its misaligned HAADF tilt
series (acquisition)."""
