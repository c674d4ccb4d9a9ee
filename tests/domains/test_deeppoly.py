"""DeepPoly-specific tests: the ReLU relaxation against an independently computed DeepPoly formula,
block-size invariance of back-substitution, and regressions.

Reference formula (Singh et al. POPL 2019) for a ReLU over [l, u], crossing when l < 0 < u:
upper chord y <= u(x - l)/(u - l); lower y >= a x with a = 1 if u > -l else 0 (area heuristic);
stable neurons: y = x (l >= 0) or y = 0 (u <= 0). An Affine y = Wz + b after it is bounded by
back-substitution: upper = max over the box of (W⁺ diag(a_u) + W⁻ diag(a_l)) z + W⁺ b_u + b,
intersected with the interval bound W⁺ relu(u) + W⁻ relu(l) + b.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from absint.analysis import analyze
from absint.domains import Options
from absint.network import NETWORK_INPUT, Affine, Network, Node, ReLU
from tests.domains.cases import RANDOM_SETTINGS, benchmark_case, check_random, random_case, random_cases

DOMAIN = "deeppoly"


# --------------------------------------------------------------------- reference formula
def relu_slopes(l: np.ndarray, u: np.ndarray, tie_slope: float = 0.0, flip: bool = False):
    """(a_l, a_u, b_u) of the DeepPoly ReLU relaxation; ``flip`` inverts the area heuristic (a wrong
    implementation the tests must tell apart), ``tie_slope`` is the lower slope when u == -l."""
    cross = (l < 0) & (u > 0)
    a_l = np.where(l >= 0, 1.0, 0.0)
    a_u = a_l.copy()
    b_u = np.zeros_like(l)
    lc, uc = l[cross], u[cross]
    heuristic = np.where(uc > -lc, 1.0, np.where(uc == -lc, tie_slope, 0.0))
    a_l[cross] = 1.0 - heuristic if flip else heuristic
    a_u[cross] = uc / (uc - lc)
    b_u[cross] = -uc * lc / (uc - lc)
    return a_l, a_u, b_u


def box_range(C: np.ndarray, const: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """min and max of C x + const over the box [lo, hi]."""
    cp, cn = np.maximum(C, 0), np.minimum(C, 0)
    return cp @ lo + cn @ hi + const, cp @ hi + cn @ lo + const


def deeppoly_relu_affine(W1, b1, W2, b2, lo, hi, **slope_kwargs):
    """DeepPoly bounds of W2 relu(W1 x + b1) + b2 over [lo, hi], and the bounds of W1 x + b1."""
    l1, u1 = box_range(W1, b1, lo, hi)  # exact range of the first Affine (back-substitution to the box)
    a_l, a_u, b_u = relu_slopes(l1, u1, **slope_kwargs)
    wp, wn = np.maximum(W2, 0), np.minimum(W2, 0)
    up = wp * a_u + wn * a_l  # coefficients on the ReLU input, upper bound
    low = wp * a_l + wn * a_u
    _, upper = box_range(up @ W1, up @ b1 + wp @ b_u + b2, lo, hi)
    lower, _ = box_range(low @ W1, low @ b1 + wn @ b_u + b2, lo, hi)
    r_l, r_u = np.maximum(l1, 0), np.maximum(u1, 0)
    inter_lo, inter_hi = box_range(W2, b2, r_l, r_u)
    return np.maximum(lower, inter_lo), np.minimum(upper, inter_hi), (l1, u1)


def relu_affine_net(W1, b1, W2, b2, n_in: int) -> Network:
    return Network((n_in,), [Node("fc1", Affine(W1, b1), (NETWORK_INPUT,)), Node("relu", ReLU(), (0,)),
                             Node("fc2", Affine(W2, b2), (1,))])


def relu_affine_case(seed: int, kind: str):
    """Random W2, b2 and a box straddling 0 so that both lower-slope choices occur. ``kind`` "dense":
    Gaussian W1, b1; "copy": each hidden neuron is ±x_j (exact bounds, several neurons per input, so
    back-substitution beats intervals), and a quarter of the inputs get a symmetric box [-r, r]: an
    area-heuristic tie u == -l, whose lower slope is 0."""
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_out = int(rng.integers(2, 8)), int(rng.integers(4, 16)), int(rng.integers(3, 7))
    W2, b2 = rng.normal(size=(n_out, n_hidden)), rng.normal(size=n_out) * 0.3
    if kind == "dense":
        W1, b1 = rng.normal(size=(n_hidden, n_in)), rng.normal(size=n_hidden) * 0.3
        centre, radius = rng.normal(size=n_in) * 0.3, rng.uniform(0.1, 1.0, size=n_in)
    else:
        W1, b1 = np.zeros((n_hidden, n_in)), np.zeros(n_hidden)
        src = rng.integers(0, n_in, size=n_hidden)
        src[:3] = 0  # input 0 (a tie) feeds three hidden neurons
        W1[np.arange(n_hidden), src] = rng.choice([-1.0, 1.0], size=n_hidden)
        centre, radius = rng.normal(size=n_in) * 0.5, rng.uniform(0.1, 1.5, size=n_in)
        tie = rng.random(n_in) < 0.25
        tie[0] = True
        centre[tie] = 0.0
    return W1, b1, W2, b2, centre - radius, centre + radius


@pytest.mark.parametrize("kind", ["copy", "dense"])
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("sound_fp", [False, True])
def test_relu_then_affine_matches_deeppoly_formula(kind, seed, sound_fp):
    """Affine, ReLU, Affine: the output bounds equal the reference DeepPoly formula (sound mode: slightly
    outside it), and differ from those of a wrong lower-slope rule (inverted heuristic; tie -> 1)."""
    W1, b1, W2, b2, lo, hi = relu_affine_case(seed, kind)
    net = relu_affine_net(W1, b1, W2, b2, lo.size)
    exp_lo, exp_hi, (l1, u1) = deeppoly_relu_affine(W1, b1, W2, b2, lo, hi)
    cross = (l1 < 0) & (u1 > 0)
    assert cross.any(), "test case has no crossing ReLU"
    # the case must tell a wrong slope choice apart from the right one
    scale = float(np.max(np.abs(W2) @ np.maximum(np.abs(l1), np.abs(u1)) + np.abs(b2)))
    atol = 1e-9 * scale
    wrong = [deeppoly_relu_affine(W1, b1, W2, b2, lo, hi, flip=True)]
    if kind == "copy":
        wrong.append(deeppoly_relu_affine(W1, b1, W2, b2, lo, hi, tie_slope=1.0))
    for w_lo, w_hi, _ in wrong:
        assert max(np.max(np.abs(w_lo - exp_lo)), np.max(np.abs(w_hi - exp_hi))) > 1e3 * atol, \
            "test case does not distinguish slope choices"

    res = analyze(net, (lo, hi), domain=DOMAIN, sound_fp=sound_fp)
    np.testing.assert_allclose(res.lower, exp_lo, rtol=0, atol=atol)
    np.testing.assert_allclose(res.upper, exp_hi, rtol=0, atol=atol)
    relu_lo, relu_hi = res.layer_bounds[-2]
    np.testing.assert_allclose(relu_lo, np.maximum(l1, 0), rtol=0, atol=atol)
    np.testing.assert_allclose(relu_hi, np.maximum(u1, 0), rtol=0, atol=atol)
    if sound_fp:  # rounding errors are bounded outwards: slightly outside the float formula
        assert np.all(res.lower <= exp_lo) and np.all(res.upper >= exp_hi)
        assert np.all(relu_lo <= np.maximum(l1, 0)) and np.all(relu_hi >= np.maximum(u1, 0))


def test_relu_difference_by_hand():
    """y = relu(x) - relu(x) on x ∈ [-1, 2]: intervals give [-2, 2]; DeepPoly (lower slope 1 since
    u > -l, upper chord 2(x + 1)/3) gives max/min of ±(2(x + 1)/3 - x) over [-1, 2] = [-1, 1];
    the lower slope 0 would give [-2, 2]."""
    net = relu_affine_net(np.array([[1.0], [1.0]]), np.zeros(2), np.array([[1.0, -1.0]]), np.zeros(1), 1)
    box = (np.array([-1.0]), np.array([2.0]))
    res = analyze(net, box, domain=DOMAIN, sound_fp=False)
    np.testing.assert_allclose([res.lower[0], res.upper[0]], [-1.0, 1.0], rtol=0, atol=1e-12)
    inter = analyze(net, box, domain="interval", sound_fp=False)
    np.testing.assert_allclose([inter.lower[0], inter.upper[0]], [-2.0, 2.0], rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- block size
BLOCK_SIZES = (1, 7, 512)


def _assert_block_sizes_agree(net, lower, upper):
    ref = None
    for k in BLOCK_SIZES:
        res = analyze(net, (lower, upper), domain=DOMAIN, options=Options(block_size=k))
        if ref is None:
            ref = res
            continue
        for node, ((l0, u0), (l1, u1)) in enumerate(zip(ref.layer_bounds, res.layer_bounds)):
            np.testing.assert_allclose(l1, l0, rtol=1e-12, atol=0, err_msg=f"block_size={k}, node {node} lower")
            np.testing.assert_allclose(u1, u0, rtol=1e-12, atol=0, err_msg=f"block_size={k}, node {node} upper")


@RANDOM_SETTINGS
@given(case=random_cases("relu"))
def test_block_size_does_not_change_bounds_on_random_networks(case):
    """Random networks with a ReLU (and any other operators, e.g. conv, maxpool, residual Add)."""
    net, lower, upper, _ = random_case(*case, n=30)
    _assert_block_sizes_agree(net, lower, upper)


@pytest.mark.parametrize("family, net, prop, n", [("acasxu", "ACASXU_run2a_1_1_batch_2000.onnx", "prop_1.vnnlib", 6000),
                                                   ("mnistfc", "mnist-net_256x2.onnx", "prop_0_0.03.vnnlib", 3000)])
def test_block_size_does_not_change_bounds_on_benchmarks(family, net, prop, n):
    network, lower, upper, _ = benchmark_case(family, net, prop, n)
    _assert_block_sizes_agree(network, lower, upper)


# ----------------------------------------------------------------------------- regressions
# DeepPoly _refine intersected the interval bound and the back-substituted bound of a zero-width neuron, two
# differently rounded floats; with sound_fp=False lower > upper by 1 ulp (fixed: _uncross)


def test_unsound_mode_point_box_bounds_not_inverted():
    """Minimal reproducer: y = -0.13 x0 + 0.64 x1 + 0.1 x2 - 0.54 at the point x = (0.36, 1.3, 0.95)
    (a zero-width box), sound_fp=False: interval gives W x + b, back-substitution (W x) + b."""
    net = Network((3,), [Node("fc", Affine(np.array([[-0.13, 0.64, 0.1]]), np.array([-0.54])), (NETWORK_INPUT,))])
    x = np.array([0.36, 1.3, 0.95])
    res = analyze(net, (x, x), domain=DOMAIN, sound_fp=False)
    assert res.lower[0] <= res.upper[0], f"inverted bounds [{res.lower[0]!r}, {res.upper[0]!r}]"


def test_unsound_mode_random_point_box_bounds_not_inverted():
    """The hypothesis example that found it: one random Affine layer over a zero-width box."""
    check_random(DOMAIN, ("affine",), 0, "point", n=10, sound_fp=False, rtol=1e-9, tol=1e-12)


# ------------------------------------------------------------------ receptive-field windows
def _assert_windows_agree(net, lower, upper, sound_fp=True):
    """Back-substitution on receptive-field windows gives the dense rows' bounds at every node."""
    dense = analyze(net, (lower, upper), domain=DOMAIN, options=Options(conv_windows=False, sound_fp=sound_fp))
    windows = analyze(net, (lower, upper), domain=DOMAIN, options=Options(conv_windows=True, sound_fp=sound_fp))
    for node, ((l0, u0), (l1, u1)) in enumerate(zip(dense.layer_bounds, windows.layer_bounds)):
        scale = np.maximum(1.0, np.maximum(np.abs(l0), np.abs(u0)))
        np.testing.assert_array_less(np.abs(l1 - l0) / scale, 1e-12, err_msg=f"node {node} lower")
        np.testing.assert_array_less(np.abs(u1 - u0) / scale, 1e-12, err_msg=f"node {node} upper")


