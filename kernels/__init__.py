"""numba kernels over plain arrays (no imports from absint/)."""
