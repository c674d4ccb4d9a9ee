"""ReLU branch and bound: optimised DeepPoly (alpha, beta) bounds of sub-problems and the search over them."""
