"""The default numpy rules (adaptive lattices, dmftools.numeric.lattice) against mpmath.

Every path of :func:`nested_averages` is exercised: the shared lattice with outer stride 1
and > 1, Mehler's series (small Delta_inf / Delta_0, including Delta_inf = 0), and the
Gauss-Hermite product rules for a thin outer or inner dimension. References: mpmath at 30
digits (its own lattice rules, checked against tanh-sinh in test_quadrature.py) and the
closed form of the nested erf average.
"""

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import erf

from dmftools.numeric import lattice
from dmftools.numeric.compile import np_logcosh
from dmftools.numeric.quadrature import mp_gauss_average, mp_nested_average


def _np_integrands(x):
    t = np.tanh(x)
    d = 1 - t * t
    return [t, np_logcosh(x), d, -2 * t * d]


_MP_INTEGRANDS = [
    mpmath.tanh,
    lambda x: mpmath.log(mpmath.cosh(x)),
    lambda x: mpmath.sech(x) ** 2,
    lambda x: -2 * mpmath.tanh(x) * mpmath.sech(x) ** 2,
]
PAIRS = [(0, 0), (1, 1), (2, 0), (3, 0), (2, 2), (0, 1), (3, 3)]

# (mu, delta0, delta_inf) and the path each point takes with the default spacing 0.2
POINTS = [
    (0.3, 2.0, 1.0, "lattice, stride 2"),
    (1.0, 10.0, 3.0, "lattice, stride 4"),
    (-2.0, 40.0, 39.0, "lattice, inner narrow"),
    (0.5, 100.0, 20.0, "lattice, wide"),
    (0.0, 3.0, 0.0, "Mehler, Delta_inf = 0"),
    (0.7, 4.0, 1e-3, "Mehler, 5 terms"),
    (0.0, 0.011, 0.0099, "product, thin outer"),
    (1.5, 5.0, 4.999, "product, thin inner"),
    (0.2, 0.004, 0.002, "product, both thin"),
    (3.0, 0.0, 0.0, "zero variance"),
]


@pytest.fixture(scope="module")
def references():
    refs = {}
    with mpmath.workdps(30):
        for mu, d0, di, _ in POINTS:
            for a, b in PAIRS:
                refs[mu, d0, di, a, b] = mp_nested_average(_MP_INTEGRANDS[a], _MP_INTEGRANDS[b], mu, d0, di)
    return refs


def test_paths_are_the_ones_named():
    """Guards the test's coverage: the points above take the paths their labels say."""
    thin = lattice.THIN_FRACTION * lattice.SPACING
    for mu, d0, di, label in POINTS:
        s, r = np.sqrt(d0 - di), np.sqrt(di)
        rho = di / d0 if d0 > 0 else 0.0
        if label.startswith("lattice"):
            assert s >= thin and r >= thin
            m = int(lattice._outer_stride(np.array([s]), np.array([r]), lattice.SPACING)[0])
            if "stride" in label:
                assert m == int(label.split()[-1])
        elif label.startswith("Mehler"):
            assert r < thin and rho <= lattice.MEHLER_RHO
        elif label.startswith("product"):
            assert (r < thin and rho > lattice.MEHLER_RHO) or (s < thin and r >= thin)


def test_nested_against_mpmath(references):
    mu, d0, di = (np.array([p[k] for p in POINTS]) for k in range(3))
    values = lattice.nested_averages(_np_integrands, 4, PAIRS, mu, d0, di)
    for (a, b), v in zip(PAIRS, values):
        for i, (m, d, e, label) in enumerate(POINTS):
            ref = references[m, d, e, a, b]
            # trapezoid errors ~1e-15 (module notes); sums of O(100) terms of size up to
            # |log cosh| ~ 10 at Delta = 100 round at ~1e-14 absolute
            assert abs(v[i] - float(ref)) <= 1e-13 * max(1.0, abs(float(ref))), (label, a, b, v[i], ref)


