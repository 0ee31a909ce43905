"""Pseudo-arclength continuation: branches, folds, branch points and chaos onsets.

References: the independent 40-digit mpmath values of ``tests/reference/solutions.json``
(g_C, g_B), closed forms (a pitchfork at ``Mm Mn = 1`` on the trivial branch), a 30-digit
mpmath evaluation of the stationary pitchfork, and the sampled-sweep route of
:func:`dmftools.transitions` (hybr on the augmented system) for a fold.
"""

import json
import pathlib

import matplotlib
import mpmath
import numpy as np
import pytest

import dmftools as dmf
from dmftools.solvers._solve import compiled

matplotlib.use("Agg")

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "solutions.json").read_text())
NET = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)


@pytest.fixture(scope="module")
def fig1():
    return dmf.continuation(NET, "g", (0.01, 4.0))


def _events(res, kind, state=None):
    return [e for e in res.events if e.kind == kind and (state is None or e.state == state)]


def test_fig1_branches(fig1):
    # trivial, homogeneous (delta0 > 0), structured stationary; homogeneous and structured chaotic
    kinds = sorted((b.state, b.label) for b in fig1)
    assert kinds == [("chaotic", "central"), ("chaotic", "positive/negative"), ("stationary", "central"),
                     ("stationary", "central"), ("stationary", "positive/negative")]
    for b in fig1:
        # every point solves the equations (corrector tolerance 1e-12 relative)
        assert np.all(b.residual <= 1e-11 * (1 + np.abs(np.c_[[b.values[k] for k in b.values]]).max(axis=0)))
        assert np.all(np.isfinite(b.values["g"]))
        if b.state == "chaotic":
            assert np.all(b.values["delta_inf"] >= 0) and np.all(b.values["delta_inf"] < b.values["delta0"])


def test_fig1_gc_gb_to_reference(fig1):
    # chaos onset of the structured branch and end of structured chaos (pitchfork on the
    # homogeneous chaotic branch): independent 40-digit references; target 1e-10 relative
    g_c = float(REF["transitions"]["g_C"]["g"])
    g_b = float(REF["transitions"]["g_B"]["g"])
    onsets = [e for e in _events(fig1, "chaos-onset", "stationary") if abs(e.solution["kappa"]) > 0.1]
    assert len(onsets) == 2  # the kappa > 0 branch and its mirror image
    for e in onsets:
        assert abs(e.value - g_c) <= 1e-10 * g_c
        assert abs(abs(e.solution["kappa"]) - float(REF["transitions"]["g_C"]["state"]["kappa"])) <= 1e-9
    bp = _events(fig1, "branch-point", "chaotic")
    assert len(bp) == 1
    assert abs(bp[0].value - g_b) <= 1e-10 * g_b
    assert set(bp[0].branches) == {"central", "positive/negative"}


def _tanh_avg(f, delta):
    """[f](0, delta) by mpmath quadrature at 30 digits."""
    s = mpmath.sqrt(delta)
    return mpmath.quad(lambda z: f(s * z) * mpmath.exp(-z * z / 2), [-mpmath.inf, 0, mpmath.inf]) / mpmath.sqrt(
        2 * mpmath.pi)


def test_fig1_stationary_pitchfork_against_mpmath(fig1):
    # On the kappa = 0 branch the overlap bifurcates where Mm Mn [phi'](0, D0) = 1 and
    # g^2 = D0 / [phi^2](0, D0) (THEORY.md section 3, linearised kappa equation).
    with mpmath.workdps(30):
        dphi = lambda x: 1 / mpmath.cosh(x) ** 2  # noqa: E731
        d0 = mpmath.findroot(lambda d: mpmath.mpf("2.2") * _tanh_avg(dphi, d) - 1, mpmath.mpf("2.3"))
        g_p = float(mpmath.sqrt(d0 / _tanh_avg(lambda x: mpmath.tanh(x) ** 2, d0)))
    bp = [e for e in _events(fig1, "branch-point", "stationary") if e.value > 1.5]
    assert len(bp) == 1
    assert abs(bp[0].value - g_p) <= 1e-10 * g_p
    assert set(bp[0].branches) == {"central", "positive/negative"}
    # the trivial branch meets the homogeneous heterogeneous branch at g = 1 exactly
    trivial = [e for e in _events(fig1, "branch-point", "stationary") if e.value < 1.5]
    assert len(trivial) == 1 and abs(trivial[0].value - 1.0) <= 1e-12


def test_fig1_stability_along_branches(fig1):
    # the structured stationary branch is stable below g_C and unstable above (bulk radius)
    b = next(b for b in fig1 if b.state == "stationary" and b.label == "positive/negative")
    g = b.values["g"]
    g_c = float(REF["transitions"]["g_C"]["g"])
    assert np.all(b.stable[g < g_c - 1e-9]) and not np.any(b.stable[g > g_c + 1e-9])
    away = np.abs(g - g_c) > 1e-9  # the located onset itself has radius 1 to rounding
    np.testing.assert_array_equal((b.radius < 1)[away], (g < g_c)[away])


