"""Derived equations against the hand-written forms of THEORY.md, symbolically and numerically."""

import numpy as np
import pytest
import sympy as sp

import dmftools as dmf
from dmftools.numeric.quadrature import gauss_average, nested_average

tanh = np.tanh
tanh2 = lambda x: np.tanh(x) ** 2  # noqa: E731
dtanh = lambda x: np.cosh(x) ** -2  # noqa: E731
logcosh = lambda x: np.log(np.cosh(x))  # noqa: E731  (|x| < 300 at these points)


def hand_stationary(p, mu, d0, kappa, g):
    """THEORY.md section 3, unit rank with inputs (2_InputDriven/fct_mf.py)."""
    vs = p["Sm"] ** 2 * kappa**2 + 2 * p["SmI"] * kappa + p["SI"] ** 2
    return np.array([
        mu - (p["Mm"] * kappa + p["MI"]),
        d0 - (g**2 * gauss_average(tanh2, mu, d0) + vs),
        kappa - (p["Mn"] * gauss_average(tanh, mu, d0) + (p["Smn"] * kappa + p["SnI"]) * gauss_average(dtanh, mu, d0)),
    ])


def hand_chaotic(p, mu, d0, dinf, kappa, g):
    """THEORY.md section 4."""
    vs = p["Sm"] ** 2 * kappa**2 + 2 * p["SmI"] * kappa + p["SI"] ** 2
    return np.array([
        mu - (p["Mm"] * kappa + p["MI"]),
        dinf - (g**2 * nested_average(tanh, tanh, mu, d0, dinf) + vs),
        (d0**2 - dinf**2) / 2 - (g**2 * (gauss_average(lambda x: logcosh(x) ** 2, mu, d0)
                                         - nested_average(logcosh, logcosh, mu, d0, dinf)) + vs * (d0 - dinf)),
        kappa - (p["Mn"] * gauss_average(tanh, mu, d0) + (p["Smn"] * kappa + p["SnI"]) * gauss_average(dtanh, mu, d0)),
    ])


def random_rank_one(rng):
    sm, sn, si = rng.uniform(0.2, 1.5, 3)
    corr = rng.uniform(-0.5, 0.5, 3)  # |corr| < 1/2 keeps the 3x3 covariance positive definite
    return dict(Mm=rng.normal(), Mn=rng.normal(), Sm=sm, Sn=sn, Smn=corr[0] * sm * sn, MI=rng.normal(),
                SmI=corr[1] * sm * si, SnI=corr[2] * sn * si, SI=si)


def test_paper_form_without_input():
    mu, d0, kappa = sp.symbols("mu Delta_0 kappa", real=True)
    eqs = dmf.derive(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0))
    Mm, Mn, Sm = (dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0).parameter_names()[k] for k in ("Mm", "Mn", "Sm"))
    g = eqs.parameters["g"]
    lhs = [str(eq.lhs) for eq in eqs.equations]
    assert lhs == ["mu", "Delta_0", "kappa"]
    assert sp.simplify(eqs.equations[0].rhs - Mm * sp.Symbol("kappa", real=True)) == 0
    rhs_text = [str(eq.rhs) for eq in eqs.equations]
    assert rhs_text[1] == "Sigma_m**2*kappa**2 + g**2*[phi**2](mu, Delta_0)"
    assert rhs_text[2] == "M_n*[phi](mu, Delta_0)"
    assert g.name == "g" and Mn.name == "M_n" and Sm.name == "Sigma_m"


@pytest.mark.parametrize("seed", range(4))
def test_stationary_matches_hand_written(seed):
    rng = np.random.default_rng(seed)
    p = random_rank_one(rng)
    f = dmf.derive(dmf.RankOne(**p)).compile()
    mu, kappa = rng.normal(size=(2, 16))
    d0, g = rng.uniform(0.01, 20, 16), rng.uniform(0, 3, 16)
    # both sides use the same quadrature; differences are rounding (~1e-15 of terms of order 10)
    np.testing.assert_allclose(f.residuals(mu, d0, kappa, g=g), hand_stationary(p, mu, d0, kappa, g),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(2))
def test_chaotic_matches_hand_written(seed):
    rng = np.random.default_rng(100 + seed)
    p = random_rank_one(rng)
    f = dmf.derive(dmf.RankOne(**p), state="chaotic").compile(jacobian=False)
    mu, kappa = rng.normal(size=(2, 6))
    d0 = rng.uniform(0.1, 10, 6)
    dinf = d0 * rng.uniform(0, 1, 6)
    g = rng.uniform(0, 3, 6)
    np.testing.assert_allclose(f.residuals(mu, d0, dinf, kappa, g=g), hand_chaotic(p, mu, d0, dinf, kappa, g),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("state", ["stationary", "chaotic"])
def test_rate_regime_equals_current_after_change_of_variables(state):
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0, Smn=0.3, MI=0.2, SnI=0.4, SI=0.7)
    current = dmf.derive(net, state=state, regime="current")
    rate = dmf.derive(net, state=state, regime="rate")
    assert current.unknowns == rate.unknowns
    assert all(sp.simplify(a - b) == 0 for a, b in zip(current.residuals, rate.residuals))
    steps = " ".join(text for text, _ in rate.steps)
    assert "y = J r + I" in steps and "exactly the current model" in steps
    assert "mean_rate" in rate.observables and "mean_rate" not in current.observables