@RANDOM_SETTINGS
@given(case=random_cases("conv"))
def test_conv_windows_do_not_change_bounds_on_random_networks(case):
    """Random networks with a convolution (strides, padding, dilation, groups drawn) among other operators."""
    net, lower, upper, _ = random_case(*case, n=30)
    _assert_windows_agree(net, lower, upper)


@pytest.mark.parametrize("sound_fp", [True, False])
def test_conv_windows_do_not_change_bounds_on_conv_networks(sound_fp):
    from absint.zoo.cifar import cifar_conv, cifar_conv_input
    from absint.box import Box

    box = Box.linf(cifar_conv_input(), 2 / 255)
    _assert_windows_agree(cifar_conv(2), box.lower, box.upper, sound_fp)


def test_conv_windows_do_not_change_bounds_on_oval21():
    net, lower, upper, _ = benchmark_case("oval21", "nets/cifar_base_kw.onnx", None, 10)
    _assert_windows_agree(net, lower, upper)


@pytest.mark.parametrize("seed", range(3))
def test_conv_windows_with_strides_padding_dilation_groups(seed):
    """conv -> relu -> conv (stride 2, uneven padding, dilation 2, 2 groups) -> relu -> conv -> relu -> affine:
    windows grow, leave the map at its borders and are finally materialised for the affine rows."""
    from absint.network import Conv2d, Reshape

    rng = np.random.default_rng(seed)
    c1 = Conv2d(rng.normal(size=(4, 2, 3, 3)) * 0.5, rng.normal(size=4) * 0.1, (1, 1), (1, 1, 1, 1))
    c2 = Conv2d(rng.normal(size=(6, 2, 3, 2)) * 0.5, rng.normal(size=6) * 0.1, (2, 1), (1, 0, 2, 1), (2, 1), 2)
    c3 = Conv2d(rng.normal(size=(3, 6, 2, 2)) * 0.5, rng.normal(size=3) * 0.1)
    layers = [c1, ReLU(), c2, ReLU(), c3, ReLU()]
    nodes = [Node(f"n{k}", layer, (k - 1,)) for k, layer in enumerate(layers)]
    net = Network((2, 9, 8), nodes)
    flat = int(np.prod(net.nodes[-1].shape))
    nodes += [Node("flat", Reshape((flat,)), (len(nodes) - 1,)),
              Node("fc", Affine(rng.normal(size=(3, flat)), np.zeros(3)), (len(nodes),))]
    net = Network((2, 9, 8), nodes)
    x = rng.normal(size=(2, 9, 8))
    _assert_windows_agree(net, x - 0.3, x + 0.3)
    _assert_windows_agree(net, x - 0.3, x + 0.3, sound_fp=False)
