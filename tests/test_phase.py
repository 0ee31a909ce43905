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


class _Future:
    def __init__(self, value):
        self._value = value

    def result(self):
        return self._value


class _FuturesExecutor:
    """Like ``dask.distributed.Client``: ``map`` returns futures."""

    def map(self, fn, iterable):
        return [_Future(fn(x)) for x in iterable]


def _same_solutions(a, b):
    assert np.array_equal(a.region, b.region)
    for state in ("stationary", "chaotic"):
        sa, sb = a.solutions[state], b.solutions[state]
        assert sa.branches == sb.branches
        assert np.array_equal(sa.found, sb.found)
        for key, value in sa.values.items():
            assert np.array_equal(value, sb.values[key], equal_nan=True), (state, key)


def test_executor_gives_the_in_process_result(fig1):
    """One task per state on the whole grid: bit-identical to the in-process solve, the
    boundary curves included, whatever runs the tasks (threads, processes, futures)."""
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    g, overlap = np.linspace(0.01, 4.0, 17), np.linspace(0.0, 4.0, 17)
    with ThreadPoolExecutor(2) as pool:
        threaded = dmf.phase_diagram(NET, g=g, overlap=overlap, executor=pool)
    _same_solutions(fig1, threaded)
    for name, (gb, ob) in fig1.boundaries.items():
        np.testing.assert_array_equal(threaded.boundaries[name][0], gb)
        np.testing.assert_array_equal(threaded.boundaries[name][1], ob)
    small = dict(g=np.linspace(0.5, 3.0, 7), overlap=np.linspace(0.0, 3.0, 8), boundaries=False)
    reference = dmf.phase_diagram(NET, **small)
    with ProcessPoolExecutor(2) as pool:
        _same_solutions(reference, dmf.phase_diagram(NET, executor=pool, **small))
    _same_solutions(reference, dmf.phase_diagram(NET, executor=_FuturesExecutor(), **small))


def test_bands_agree_with_the_whole_grid():
    """Three bands of the overlap axis, joined and flooded across the seams: the same roots
    at every point as one solve of the whole grid (found masks and regions exactly; values
    to 1e-8: independent Newton runs from different starts, each to residual <= 1e-10)."""
    from concurrent.futures import ThreadPoolExecutor

    grid = dict(g=np.linspace(0.01, 4.0, 21), overlap=np.linspace(0.0, 4.0, 24), boundaries=False)
    whole = dmf.phase_diagram(NET, **grid)
    with ThreadPoolExecutor(2) as pool:
        banded = dmf.phase_diagram(NET, executor=pool, bands=3, **grid)
    assert np.array_equal(whole.region, banded.region)
    for state in ("stationary", "chaotic"):
        a, b = whole.solutions[state], banded.solutions[state]
        assert a.branches == b.branches and np.array_equal(a.found, b.found)
        for key in ("mu", "delta0", "kappa"):
            np.testing.assert_allclose(b.values[key][b.found], a.values[key][a.found], rtol=1e-8, atol=1e-8)


def test_seams_flood_a_branch_that_a_band_missed(monkeypatch):
    """A band whose stationary task lost every structured root (kappa != 0) on its first
    three columns gets them back from the neighbouring band across the seam, and the flood
    carries them into the band: the same roots as the same bands without the loss (the
    boundary search, which could find some of them too, is switched off for both). (Thin
    diagonal slivers, like the structured chaos near the triple point, are not connected
    along the grid axes; the boundary search finds those.)"""
    from concurrent.futures import ThreadPoolExecutor

    from dmftools.solvers import _solve

    monkeypatch.setattr(_solve, "_boundary_targets", lambda raw, *args: {s: np.array([], dtype=int) for s in raw})
    grid = dict(g=np.linspace(0.01, 4.0, 15), overlap=np.linspace(0.0, 4.0, 16), boundaries=False)
    with ThreadPoolExecutor(2) as pool:
        whole = dmf.phase_diagram(NET, executor=pool, bands=2, **grid)
    run = _solve._solve_band
    dropped = []

    def lossy(task):
        sols, counts = run(task)
        if task.flat["Mn"].min() < 1.5 or task.state != "stationary":  # the first band (overlap < 1.65)
            return sols, counts
        first = 2
        sols, counts = sols.copy(), counts.copy()
        for p in np.flatnonzero(np.arange(counts.size) % task.shape[1] < 3):
            rows = sols[p, : counts[p]]
            keep = rows[np.abs(rows[:, first]) <= 1e-6]
            dropped.append(counts[p] - keep.shape[0])
            sols[p] = np.nan
            sols[p, : keep.shape[0]] = keep
            counts[p] = keep.shape[0]
        return sols, counts

    monkeypatch.setattr(_solve, "_solve_band", lossy)
    with ThreadPoolExecutor(2) as pool:
        banded = dmf.phase_diagram(NET, executor=pool, bands=2, **grid)
    assert sum(dropped) >= 40  # structured roots were really removed next to the seam
    assert np.array_equal(whole.region, banded.region)
    for state in ("stationary", "chaotic"):
        assert np.array_equal(whole.solutions[state].found, banded.solutions[state].found), state


class _Recording:
    """Runs tasks in order and records which state each task was for."""

    def __init__(self):
        self.states = []

    def map(self, fn, tasks):
        tasks = list(tasks)
        self.states.append([t.state for t in tasks])
        return [fn(t) for t in tasks]


def test_executor_gets_the_chaotic_tasks_first():
    """Chaotic tasks take ~3x longer (nested averages): handed out first, a pool that
    serves tasks in order keeps every worker busy (100 x 100 Fig. 1 on 2 processes:
    solve phase 4.4-4.8 s -> 3.4-3.5 s). The result keeps the states' order."""
    ex = _Recording()
    pd = dmf.phase_diagram(NET, g=np.linspace(0.5, 3.0, 6), overlap=np.linspace(0.0, 3.0, 8), boundaries=False,
                           executor=ex, bands=2)
    assert ex.states == [["chaotic", "chaotic", "stationary", "stationary"], ["chaotic", "stationary"]]
    assert list(pd.solutions.states) == ["stationary", "chaotic"]


def test_executor_arguments_checked():
    g, overlap = np.linspace(0.5, 3.0, 5), np.linspace(0.0, 3.0, 8)
    with pytest.raises(ValueError, match="bands: applies with an executor only"):
        dmf.phase_diagram(NET, g=g, overlap=overlap, bands=2)
    with pytest.raises(TypeError, match="executor: expected an object with a .map method"):
        dmf.phase_diagram(NET, g=g, overlap=overlap, executor=object())
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="bands: must be a positive integer"):
            dmf.phase_diagram(NET, g=g, overlap=overlap, executor=_FuturesExecutor(), bands=bad)
    with pytest.raises(ValueError, match="bands: at most one band per 4 overlap values"):
        dmf.phase_diagram(NET, g=g, overlap=overlap, executor=_FuturesExecutor(), bands=3)
    # the model options are checked as in the in-process path, before any task is sent
    for kw, error, message in ((dict(regime="bogus"), ValueError, "regime: must be one of"),
                               (dict(spacing=-1.0), ValueError, "spacing: must be in"),
                               (dict(maxiter=5), TypeError, "maxiter")):
        with pytest.raises(error, match=message):
            dmf.phase_diagram(NET, g=g, overlap=overlap, executor=_Refuse(), boundaries=False, **kw)


class _Refuse:
    """An executor that fails the test if a task reaches it."""

    def map(self, fn, tasks):
        raise AssertionError("a task was sent before the arguments were checked")
