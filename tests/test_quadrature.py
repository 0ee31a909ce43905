"""Numerical Gaussian averages against mpmath (30 digits) and closed forms."""

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import erf

from dmftools.numeric.quadrature import (
    DEFAULT_NODES, gauss_average, mp_gauss_average, mp_nested_average, nested_average, trapezoid_rule,
)

INTEGRANDS = {
    "tanh": (np.tanh, mpmath.tanh),
    "tanh^2": (lambda x: np.tanh(x) ** 2, lambda x: mpmath.tanh(x) ** 2),
    "tanh'": (lambda x: np.cosh(x) ** -2, lambda x: mpmath.sech(x) ** 2),
    "tanh'^2": (lambda x: np.cosh(x) ** -4, lambda x: mpmath.sech(x) ** 4),
    "tanh''": (lambda x: -2 * np.tanh(x) * np.cosh(x) ** -2, lambda x: -2 * mpmath.tanh(x) * mpmath.sech(x) ** 2),
}


@pytest.mark.parametrize("name", sorted(INTEGRANDS))
def test_default_rule_against_mpmath(name):
    """The issue's grid: mu in {0, 1, 5}, Delta in {1e-6 .. 100}; target 1e-10 relative."""
    f_np, f_mp = INTEGRANDS[name]
    worst = 0.0
    with mpmath.workdps(30):
        for mu in (0.0, 1.0, 5.0):
            for delta in (1e-6, 0.01, 1.0, 10.0, 100.0):
                ref = mp_gauss_average(f_mp, mu, delta)
                err = abs(mpmath.mpf(float(gauss_average(f_np, mu, delta))) - ref)
                # relative where the average is not zero by symmetry ([tanh](0, D) = 0)
                worst = max(worst, float(err / abs(ref)) if abs(ref) > 1e-20 else float(err))
    assert worst < 1e-10


def test_error_estimate_is_conservative():
    f_np, f_mp = INTEGRANDS["tanh'^2"]
    for nodes in (201, 401, DEFAULT_NODES):
        for mu, delta in ((0.0, 100.0), (1.0, 30.0), (5.0, 1.0)):
            val, est = gauss_average(f_np, mu, delta, nodes=nodes, error=True)
            with mpmath.workdps(30):
                true = abs(float(mp_gauss_average(f_mp, mu, delta)) - val)
            assert true <= est + 1e-16  # rounding floor of double precision sums


@pytest.mark.parametrize("a", [0.5, 1.0, 3.0])
def test_erf_closed_form_vectorised(a):
    mu = np.linspace(-3, 3, 7)[:, None]
    delta = np.array([0.0, 1e-3, 0.5, 4.0, 50.0])[None, :]
    val = gauss_average(lambda x: erf(a * x), mu, delta)
    assert val.shape == (7, 5)
    np.testing.assert_allclose(val, erf(a * mu / np.sqrt(1 + 2 * a**2 * delta)), rtol=0, atol=1e-13)


@pytest.mark.parametrize("a, d0_max, nodes", [(0.5, 10.0, None), (1.0, 10.0, None), (1.0, 40.0, 801), (2.0, 40.0, 801)])
def test_nested_erf_closed_form(a, d0_max, nodes):
    """[[erf(a x)]]_2(0, D0, Dinf) = (2/pi) arcsin(2 a^2 Dinf / (1 + 2 a^2 D0)) (zero-mean Gaussian pair).

    The default 201 x 201 rule resolves features of width 1/a in x up to Delta0 ~ 10; larger
    variances need more nodes (docs/accuracy.md), which is what the last two cases check.
    """
    d0 = np.linspace(0.5, d0_max, 4)
    d0, dinf = np.meshgrid(d0, [0.0, 0.3, 0.9, 1.0], indexing="ij")
    dinf = dinf * d0
    kwargs = {} if nodes is None else {"nodes": nodes}
    val = nested_average(lambda x: erf(a * x), lambda x: erf(a * x), 0.0, d0, dinf, **kwargs)
    ref = 2 / np.pi * np.arcsin(2 * a**2 * dinf / (1 + 2 * a**2 * d0))
    np.testing.assert_allclose(val, ref, rtol=0, atol=1e-12)  # trapezoid error < 1e-13 in this range