def test_every_solution_lies_on_a_branch(fig1):
    # coverage: each solution dmf.solve finds at points not used as seeds is on a traced branch
    gs = np.array([0.3, 1.2, 1.9, 2.1, 3.3])
    found = dmf.solve(NET, g=gs)
    for s in found:
        g = s.parameters["g"]
        kap = s.kappa
        on = []
        for b in fig1:
            if b.state != s.state:
                continue
            bg, bk, bd = b.values["g"], b.values["kappa"], b.values["delta0"]
            for i in range(len(bg) - 1):
                if min(bg[i], bg[i + 1]) <= g <= max(bg[i], bg[i + 1]) and bg[i] != bg[i + 1]:
                    w = (g - bg[i]) / (bg[i + 1] - bg[i])
                    k = bk[i] + w * (bk[i + 1] - bk[i])
                    d = bd[i] + w * (bd[i + 1] - bd[i])
                    # linear interpolation between branch points: chord error of steps <= 0.1
                    on.append(abs(k - kap) < 2e-2 and abs(d - s.delta0) < 2e-2 * (1 + s.delta0))
        assert any(on), f"{s} not on any branch"


def test_pitchfork_on_trivial_branch_along_mn_closed_form():
    # g < 1, no inputs: on the trivial branch [phi'](0, 0) = 1, so kappa bifurcates at
    # Mm Mn = 1 exactly (Smn = 0): Mn = 1 / Mm
    net = dmf.RankOne(Mm=1.25, Mn=1.0, Sm=0.5, Sn=1.0)
    res = dmf.continuation(net, "Mn", (0.2, 1.5), g=0.5, states=("stationary",), seeds=4)
    bp = _events(res, "branch-point")
    assert any(abs(e.value - 0.8) <= 1e-12 for e in bp)
    # and the structured branch exists only above it
    b = next(b for b in res if b.label == "positive/negative")
    assert b.values["Mn"].min() >= 0.8 - 1e-12


def test_fold_with_input_matches_augmented_system():
    # an input along m unfolds the pitchfork: one structured branch turns at a fold
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0, MI=0.05)
    res = dmf.continuation(net, "g", (1.5, 2.5), states=("stationary",), seeds=5)
    folds = _events(res, "fold")
    assert len(folds) == 1
    f = folds[0]
    # det dF/du vanishes there (relative to the size of its entries)
    cf = compiled(net, "stationary")
    params = {k: np.array([v]) for k, v in res.parameters.items()}
    params["g"] = np.array([f.value])
    _, J = cf.system(cf.ordered([np.array([f.solution[k]]) for k in cf.unknowns], params))
    assert abs(np.linalg.det(J[:, :, 0])) <= 1e-9
    # the branch turns: all its points lie on one side of the fold in g
    b = next(b for b in res if f.solution["kappa"] in b.values["kappa"] or b.label in f.branches)
    assert b.values["g"].max() <= f.value + 1e-12
    # the sampled-sweep route (hybr on the augmented system) finds the same point
    ts = [t for t in dmf.transitions(net, "g", (1.5, 2.5), samples=41) if t.kind == "stationary-bifurcation"]
    assert any(abs(t.value - f.value) <= 1e-9 for t in ts)


def test_plot_returns_figure(fig1):
    fig, ax = fig1.plot("delta0")
    assert ax.get_ylabel() == "delta0" and len(ax.lines) > 5
    with pytest.raises(ValueError, match="var"):
        fig1.plot("nope")


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(span=(2.0, 1.0)), ValueError, "span"),
    (dict(span=(0.0, np.nan)), ValueError, "span"),
    (dict(span=(-1.0, 1.0)), ValueError, "span"),
    (dict(seeds=1), ValueError, "seeds"),
    (dict(param="Mq"), ValueError, "param"),
    (dict(param="Mn"), TypeError, "g"),
    (dict(states=("turbulent",)), ValueError, "states"),
    (dict(h_max=0.0), ValueError, "h_max"),
    (dict(regime="spiking"), ValueError, "regime"),
])
def test_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        dmf.continuation(NET, **kwargs)


def test_cli_continuation_json_and_error(capsys):
    from dmftools.cli import main

    assert main(["continuation", "--span", "1.5", "2.5", "--state", "stationary", "--seeds", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    kinds = sorted(e["kind"] for e in out["events"])
    assert kinds == ["branch-point", "chaos-onset", "chaos-onset"]
    assert all(len(b["values"]["g"]) == len(b["residual"]) for b in out["branches"])
    assert main(["continuation", "--span", "2", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dmftools: error: span:") and err.count("\n") == 1
