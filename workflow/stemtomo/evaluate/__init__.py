"""The evaluate stage: Table 1 metrics, HD95, Pt particles and detection, error maps."""
