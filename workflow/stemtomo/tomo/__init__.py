"""Projection operators and reconstruction algorithms shared by simulate, align and reconstruct."""
