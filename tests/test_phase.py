"""Phase diagrams: the four regions of M&O Fig. 1 and boundary curves that are exact.

Every boundary point is checked against a characterisation that does not involve the
tracer: closed forms (g = 1 and overlap = 1 for the homogeneous fixed point), the bulk
radius of the structured fixed point found by ``dmf.solve`` at the curve's points, and the
linearised overlap equation on the homogeneous chaotic solution.
"""

import matplotlib
import numpy as np
import pytest

import dmftools as dmf
from dmftools.numeric.quadrature import gauss_average

matplotlib.use("Agg")

NET = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
ONSET_0 = "stationary -> chaotic (g^2 [phi'^2] = 1), kappa = 0 branch"
ONSET_S = "stationary -> chaotic (g^2 [phi'^2] = 1), structured branch"
PITCHFORK = "stationary bifurcation (outlier = 1)"
CHAOS_END = "chaotic bifurcation (structured chaos ends)"


@pytest.fixture(scope="module")
def fig1():
    return dmf.phase_diagram(NET, g=np.linspace(0.01, 4.0, 17), overlap=np.linspace(0.0, 4.0, 17))


def _points(pd, name):
    g, o = pd.boundaries[name]
    keep = np.isfinite(g)
    return g[keep], o[keep]


def test_regions_of_fig1(fig1):
    r = fig1.region
    g, o = np.meshgrid(fig1.g, fig1.overlap, indexing="ij")
    assert np.all(r[(g < 0.95) & (o < 0.95)] == 0)  # homogeneous stationary
    assert np.all(r[(g < 0.95) & (o > 1.05)] == 1)  # structured stationary
    assert np.all(r[(g > 1.05) & (o < 0.95)] == 2)  # homogeneous chaotic
    assert np.all(r[(np.abs(g - 2.0) < 0.01) & (np.abs(o - 2.5) < 0.01)] == 3)  # structured chaotic
    assert -1 not in r


def test_boundary_names(fig1):
    assert set(fig1.boundaries) == {ONSET_0, ONSET_S, PITCHFORK, CHAOS_END}


def test_homogeneous_boundaries_closed_form(fig1):
    # trivial fixed point: bulk radius = g, outlier = overlap; so chaos sets in at g = 1
    # (for overlap < 1) and kappa bifurcates at overlap = 1 (for g < 1); the curve ends are
    # located by bisection on the curve (to ~1e-12 of a step)
    g, o = _points(fig1, ONSET_0)
    assert np.all(np.abs(g - 1.0) <= 1e-12)
    assert o.min() <= 1e-12 and abs(o.max() - 1.0) <= 1e-9
    g, o = _points(fig1, PITCHFORK)
    assert np.all(np.abs(o - 1.0) <= 1e-12)
    # the curve is drawn while the bulk radius (= g) is below 1 - 1e-9 (the stability margin)
    assert abs(g.min() - 0.01) <= 1e-12 and abs(g.max() - 1.0) <= 2e-9


def test_structured_onset_curve_has_unit_radius(fig1):
    g, o = _points(fig1, ONSET_S)
    sel = o > 1.1  # away from the corner (1, 1) where the branches meet
    g, o = g[sel], o[sel]
    res = dmf.solve(NET, g=g, Mn=o / 1.1, states=("stationary",))
    st = res["stationary"]
    j = st.branches.index("positive")
    # the traced points solve radius = 1 to the corrector tolerance (1e-13) plus quadrature (1e-14)
    np.testing.assert_allclose(st.values["radius"][j], 1.0, rtol=0, atol=1e-9)


def test_chaos_end_curve_satisfies_linearised_overlap_equation(fig1):
    g, o = _points(fig1, CHAOS_END)
    sel = g > 1.05
    g, o = g[sel], o[sel]
    # the homogeneous chaotic solution (kappa = mu = delta_inf = 0) does not depend on Mn:
    # solve it at overlap 0.5, away from the pitchfork where its Jacobian is singular
    res = dmf.solve(NET, g=g, Mn=0.5 / 1.1, states=("chaotic",))
    ch = res["chaotic"]
    j = ch.branches.index("central")
    d0 = ch.values["delta0"][j]
    assert np.all(np.isfinite(d0))
    # pitchfork of kappa on the homogeneous chaotic solution: overlap [phi'](0, D0) = 1;
    # [phi'] by the fixed trapezoid rule (2001 nodes: error < 1e-14 for D0 < 100)
    dphi = gauss_average(lambda x: 1 / np.cosh(x) ** 2, np.zeros_like(d0), d0, nodes=2001)
    np.testing.assert_allclose(o * dphi, 1.0, rtol=0, atol=1e-9)


def test_plot_draws_curves_and_regions(fig1):
    fig, ax = fig1.plot()
    labels = [line.get_label() for line in ax.lines]
    assert set(fig1.boundaries) <= set(labels)
    assert ax.get_ylabel().startswith("structure strength")


def test_rate_regime_same_regions():
    g, o = np.linspace(0.2, 3.0, 6), np.linspace(0.2, 3.0, 5)
    cur = dmf.phase_diagram(NET, g=g, overlap=o, boundaries=False)
    rate = dmf.phase_diagram(NET, g=g, overlap=o, regime="rate", boundaries=False)
    np.testing.assert_array_equal(cur.region, rate.region)


def test_progress_argument_checked():
    with pytest.raises(TypeError, match="^progress:"):
        dmf.phase_diagram(NET, g=[0.5, 1.5], overlap=[0.5, 1.5], progress="yes")


def test_progress_lines_without_tqdm(monkeypatch, capsys):
    # without tqdm a forced progress report falls back to one line per stage on stderr
    import builtins

    from dmftools._progress import ProgressBar

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    with ProgressBar(2, "job", progress=True) as bar:
        bar.update(1, "first stage")
        bar.update(1, "second stage")
    assert capsys.readouterr().err.splitlines() == ["job: first stage", "job: second stage"]


def test_grid_solutions_come_in_mirror_pairs():
    """Without inputs the equations are invariant under kappa -> -kappa, mu -> -mu: on a
    grid solved by neighbour continuation, every structured solution has its mirror image
    (a branch lost at some points, e.g. near the collapse of chaos onto a fixed point,
    shows up as an unpaired solution)."""
    pd = dmf.phase_diagram(NET, g=np.linspace(0.01, 4.0, 37), overlap=np.linspace(0.0, 4.0, 37), boundaries=False)
    for state in ("stationary", "chaotic"):
        ss = pd.solutions[state]
        k = ss.values["kappa"]
        pos = ss.found & (k > 1e-6)
        neg = ss.found & (k < -1e-6)
        assert np.array_equal(pos.sum(axis=0), neg.sum(axis=0)), state
        assert pos.any()
        # mirror values: largest positive kappa vs most negative one, same delta0
        kp = np.where(pos, k, -np.inf).max(axis=0)
        kn = np.where(neg, k, np.inf).min(axis=0)
        has = pos.any(axis=0)
        np.testing.assert_allclose(kp[has], -kn[has], rtol=1e-8)  # two independent roots at residual 1e-10