def test_nested_reduces_to_single_averages():
    mu = np.array([0.0, 0.7, -2.0])
    d0 = np.array([1.0, 3.0, 8.0])
    np.testing.assert_allclose(nested_average(np.tanh, np.tanh, mu, d0, 0 * d0), gauss_average(np.tanh, mu, d0) ** 2,
                               atol=1e-13)
    np.testing.assert_allclose(nested_average(np.tanh, np.tanh, mu, d0, d0),
                               gauss_average(lambda x: np.tanh(x) ** 2, mu, d0), atol=1e-13)


def test_nested_chunking_matches_unchunked(monkeypatch):
    import dmftools.numeric.quadrature as q

    mu = np.linspace(-1, 1, 13)
    full = nested_average(np.tanh, np.tanh, mu, 3.0, 1.0, nodes=51)
    monkeypatch.setattr(q, "_CHUNK_ELEMENTS", 51 * 51 * 2)  # chunks of two points
    chunked = nested_average(np.tanh, np.tanh, mu, 3.0, 1.0, nodes=51)
    # BLAS may block matmuls of different batch sizes differently: last-bit differences only
    np.testing.assert_allclose(chunked, full, rtol=4 * np.finfo(float).eps, atol=0)


@settings(max_examples=60, deadline=None)
@given(mu=st.floats(-4, 4), delta=st.floats(0, 25))
def test_stein_identity(mu, delta):
    """E[x f(x)] = mu [f] + Delta [f'] for x ~ N(mu, Delta)."""
    lhs = gauss_average(lambda x: x * np.tanh(x), mu, delta)
    rhs = mu * gauss_average(np.tanh, mu, delta) + delta * gauss_average(lambda x: np.cosh(x) ** -2, mu, delta)
    assert lhs == pytest.approx(rhs, rel=1e-11, abs=1e-12)  # both sides at quadrature accuracy ~1e-14


def test_bad_inputs():
    with pytest.raises(ValueError, match="delta"):
        gauss_average(np.tanh, 0.0, -1.0)
    with pytest.raises(ValueError, match="delta"):
        gauss_average(np.tanh, 0.0, np.nan)
    with pytest.raises(ValueError, match="delta0 - delta_inf"):
        nested_average(np.tanh, np.tanh, 0.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="nodes"):
        trapezoid_rule(200)
    with pytest.raises(ValueError, match="delta"):
        mp_gauss_average(mpmath.tanh, 0, -1)


def test_nested_against_mpmath():
    with mpmath.workdps(20):
        ref = mp_nested_average(mpmath.tanh, mpmath.tanh, 1.0, 10.0, 3.0)
    assert float(nested_average(np.tanh, np.tanh, 1.0, 10.0, 3.0)) == pytest.approx(float(ref), rel=1e-13)


# -- the mpmath lattice rules (dps = 30: accurate to >= 25 digits) ----------------------

def _erf_nested_exact(a, d0, dinf):
    return 2 / mpmath.pi * mpmath.asin(2 * a**2 * dinf / (1 + 2 * a**2 * d0))


@pytest.mark.parametrize("a", ["sqrtpi/2", 1, 3])
@pytest.mark.parametrize("d0, ratio", [
    (1, "0.5"),        # shared lattice
    (40, "0.3"),       # shared lattice, wide Gaussian
    (10, "1e-9"),      # delta_inf ~ 0 (homogeneous chaos): Mehler's series
    (5, "0.999999"),   # onset of chaos: Gauss-Hermite inner averages
    ("0.02", "0.7"),   # small variances
])
def test_mp_nested_erf_closed_form(a, d0, ratio):
    """[[erf(a x)]]_2(0, D0, Dinf) = (2/pi) arcsin(2 a^2 Dinf / (1 + 2 a^2 D0)) to >= 25 digits."""
    with mpmath.workdps(30):
        a = mpmath.sqrt(mpmath.pi) / 2 if a == "sqrtpi/2" else mpmath.mpf(a)
        d0 = mpmath.mpf(d0)
        dinf = d0 * mpmath.mpf(ratio)

        def f(x):
            return mpmath.erf(a * x)

        err = abs(mp_nested_average(f, f, 0, d0, dinf) - _erf_nested_exact(a, d0, dinf))
        assert err < mpmath.mpf(10) ** -25 * (1 + _erf_nested_exact(a, d0, d0))