def test_single_against_mpmath():
    mus = np.array([0.0, 1.0, 5.0, -0.3])
    deltas = np.array([1e-6, 0.01, 1.0, 100.0])
    mu, delta = (a.ravel() for a in np.meshgrid(mus, deltas, indexing="ij"))
    values = lattice.single_averages(_np_integrands, 4, mu, delta)
    with mpmath.workdps(30):
        for k, f in enumerate(_MP_INTEGRANDS):
            for i in range(mu.size):
                ref = float(mp_gauss_average(f, mu[i], delta[i]))
                # same rule as above: ~1e-15 relative, rounding of the weighted sum
                assert abs(values[k][i] - ref) <= 1e-13 * max(1.0, abs(ref)), (k, mu[i], delta[i])


@pytest.mark.parametrize("a, spacing", [(0.5, lattice.SPACING), (1.0, lattice.SPACING), (3.0, lattice.SPACING / 3)])
def test_nested_erf_closed_form(a, spacing):
    """[[erf(a x)]](0, D0, Dinf) = (2/pi) arcsin(2 a^2 Dinf / (1 + 2 a^2 D0)), every path.

    The default spacing is set for transfer functions varying on the scale 1 (slope <= ~1);
    erf(3 x) varies three times faster and needs a third of it.
    """
    d0 = np.array([0.004, 0.011, 0.5, 2.0, 10.0, 40.0, 100.0])
    frac = np.array([0.0, 1e-4, 0.01, 0.3, 0.9, 0.999, 1.0])
    d0, dinf = (x.ravel() for x in np.meshgrid(d0, frac, indexing="ij"))
    dinf = dinf * d0
    [val] = lattice.nested_averages(lambda x: erf(a * x), 1, [(0, 0)], 0.0, d0, dinf, spacing=spacing)
    ref = 2 / np.pi * np.arcsin(2 * a**2 * dinf / (1 + 2 * a**2 * d0))
    np.testing.assert_allclose(val, ref, rtol=0, atol=1e-14)  # trapezoid error ~1e-15 for |values| <= 1


@settings(max_examples=40, deadline=None)
@given(mu=st.floats(-3, 3), d0=st.floats(0.05, 60), frac=st.floats(0.05, 0.95))
def test_outer_stride_matches_full_lattice(mu, d0, frac):
    """The strided outer rule equals the rule on every lattice point (stride 1)."""
    di = frac * d0
    strided = lattice.nested_averages(_np_integrands, 4, PAIRS, mu, d0, di)
    s, r = np.sqrt(d0 - di), np.sqrt(di)
    full = lattice._nested_lattice(_np_integrands, 4, PAIRS, np.array([mu]), np.array([s]), np.array([r]),
                                   lattice.SPACING, 1)
    for v, w in zip(strided, full):
        assert abs(float(v) - float(w[0])) <= 1e-13 * max(1.0, abs(float(w[0])))  # both ~1e-15 from the integral


@settings(max_examples=40, deadline=None)
@given(mu=st.floats(-3, 3), d0=st.floats(0.05, 60), rho=st.floats(0, 0.05))
def test_mehler_matches_product_rule(mu, d0, rho):
    """Mehler's series equals the Gauss-Hermite x trapezoid product rule where both apply."""
    di = min(rho * d0, 0.0099)  # outer standard deviation below the thin threshold 0.1
    mehler = lattice._nested_mehler(_np_integrands, 4, PAIRS, np.array([mu]), np.array([d0]), np.array([di / d0]),
                                    lattice.SPACING)
    thin = lattice.THIN_FRACTION * lattice.SPACING
    product = lattice._nested_product(_np_integrands, 4, PAIRS, np.array([mu]), np.array([np.sqrt(d0 - di)]),
                                      np.array([np.sqrt(di)]), lattice.SPACING, thin)
    for v, w in zip(mehler, product):
        # Gauss-Hermite (13 nodes) in a dimension of width < 0.1: error O(0.1^26); Mehler < 1e-17
        assert abs(float(v[0]) - float(w[0])) <= 1e-13 * max(1.0, abs(float(w[0])))


