"""Noise-symbol storage backends (no imports from absint/)."""
