"""The SymPy Gaussian-average operators: identities, closed forms, printing."""

import numpy as np
import pytest
import sympy as sp

from dmftools.numeric.compile import compile_expressions
from dmftools.symbolic import GaussAvg, GaussCov, average, nested

x = sp.Symbol("x", real=True)
mu, D, D0, Di = sp.symbols("mu Delta Delta_0 Delta_inf", real=True)
tanh = sp.Lambda(x, sp.tanh(x))


def test_fdiff_identities_symbolic():
    assert GaussAvg(tanh, mu, D).diff(mu) == GaussAvg(sp.Lambda(x, 1 - sp.tanh(x) ** 2), mu, D)
    assert GaussAvg(tanh, mu, D).diff(D) == GaussAvg(sp.Lambda(x, sp.diff(sp.tanh(x), x, 2)), mu, D) / 2
    c = GaussCov(tanh, tanh, mu, D0, Di)
    dtanh = sp.Lambda(x, sp.diff(sp.tanh(x), x))
    assert c.diff(Di) == GaussCov(dtanh, dtanh, mu, D0, Di)


def test_nested_reductions_and_symmetry():
    sq = sp.Lambda(x, x**2)
    assert GaussCov(tanh, sq, mu, D0, Di) == GaussCov(sq, tanh, mu, D0, Di)
    assert GaussCov(tanh, tanh, mu, D0, 0) == GaussAvg(tanh, mu, D0) ** 2
    assert GaussCov(tanh, tanh, mu, D0, D0) == GaussAvg(sp.Lambda(x, sp.tanh(x) ** 2), mu, D0)
    assert GaussAvg(tanh, mu, 0) == sp.tanh(mu)


def test_closed_forms():
    a = sp.Rational(3, 2)
    assert GaussAvg(sp.Lambda(x, sp.erf(a * x)), mu, D) == sp.erf(a * mu / sp.sqrt(1 + 2 * a**2 * D))
    gauss = GaussAvg(sp.Lambda(x, sp.exp(-a * x**2)), mu, D)
    assert sp.simplify(gauss - sp.exp(-a * mu**2 / (1 + 2 * a * D)) / sp.sqrt(1 + 2 * a * D)) == 0
    assert GaussAvg(sp.Lambda(x, 3 + 0 * x), mu, D) == 3
    # closed forms obey the heat-equation identity
    erf_avg = GaussAvg(sp.Lambda(x, sp.erf(x)), mu, D)
    deriv = GaussAvg(sp.Lambda(x, sp.diff(sp.erf(x), x, 2)), mu, D) / 2
    assert sp.simplify(erf_avg.diff(D) - deriv) == 0


@pytest.mark.parametrize("point", [(0.3, 0.7), (-1.2, 4.0), (2.5, 0.05)])
def test_symbolic_derivatives_match_finite_differences(point):
    m0, d0 = point
    expr = average(sp.tanh(x) ** 2 * sp.cosh(x / 3), x, mu, D)
    fn = compile_expressions((expr, expr.diff(mu), expr.diff(D)), (mu, D))
    _, dmu, dD = (float(v) for v in fn(m0, d0))
    h = 1e-5  # central differences: truncation O(h^2) ~ 1e-10, rounding ~ 1e-16/h ~ 1e-11
    fd_mu = (fn(m0 + h, d0)[0] - fn(m0 - h, d0)[0]) / (2 * h)
    fd_D = (fn(m0, d0 + h)[0] - fn(m0, d0 - h)[0]) / (2 * h)
    assert dmu == pytest.approx(fd_mu, rel=1e-8, abs=1e-9)
    assert dD == pytest.approx(fd_D, rel=1e-8, abs=1e-9)


@pytest.mark.parametrize("point", [(0.2, 2.0, 0.8), (1.0, 5.0, 4.0)])
def test_nested_derivatives_match_finite_differences(point):
    m0, d0, di = point
    expr = nested(sp.log(sp.cosh(x)), x, mu, D0, Di)
    fn = compile_expressions((expr, expr.diff(mu), expr.diff(D0), expr.diff(Di)), (mu, D0, Di))
    values = [float(v) for v in fn(m0, d0, di)]
    h = 1e-5  # as above; nested quadrature error ~1e-14 (docs/accuracy.md)
    for k, shift in enumerate([(h, 0, 0), (0, h, 0), (0, 0, h)], start=1):
        plus = fn(*(np.add((m0, d0, di), shift)))[0]
        minus = fn(*(np.subtract((m0, d0, di), shift)))[0]
        assert values[k] == pytest.approx((plus - minus) / (2 * h), rel=1e-7, abs=1e-9)


def test_latex_and_text():
    phi = sp.Function("phi")
    avg = GaussAvg(sp.Lambda(x, sp.diff(phi(x), x) ** 2), mu, D)
    assert sp.latex(avg) == r"\left[\phi'^{2}\right]\left(\mu, \Delta\right)"
    assert str(avg) == "[phi'**2](mu, Delta)"
    cov = GaussCov(sp.Lambda(x, phi(x)), sp.Lambda(x, phi(x)), mu, D0, Di)
    assert sp.latex(cov).startswith(r"\left[\left[\phi\right]\right]_2")


def test_integrand_must_be_lambda():
    with pytest.raises(TypeError, match="Lambda"):
        GaussAvg(sp.tanh(x), mu, D)
