"""The reconstruct stage: chunked reconstruction with the projector loop or TomoPy."""
