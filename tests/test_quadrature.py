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


@pytest.mark.slow
def test_nested_against_mpmath():
    with mpmath.workdps(20):
        ref = mp_nested_average(mpmath.tanh, mpmath.tanh, 1.0, 10.0, 3.0)
    assert float(nested_average(np.tanh, np.tanh, 1.0, 10.0, 3.0)) == pytest.approx(float(ref), rel=1e-13)
