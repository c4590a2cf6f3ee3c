"""What every stage shares: errors, file I/O and readers, geometry conventions, config
validation and typed settings, the rule runner and provenance, the label vocabulary, intensity
levels and overlap counts."""