def test_rate_observables_chaotic():
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    f = dmf.derive(net, state="chaotic", regime="rate").compile(jacobian=False)
    obs = f.observables(0.5, 3.0, 1.0, 0.4, g=2.0)
    vs = 1.0 * 0.4**2
    assert obs["C_r0"] == pytest.approx((3.0 - vs) / 4.0, rel=1e-14)
    assert obs["C_rinf"] == pytest.approx((1.0 - vs) / 4.0, rel=1e-14)
    assert obs["mean_rate"] == pytest.approx(gauss_average(np.tanh, 0.5, 3.0), rel=1e-13)


def test_rank_two_matches_hand_written():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(5, 5)) * 0.5
    cov = a @ a.T + 0.1 * np.eye(5)
    means = rng.normal(size=5)
    net = dmf.GaussianLowRank(rank=2, means=means, cov=cov)
    eqs = dmf.derive(net)
    assert eqs.unknown_names == ("mu", "delta0", "kappa1", "kappa2")
    f = eqs.compile(jacobian=False)
    mu, d0, k1, k2, g = 0.3, 2.5, 0.7, -0.4, 1.3
    k = np.array([k1, k2])
    w = np.array([k1, k2, 0, 0, 1.0])
    vs = w @ cov @ w
    ref = [mu - (means[:2] @ k + means[4]), d0 - (g**2 * gauss_average(tanh2, mu, d0) + vs)]
    for i in range(2):
        cov_n_field = cov[2 + i] @ w  # Cov(n_i, sum_l kappa_l m_l + I)
        ref.append(k[i] - (means[2 + i] * gauss_average(tanh, mu, d0) + cov_n_field * gauss_average(dtanh, mu, d0)))
    np.testing.assert_allclose(f.residuals(mu, d0, k1, k2, g=g), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("state", ["stationary", "chaotic"])
def test_jacobian_matches_finite_differences(state):
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0, Smn=0.2, MI=0.3, SnI=0.1, SI=0.5)
    f = dmf.derive(net, state=state).compile()
    point = np.array([0.4, 3.0, 1.2, 0.6][: len(f.unknowns) - 1] + [0.5])
    jac = f.jacobian(*point, g=1.7)
    h = 1e-5  # central differences: O(h^2) truncation, rounding ~1e-16/h
    for j in range(len(point)):
        e = np.zeros_like(point)
        e[j] = h
        fd = (f.residuals(*(point + e), g=1.7) - f.residuals(*(point - e), g=1.7)) / (2 * h)
        np.testing.assert_allclose(jac[:, j], fd, rtol=1e-7, atol=1e-8)


def test_erf_closed_forms_enter_the_equations():
    eqs = dmf.derive(dmf.RankOne(Mm=1.0, Mn=1.5, Sm=0.5, Sn=1.0, Smn=0.2, phi="erf"))
    concrete = [eqs.concrete(r) for r in eqs.residuals]
    assert concrete[2].has(sp.erf) and not concrete[2].has(dmf.GaussAvg)  # [phi], [phi'] in closed form
    assert concrete[1].has(dmf.GaussAvg)  # [phi^2] has no closed form at mu != 0


def test_bad_arguments():
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    with pytest.raises(ValueError, match="state"):
        dmf.derive(net, state="oscillating")
    with pytest.raises(ValueError, match="regime"):
        dmf.derive(net, regime="spiking")
    with pytest.raises(TypeError, match="net"):
        dmf.derive({"Mm": 1})


def test_user_transfer_function_chaotic():
    """A user phi: SymPy finds the primitive sqrt(1 + x^2); compare with the hand-written energy equation."""
    phi_expr = dmf.X / sp.sqrt(1 + dmf.X**2)
    net = dmf.RankOne(Mm=0.8, Mn=1.5, Sm=0.7, Sn=1.0, phi=phi_expr)
    f = dmf.derive(net, state="chaotic").compile(jacobian=False)
    phi = lambda x: x / np.sqrt(1 + x**2)  # noqa: E731
    prim = lambda x: np.sqrt(1 + x**2)  # noqa: E731
    mu, d0, dinf, kappa, g = 0.4, 3.0, 1.1, 0.6, 1.8
    vs = 0.7**2 * kappa**2
    energy = (d0**2 - dinf**2) / 2 - (g**2 * (gauss_average(lambda x: prim(x) ** 2, mu, d0)
                                             - nested_average(prim, prim, mu, d0, dinf)) + vs * (d0 - dinf))
    expected = [mu - 0.8 * kappa, dinf - (g**2 * nested_average(phi, phi, mu, d0, dinf) + vs), energy,
                kappa - 1.5 * gauss_average(phi, mu, d0)]
    np.testing.assert_allclose(f.residuals(mu, d0, dinf, kappa, g=g), expected, rtol=0, atol=1e-12)


def test_notebook_display():
    eqs = dmf.derive(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0), state="chaotic")
    tex = eqs._repr_latex_()
    assert tex.startswith("$$\\begin{aligned}") and tex.endswith("\\end{aligned}$$")
    assert r"\left[\left[\phi\right]\right]_2\left(\mu, \Delta_{0}, \Delta_\infty\right)" in tex
    assert r"\Sigma_{m}^{2} \kappa^{2}" in tex
