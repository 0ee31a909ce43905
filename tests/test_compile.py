"""Compiled equations: shapes, parameters, errors, and numpy vs mpmath backends."""

import mpmath
import numpy as np
import pytest

import dmftools as dmf

NET = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)


@pytest.fixture(scope="module")
def compiled():
    return dmf.derive(NET).compile()


def test_broadcasting(compiled):
    mu = np.linspace(-1, 1, 4)[:, None, None]
    d0 = np.linspace(0.1, 3, 5)[None, :, None]
    g = np.linspace(0, 2, 6)
    out = compiled.residuals(mu, d0, 0.3, g=g)
    assert out.shape == (3, 4, 5, 6)
    assert compiled.jacobian(mu, d0, 0.3, g=g).shape == (3, 3, 4, 5, 6)
    single = compiled.residuals(float(mu[2, 0, 0]), float(d0[0, 3, 0]), 0.3, g=float(g[1]))
    # rows of a batch share a padded node set (zero weights beyond each row's own nodes),
    # which changes only the summation order: rounding-level differences
    np.testing.assert_allclose(out[:, 2, 3, 1], single, rtol=1e-13, atol=1e-15)


def test_parameters_default_and_override(compiled):
    base = compiled.residuals(0.5, 1.0, 0.2, g=1.0)
    moved = compiled.residuals(0.5, 1.0, 0.2, g=1.0, Mn=3.0)
    assert moved[0] == base[0] and moved[2] != base[2]
    by_name = compiled.residuals(mu=0.5, delta0=1.0, kappa=0.2, g=1.0)
    np.testing.assert_array_equal(by_name, base)


def test_errors(compiled):
    with pytest.raises(TypeError, match="g"):
        compiled.residuals(0.5, 1.0, 0.2)
    with pytest.raises(TypeError, match="kappa"):
        compiled.residuals(0.5, 1.0, g=1.0)
    with pytest.raises(TypeError, match="Sx"):
        compiled.residuals(0.5, 1.0, 0.2, g=1.0, Sx=2)
    with pytest.raises(ValueError, match="mu"):
        compiled.residuals(np.nan, 1.0, 0.2, g=1.0)
    with pytest.raises(ValueError, match="g"):
        compiled.residuals(0.5, 1.0, 0.2, g=-1.0)
    with pytest.raises(ValueError, match="g"):
        dmf.derive(NET).compile(backend="mpmath").residuals(0.5, 1.0, 0.2, g=-1.0)
    with pytest.raises(ValueError, match="delta"):
        compiled.residuals(0.5, -1.0, 0.2, g=1.0)
    with pytest.raises(ValueError, match="backend"):
        dmf.derive(NET).compile(backend="jax")
    with pytest.raises(ValueError, match="nodes"):
        dmf.derive(NET).compile(nodes=100)


@pytest.mark.parametrize("phi", ["tanh", "erf", "sigmoid"])
def test_mpmath_backend_agrees(phi):
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0, Smn=0.3, MI=0.1, SnI=0.2, SI=0.4, phi=phi)
    eqs = dmf.derive(net)
    f, f_hp = eqs.compile(), eqs.compile(backend="mpmath", dps=30)
    for point in [(0.3, 0.5, 0.2, 1.5), (2.0, 40.0, -1.0, 2.5), (-1.0, 1e-4, 0.8, 0.2)]:
        *unknowns, g = point
        ref = f_hp.residuals(*unknowns, g=g)
        assert all(isinstance(v, mpmath.mpf) for v in ref)
        # numpy quadrature error < 1e-13 relative (docs/accuracy.md); residuals are O(1..40)
        np.testing.assert_allclose(f.residuals(*unknowns, g=g), [float(v) for v in ref], rtol=0, atol=1e-11)
        jac_ref = np.array(f_hp.jacobian(*unknowns, g=g), dtype=float)
        np.testing.assert_allclose(f.jacobian(*unknowns, g=g), jac_ref, rtol=0, atol=1e-11)


def test_compile_is_cached():
    a = dmf.derive(NET).compile()
    b = dmf.derive(NET).compile()
    assert a._residual_fn is b._residual_fn