def test_mehler_terms():
    assert lattice._mehler_terms(0.0) == 1
    for rho in (1e-6, 1e-3, 0.05):
        k = lattice._mehler_terms(rho)
        assert rho**k / (1 - rho) <= 1e-17 < rho ** (k - 1) / (1 - rho)


def test_absurd_variances_are_a_clear_error_not_an_allocation():
    # 1e18 would need ~1e11 nodes (a 44 GiB allocation, seen from a runaway Newton iterate)
    with pytest.raises(ValueError, match=r"^delta: a variance of 1e\+18 needs .* at most 4194304"):
        lattice.single_averages(np.tanh, 1, 0.0, 1e18)
    with pytest.raises(ValueError, match=r"^delta0: a variance of 1e\+12"):
        lattice.nested_averages(np.tanh, 1, [(0, 0)], 0.0, 1e12, 1.0)
    # a large but representable variance still works: [tanh](1, D) -> 2 phi(0) / sqrt(D) for D >> 1
    [v] = lattice.single_averages(np.tanh, 1, 1.0, 1e8)
    assert v == pytest.approx(np.sqrt(2 / np.pi) * 1e-4, rel=1e-7)  # next term O(1/D)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 1 << 22), max_size=300), st.integers(10, 24))
def test_chunks_partition_rows_within_budget(costs, budget_log2):
    """Every row lands in exactly one chunk; a chunk of several rows stays within the element
    budget, and pads its rows by at most the allowed slack."""
    cost = np.asarray(costs, dtype=float)
    old = lattice._CHUNK_ELEMENTS
    lattice._CHUNK_ELEMENTS = 1 << budget_log2
    try:
        chunks = list(lattice._chunks(cost))
    finally:
        lattice._CHUNK_ELEMENTS = old
    rows = np.concatenate(chunks) if chunks else np.array([], dtype=int)
    assert np.array_equal(np.sort(rows), np.arange(cost.size))
    for idx in chunks:
        assert idx.size == 1 or idx.size * cost[idx].max() <= 1 << budget_log2
        padding = idx.size * cost[idx].max() - cost[idx].sum()
        assert padding <= max(lattice._PAD_ELEMENTS, 0.25 * cost[idx].sum())


def test_chunks_separate_narrow_rows_from_a_wide_one():
    """One wide row does not pad a thousand narrow ones to its width."""
    cost = np.array([37.0] * 1000 + [451.0])
    chunks = list(lattice._chunks(cost))
    assert len(chunks) == 2 and chunks[1].tolist() == [1000]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(1e-3, 30.0), min_size=1, max_size=20), st.floats(0.05, 0.5), st.integers(0, 60))
def test_mirrored_weights_equal_the_direct_formula(stds, spacing, width):
    """The Gaussian weights are computed for offsets >= 0 and mirrored: bit for bit the
    direct formula over all offsets (``(-x)^2 == x^2``), including the per-row cut-off.
    (Standard deviations up to 30 at spacing >= 0.05: rows of at most ~11 000 nodes.)"""
    std = np.asarray(stds)
    z, w = lattice._trapezoid_rows(std, spacing)
    hz = np.minimum(lattice.Z_SPACING, spacing / std)
    k_row = np.ceil(lattice.HALF_WIDTH / hz).astype(int)
    k = np.arange(-k_row.max(), k_row.max() + 1)
    direct = np.exp(-0.5 * (k[None, :] * hz[:, None]) ** 2) * (np.abs(k)[None, :] <= k_row[:, None])
    np.testing.assert_array_equal(z, k[None, :] * hz[:, None])
    np.testing.assert_array_equal(w, direct / direct.sum(axis=1, keepdims=True))
    limit = np.minimum(np.arange(std.size) % (width + 1), width)
    offsets = np.arange(-width, width + 1) * spacing * std[:, None]
    direct = np.exp(-0.5 * (offsets / std[:, None]) ** 2) * (np.abs(np.arange(-width, width + 1))[None, :] <= limit[:, None])
    np.testing.assert_array_equal(lattice._gaussian_rows(offsets, std, limit), direct / direct.sum(axis=1, keepdims=True))
