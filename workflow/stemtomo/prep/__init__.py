"""The import stage: any supported tilt-series file → the pipeline's float32 series."""