def test_mp_single_closed_forms():
    with mpmath.workdps(30):
        for mu, d in (("0.3", "1e-6"), ("-1", "0.5"), ("2", "30")):
            mu, d = mpmath.mpf(mu), mpmath.mpf(d)
            for a in (mpmath.mpf("0.5"), mpmath.mpf(3)):
                exact = mpmath.erf(a * mu / mpmath.sqrt(1 + 2 * a**2 * d))
                assert abs(mp_gauss_average(lambda x: mpmath.erf(a * x), mu, d) - exact) < mpmath.mpf(10) ** -28
        # a kink (no analytic strip): the lattice check fails and mpmath.quad is used
        d = mpmath.mpf(2)
        assert abs(mp_gauss_average(abs, 0, d) - mpmath.sqrt(2 * d / mpmath.pi)) < mpmath.mpf(10) ** -25


@pytest.mark.parametrize("name", ["tanh", "tanh'^2", "tanh''"])
def test_mp_lattice_against_quad(name):
    """The lattice rule against tanh-sinh quadrature (mpmath.quad), single averages."""
    f = INTEGRANDS[name][1]
    with mpmath.workdps(30):
        for mu, d in ((0, "0.01"), (1, 1), (5, 10), (1, 100)):
            lattice = mp_gauss_average(f, mu, d)
            quad = mp_gauss_average(f, mu, d, method="quad")
            assert abs(lattice - quad) < mpmath.mpf(10) ** -27


def _logcosh(x):
    return mpmath.log(mpmath.cosh(x))


def test_mp_nested_matches_independent_reference():
    """The independent 40-digit reference of tests/reference (its own lattice rules)."""
    from reference import mp_reference as ref

    with mpmath.workdps(30):
        # (the reference is slow where one variance is tiny: its per-node lattices)
        for mu, d0, dinf in ((0.3, 5.0, 2.0), (-1.2, 0.4, 0.39), (-0.5, 1.5, 1.45)):
            phi = mp_nested_average(mpmath.tanh, mpmath.tanh, mu, d0, dinf)
            Phi = mp_nested_average(_logcosh, _logcosh, mu, d0, dinf)
            r_phi, r_Phi = ref.nested2_tanh([("phi", "phi"), ("Phi", "Phi")], mu, d0, dinf)
            assert abs(phi - mpmath.mpf(r_phi)) < mpmath.mpf(10) ** -27
            assert abs(Phi - mpmath.mpf(r_Phi)) < mpmath.mpf(10) ** -27 * (1 + abs(Phi))


@pytest.mark.slow
def test_mp_nested_against_quad():
    """One tanh case against nested tanh-sinh quadrature (method="quad": minutes)."""
    with mpmath.workdps(28):
        quad = mp_nested_average(mpmath.tanh, mpmath.tanh, 1, 10, 3, method="quad")
    with mpmath.workdps(30):
        lattice = mp_nested_average(mpmath.tanh, mpmath.tanh, 1, 10, 3)
    assert abs(lattice - quad) < mpmath.mpf(10) ** -25


def test_mp_strip_and_method_options():
    with mpmath.workdps(30):
        # singularities at +-i pi/10: detected by the a posteriori check (spacing refined),
        # or declared with strip=
        def f(x):
            return mpmath.tanh(5 * x)

        declared = mp_nested_average(f, f, 0.3, 4, 2, strip=mpmath.pi / 10 - 0.03)
        assert abs(mp_nested_average(f, f, 0.3, 4, 2) - declared) < mpmath.mpf(10) ** -27
        assert abs(mp_gauss_average(f, 0.3, 4) - mp_gauss_average(f, 0.3, 4, method="quad")) < mpmath.mpf(10) ** -27
    with pytest.raises(ValueError, match="strip"):
        mp_gauss_average(mpmath.tanh, 0, 1, strip=0)
    with pytest.raises(ValueError, match="method"):
        mp_nested_average(mpmath.tanh, mpmath.tanh, 0, 1, 0.5, method="gauss")
    with pytest.raises(ValueError, match="delta_inf"):
        mp_nested_average(mpmath.tanh, mpmath.tanh, 0, 1, 2)
