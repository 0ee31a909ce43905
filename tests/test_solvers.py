"""Solvers against the independent 40-digit mpmath reference (tests/reference/)."""

import json
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmftools as dmf

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "solutions.json").read_text())
FIG1 = dict(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
NET = dmf.RankOne(**FIG1)
# adaptive quadrature resolves the averages to ~1e-13 (docs/accuracy.md); the equations are
# well conditioned away from bifurcations, so solutions agree to ~1e-11 relative
RTOL = 1e-10


def _points():
    return REF["points"] if isinstance(REF, dict) and "points" in REF else REF


def test_reference_file_has_all_phases():
    states = {p["regime"] for p in _points()}  # the reference calls the state "regime"
    assert states == {"stationary", "chaotic"}


def _model(p):
    par = {k: float(v) for k, v in p["parameters"].items()}
    g = par.pop("g")
    return g, par


@pytest.mark.parametrize("index", range(len(_points())))
def test_solution_matches_reference(index):
    p = _points()[index]
    g, par = _model(p)
    net = dmf.RankOne(**{k: par.get(k, 0.0) for k in ("Mm", "Mn", "Sm", "Sn", "Smn", "MI", "SmI", "SnI", "SI")})
    res = dmf.solve(net, g=g, states=p["regime"])
    ref = {k: float(p["state"][k]) for k in p["unknowns"]}
    best, match = None, None
    for s in res:
        err = max(abs(getattr(s, k) - ref[k]) / max(1.0, abs(ref[k])) for k in ref)
        if best is None or err < best:
            best, match = err, s
    assert best is not None and best < RTOL, (p["name"], best)
    if p["regime"] == "stationary":
        stab = p["stability"]
        assert match.stable == stab["stable"], p["name"]
        # the reference lists eigenvalues outside the disc including the variance mode at
        # kappa = 0; every outlier we report must be among them
        ref_out = sorted(float(complex(x.replace(" ", "")).real) if "j" in x else float(x)
                         for x in stab["eigenvalues_outside_bulk_disc"])
        for z in match.outliers:
            assert min(abs(z.real - r) for r in ref_out) < 1e-9, (p["name"], match.outliers, ref_out)


def test_every_reference_solution_is_found_at_its_point():
    by_point = {}
    for p in _points():
        key = (p["regime"], json.dumps(p["parameters"], sort_keys=True))
        by_point.setdefault(key, []).append(p)
    for (state, params), pts in by_point.items():
        g, par = _model(pts[0])
        net = dmf.RankOne(**{k: par.get(k, 0.0) for k in ("Mm", "Mn", "Sm", "Sn", "Smn", "MI", "SmI", "SnI", "SI")})
        res = dmf.solve(net, g=g, states=state)
        assert len(res) >= len(pts), (state, params, len(res), len(pts))


def test_transitions_gC_gB():
    ts = dmf.transitions(NET, "g", (1.5, 2.5), samples=21)
    values = {t.kind: t.value for t in ts}
    t = REF["transitions"] if isinstance(REF, dict) and "transitions" in REF else None
    g_c, g_b = float(t["g_C"]["g"]), float(t["g_B"]["g"])
    # augmented Newton to xtol 1e-14; quadrature ~1e-13 -> 1e-10 on the located parameter
    assert abs(values["chaos-onset"] - g_c) < 1e-9
    assert abs(values["chaotic-bifurcation"] - g_b) < 1e-9


def test_stability_matches_authors_matrix():
    """Non-zero eigenvalues of the derived outlier matrix equal those of the authors' 3x3
    EigStationary matrix (hand-written here from THEORY.md section 5)."""
    res = dmf.solve(NET, g=1.2, states="stationary")
    s = [x for x in res if x.branch == "positive"][0]
    from dmftools.numeric.quadrature import gauss_average as avg
    th = np.tanh
    d1 = lambda x: 1 - th(x) ** 2
    d2 = lambda x: -2 * th(x) * d1(x)
    mu, d0, g, Mm, Mn, Sm = s.mu, s.delta0, 1.2, 1.1, 2.0, 1.0
    a = Mm * Mn * avg(d1, mu, d0, 2001)
    b = 0.5 * Mn * avg(d2, mu, d0, 2001)
    M = np.zeros((3, 3))
    M[0, 2] = Mm
    M[1, 0] = 2 * g**2 * avg(lambda x: th(x) * d1(x), mu, d0, 2001)
    M[1, 1] = g**2 * (avg(lambda x: d1(x) ** 2, mu, d0, 2001) + avg(lambda x: th(x) * d2(x), mu, d0, 2001))
    M[1, 2] = 2 * Sm**2 * Mn * avg(th, mu, d0, 2001)
    M[2] = b * M[1]
    M[2, 2] += a
    authors = np.sort_complex(np.linalg.eigvals(M))
    authors = authors[np.abs(authors) > 1e-12]
    st = dmf.derive_stability(dmf.derive(NET))
    cf = dmf.derive(NET).compile()
    r, Mx = cf.stability(cf.ordered([np.array([mu]), np.array([d0]), np.array([s.kappa])],
                                    {"g": np.array([g]), "Mm": 1.1, "Mn": 2.0, "Sm": 1.0, "Sn": 1.0}))
    ours = np.sort_complex(np.linalg.eigvals(Mx[..., 0]))
    ours = ours[np.abs(ours) > 1e-12]
    assert st.matrix.shape == (3, 3)
    np.testing.assert_allclose(ours, authors, rtol=1e-10)  # quadrature ~1e-13


def test_chaotic_solutions_are_admissible_and_ordered():
    res = dmf.solve(NET, g=np.linspace(1.9, 3.0, 6), states="chaotic")
    ch = res["chaotic"]
    f = ch.found
    assert f.any()
    assert np.all(ch.values["delta_inf"][f] >= 0)
    assert np.all(ch.values["delta_inf"][f] < ch.values["delta0"][f])
    assert np.all(ch.values["potential_curvature"][f] < 0)
    assert np.all(ch.values["residual"][f] < 1e-10)


@pytest.mark.parametrize("kwargs, match", [
    (dict(g=-1.0), "g"), (dict(g=np.nan), "g"), (dict(g=1.0, states="bogus"), "states"),
    (dict(g=1.0, regime="slow"), "regime"), (dict(g=1.0, MI=0.5), "MI"), (dict(g=[1.0, 2.0], Mn=[1.0, 2.0, 3.0]), "broadcast"),
])
def test_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        dmf.solve(NET, **kwargs)


def test_transitions_bad_span():
    with pytest.raises(ValueError, match="span"):
        dmf.transitions(NET, "g", (3.0, 1.0))
    with pytest.raises(ValueError, match="span"):
        dmf.transitions(NET, "g", (0.0, np.nan))


def test_phase_diagram_bad_grid():
    with pytest.raises(ValueError, match="g"):
        dmf.phase_diagram(NET, g=np.linspace(2, 1, 3), overlap=np.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="overlap"):
        dmf.phase_diagram(NET, g=np.linspace(0.1, 1, 3), overlap=np.linspace(0, 1, 1000) .repeat(300))


def test_cli_solve_json_and_error(capsys):
    from dmftools.cli import main
    assert main(["solve", "--g", "0.5", "--state", "stationary", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(round(s["kappa"], 8) + 0.0 for s in out) == [-1.22450864, 0.0, 1.22450864]
    assert main(["solve", "--g", "-1"]) == 2
    assert "g" in capsys.readouterr().err


@pytest.mark.parametrize("on_grid", [False, True])
def test_exactly_at_the_chaotic_pitchfork(on_grid):
    """At g = g_B the two structured chaotic branches meet the homogeneous one (a triple
    root, where Newton converges only linearly): one solution, kappa = 0, at the reference."""
    t = REF["transitions"]["g_B"]
    g_b = float(t["g"])
    g = np.sort(np.r_[np.linspace(1e-4, 4, 200), g_b, 1.0, float(REF["transitions"]["g_C"]["g"])]) if on_grid else g_b
    res = dmf.solve(NET, g=g, states=["chaotic"])["chaotic"]
    i = (np.argmin(np.abs(g - g_b)),) if on_grid else ()
    found = [j for j in range(len(res.branches)) if res.found[(j,) + i]]
    assert len(found) == 1
    j = found[0]
    assert abs(res.values["kappa"][(j,) + i]) <= 1e-12  # the kappa = 0 subspace, solved exactly
    # homogeneous chaotic solution at g_B: delta_inf = 0 (the reference's), quadrature ~1e-13
    assert abs(res.values["delta_inf"][(j,) + i]) <= 1e-10
    assert res.values["delta0"][(j,) + i] == pytest.approx(float(t["state"]["delta0"]), rel=1e-10)


def test_unit_rank_slot_names_never_fall_back_to_numbers():
    """Points with more solutions than negative/central/positive get central_k,
    negative_k, positive_k slots (farthest from kappa = 0 first), not "0", "1", ..."""
    from dmftools.solvers._results import _assign_slots, _slot_names

    # (mu, delta0, kappa) per solution (stationary: kappa is the third unknown)
    points = [[(0, 1, -1.0), (0, 0, 0.0), (0, 1, 1.0)],
              [(0, 2, -2.0), (0, 1, -0.5), (0, 1, 0.5), (0, 2, 2.0)],
              [(0, 2, 0.3), (0, 1, 0.6), (0, 1, 0.9)],
              [(0, 0, 0.0), (0, 3, 0.0), (0, 1, 1.0), (0, 1, 2.0), (0, 1, 3.0)]]
    names = _slot_names(1, points, 2)
    assert names == ("negative", "central", "positive", "central_2", "negative_2", "positive_2", "positive_3")
    got = [{k: v[2] for k, v in _assign_slots(p, 2, 1, names).items()} for p in points]
    assert got[0] == {"negative": -1.0, "central": 0.0, "positive": 1.0}
    assert got[1] == {"negative": -2.0, "negative_2": -0.5, "positive": 2.0, "positive_2": 0.5}
    assert got[2] == {"negative": 0.3, "central": 0.6, "positive": 0.9}  # three: by order
    assert got[3] == {"central": 0.0, "central_2": 0.0, "positive": 3.0, "positive_2": 2.0, "positive_3": 1.0}
    # the central slot holds the kappa = 0 solution with the largest delta0
    assert _assign_slots(points[3], 2, 1, names)["central"][1] == 3


_KAPPAS = [-2.0, -1.0, -0.5, -5e-9, 0.0, 3e-9, 0.5, 1.0, 2.0]


@settings(max_examples=300, deadline=None)
@given(rank=st.sampled_from([1, 2]),
       points=st.lists(st.lists(st.tuples(st.sampled_from([-1.0, 0.0, 1.0]), st.sampled_from([0.0, 1.0, 3.0]),
                                          st.sampled_from(_KAPPAS), st.sampled_from(_KAPPAS)),
                                max_size=7), min_size=1, max_size=6))
def test_slot_indices_follow_the_per_point_rules(rank, points):
    """The grid's slot assignment (numpy, every point at once) gives every point's roots
    the slots of the per-point rules (_assign_slots, _slot_names): sign, farthest from 0
    first, central by largest delta0, ties and |kappa| <= KAPPA_ZERO included."""
    from dmftools.solvers._results import _assign_slots, _slot_indices, _slot_names

    n = 2 + rank
    per_point = [[np.array(r[:n]) for r in p] for p in points]
    counts = np.array([len(p) for p in per_point])
    G = max(int(counts.max()), 1)
    sols = np.full((len(points), G, n + 1), np.nan)
    for i, p in enumerate(per_point):
        for j, r in enumerate(p):
            sols[i, j, :n] = r
            sols[i, j, n] = 1e-14  # residual: not a slot criterion
    slots, index = _slot_indices(sols, counts, 2, rank)
    assert slots == _slot_names(rank, per_point, 2)
    assert np.all(index[np.arange(G)[None, :] >= counts[:, None]] == -1)
    for i, p in enumerate(per_point):
        expected = {name: tuple(v) for name, v in _assign_slots(p, 2, rank, slots).items()}
        got = {slots[index[i, j]]: tuple(sols[i, j, :n]) for j in range(counts[i])}
        assert got == expected


# -- mirror symmetry: (mu, kappa) -> (-mu, -kappa) ------------------------------------------
def _flat(net, g):
    from dmftools.solvers._solve import compiled, prepare_parameters

    shape, flat = prepare_parameters(compiled(net, "stationary"), np.asarray(g), {})
    return flat


@pytest.mark.parametrize(
    "model, symmetric",
    [
        (dict(), True),
        (dict(phi="erf"), True),
        (dict(Smn=0.4), True),           # loading covariance keeps the symmetry
        (dict(MI=0.1), False),           # a mean input breaks it
        (dict(SI=0.5, SnI=0.3), False),  # so does input correlated with n
        (dict(phi="sigmoid"), False),    # and a transfer function that is not odd
    ],
)
@pytest.mark.parametrize("state", ["stationary", "chaotic"])
@pytest.mark.parametrize("regime", ["current", "rate"])
def test_mirror_symmetry_detection(model, symmetric, state, regime):
    from dmftools.solvers._solve import _mirror_symmetric, compiled

    net = dmf.RankOne(**{**FIG1, **model})
    g = np.linspace(0.1, 3.0, 7)
    assert _mirror_symmetric(compiled(net, state, regime), state, _flat(net, g)) is symmetric


def test_mirrored_solve_equals_full_solve(monkeypatch):
    """Solving from the kappa >= 0 starts and mirroring gives the roots of the full solve:
    the start set is symmetric and Newton's iteration equivariant."""
    from dmftools.solvers import _solve

    net = dmf.RankOne(**FIG1)
    g = np.linspace(1e-4, 4, 60)
    mirrored = dmf.solve(net, g=g)
    monkeypatch.setattr(_solve, "_mirror_symmetric", lambda *args: False)
    full = dmf.solve(net, g=g)
    for state in ("stationary", "chaotic"):
        a, b = mirrored[state], full[state]
        assert a.branches == b.branches
        np.testing.assert_array_equal(a.found, b.found)
        for key in a.unknowns:
            # both are roots to the report tolerance, reached by different Newton paths
            np.testing.assert_allclose(a.values[key][a.found], b.values[key][b.found], rtol=0, atol=1e-10)
        assert np.all(a.values["residual"][a.found] <= 1e-10 * (1 + np.abs(a.values["delta0"][a.found])))
    # the structured branches come in mirror pairs
    ss = mirrored["chaotic"]
    pos, neg = ss.branches.index("positive"), ss.branches.index("negative")
    np.testing.assert_array_equal(ss.found[pos], ss.found[neg])
    np.testing.assert_allclose(ss.values["kappa"][pos][ss.found[pos]], -ss.values["kappa"][neg][ss.found[neg]], atol=1e-10)


def test_mirroring_falls_back_when_a_mirrored_root_fails(monkeypatch):
    """Detection is a heuristic; the mirrored roots are checked. With an input (no symmetry)
    but the detection forced on, the mirrored roots fail and the full solve runs."""
    from dmftools.solvers import _solve

    net = dmf.RankOne(**FIG1, MI=0.3)
    g = np.linspace(0.5, 3, 30)
    reference = dmf.solve(net, g=g)
    monkeypatch.setattr(_solve, "_mirror_symmetric", lambda *args: True)
    returned = []
    add_mirrors = _solve._add_mirrors

    def spy(*args):
        returned.append(add_mirrors(*args))
        return returned[-1]

    monkeypatch.setattr(_solve, "_add_mirrors", spy)
    forced = dmf.solve(net, g=g)
    # both states fell back (and so did the boundary search's multi-start, where it ran)
    assert len(returned) >= 2 and all(r is None for r in returned)
    for state in ("stationary", "chaotic"):
        np.testing.assert_array_equal(forced[state].found, reference[state].found)
        for key in forced[state].unknowns:
            np.testing.assert_array_equal(forced[state].values[key], reference[state].values[key])


def test_newton_iterates_beyond_the_variance_domain_get_an_infinite_residual():
    """A runaway step (delta0 = 1e18) must not reach the quadrature, which would need ~1e11
    nodes; the column gets F = inf (Newton then backtracks or stops it), the others are
    evaluated as usual."""
    from dmftools.solvers._solve import VARIANCE_MAX, _system, compiled

    cf = compiled(NET, "stationary")
    u = np.array([[0.1, 0.1, 0.1], [1.0, 1e18, np.nan], [0.2, 0.2, 0.2]])
    params = [np.full(3, v) for v in (1.5, 1.1, 2.0, 1.0, 1.0)]
    F, J = _system(cf)(u, params)
    assert np.all(np.isinf(F[:, 1:])) and np.all(np.isnan(J[..., 1:]))
    F0, J0 = cf.system(list(u[:, :1]) + [p[:1] for p in params])
    np.testing.assert_array_equal(F[:, :1], F0)
    np.testing.assert_array_equal(J[..., :1], J0)
    assert VARIANCE_MAX >= 1e8  # D0 ~ g^2 for tanh: g up to 1e4 stays inside


def test_roots_at_the_round_off_floor_are_reported():
    """Near the onset of chaos the energy equation, divided by Delta_0 - Delta_inf (here
    1.4e-3), amplifies round-off: Newton from the structured chaotic roots one grid step
    away (100 x 100 Fig. 1 grid) stalls at residuals ~1e-11, above ftol = 1e-12 (1 + |u|),
    with corrections ~5e-8. Those are the single-point solve's roots, not failures: a
    2- or 4-band diagram used to lose them here (region 2 instead of 3)."""
    from dmftools.solvers._solve import REPORT_TOL, _run, compiled, prepare_parameters

    g, overlap = np.linspace(0.01, 4, 100), np.linspace(0, 4, 100)
    mn = overlap[91] / FIG1["Mm"]
    start = dmf.solve(NET, g=g[62], Mn=mn, states="chaotic")["chaotic"]
    alone = dmf.solve(NET, g=g[61], Mn=mn, states="chaotic")["chaotic"]
    assert start.branches[::2] == alone.branches[::2] == ("negative", "positive")
    assert np.all(start.found[::2]) and np.all(alone.found[::2])
    cf = compiled(NET, "chaotic")
    _, flat = prepare_parameters(cf, np.full(2, g[61]), {"Mn": np.full(2, mn)})
    u0 = np.array([start.values[k][::2] for k in cf.unknowns])
    roots, ok = _run(cf, "chaotic", u0, [flat[k] for k in cf.parameters], 20)
    assert ok.all()
    u, residual = roots[:-1], roots[-1]
    assert np.all(residual <= REPORT_TOL * (1 + np.max(np.abs(u), axis=0)))
    expected = np.array([alone.values[k][::2] for k in cf.unknowns])
    # both are the root to within its round-off floor (corrections ~5e-8)
    np.testing.assert_allclose(u, expected, rtol=0, atol=1e-6)
    assert np.all(u[1] - u[2] > 1e-3)  # a chaotic solution, not the fixed point


def test_flood_reaches_the_far_end_of_a_long_line():
    """A branch known at one end of a 100-point line reaches the other end (99 sweeps of one
    grid step each): the flood has no sweep cap (a cap of 64 left the 200 x 200 Fig. 1
    diagram's diagonal sliver of structured chaos unfinished)."""
    from dmftools.solvers._solve import _multistart, _propagate, _Store, compiled, prepare_parameters

    cf = compiled(NET, "stationary")
    shape, flat = prepare_parameters(cf, np.linspace(0.2, 0.9, 100), {})
    full, counts = _multistart(cf, "stationary", flat, np.arange(100), 50)
    assert np.all(counts == 3)  # the structured pair and kappa = 0
    store = _Store(100, full.shape[2])
    store.put(np.arange(100), full[:, 1:2], np.ones(100, dtype=int))  # only the central root ...
    store.put(np.array([0]), full[:1], counts[:1])  # ... except at g = 0.2
    _propagate(cf, "stationary", flat, store, shape, 50)
    assert np.all(store.count == 3)
    # the same roots as the multi-start's (Newton to ~1e-13 from either start)
    np.testing.assert_allclose(store.sols[:, :3, :-1], full[:, :3, :-1], rtol=0, atol=1e-10)


def test_grid_solve_finds_every_root_a_point_by_point_multistart_finds():
    """Neighbour continuation on a grid against a full multi-start at every point (the same
    points shuffled: not a grid, so each gets its own multi-start). Near the triple point of
    Fig. 1 structured chaos exists in slivers between grid lines that no coarse point
    reaches (here at g = 1.207, overlap 1.217 and g = 1.606, overlap 1.739); they are found
    by the multi-start next to changes of the stationary roots' number."""
    g, overlap = np.linspace(0.01, 4.0, 21), np.linspace(0.0, 4.0, 24)
    gg, oo = np.meshgrid(g, overlap, indexing="ij")
    grid = dmf.solve(NET, g=gg, Mn=oo / FIG1["Mm"])
    perm = np.random.default_rng(0).permutation(gg.size)
    each = dmf.solve(NET, g=gg.reshape(-1)[perm], Mn=(oo / FIG1["Mm"]).reshape(-1)[perm])
    inverse = np.argsort(perm)
    for state in ("stationary", "chaotic"):
        on_grid = grid[state].found.sum(axis=0).reshape(-1)
        alone = each[state].found.sum(axis=0)[inverse]
        assert np.array_equal(on_grid, alone), (state, np.flatnonzero(on_grid != alone))
    assert np.sum(grid["chaotic"].found[:, 6, 7] & (np.abs(grid["chaotic"].values["kappa"][:, 6, 7]) > 1e-3)) == 2


def test_points_whose_interpolated_starts_miss_get_every_neighbouring_root(monkeypatch):
    """A new point whose Newton run from the interpolated roots does not recover all of them
    (here forced: one iteration allowed) goes on from every neighbouring root: the grid's
    roots are those of the default solve (regression: such points once raised a shape
    error when others in the same batch hit)."""
    from dmftools.solvers import _solve

    g, overlap = np.linspace(0.5, 3.5, 9), np.linspace(0.5, 3.5, 8)
    gg, oo = np.meshgrid(g, overlap, indexing="ij")
    # 72 points: more than _COARSE_ABOVE, so refined from a coarse subgrid
    default = dmf.solve(NET, g=gg, Mn=oo / FIG1["Mm"])
    monkeypatch.setattr(_solve, "_REFINE_MAXITER", 1)
    monkeypatch.setattr(_solve, "_COARSE_PER_AXIS", 3)
    forced = dmf.solve(NET, g=gg, Mn=oo / FIG1["Mm"])
    for state in ("stationary", "chaotic"):
        assert np.array_equal(forced[state].found.sum(axis=0), default[state].found.sum(axis=0)), state


def test_batched_backtracking_accepts_the_steps_of_one_halving_at_a_time(monkeypatch):
    """After the first halving, Newton evaluates a column's remaining halvings in one call;
    it must accept the same step as halving one at a time (the largest step that does not
    increase the residual), so both runs give the same iterates, and take fewer calls."""
    from dmftools.solvers import _newton
    from dmftools.solvers._solve import _starts, _system, compiled, prepare_parameters

    cf = compiled(NET, "chaotic")
    shape, flat = prepare_parameters(cf, np.linspace(1.2, 3.8, 6), {})
    u0, par, _ = _starts(cf, "chaotic", flat, 6)
    system = _system(cf)
    calls = []

    def counted(u, p):
        calls.append(u.shape[1])
        return system(u, p)

    runs = {}
    for batch in (1, _newton._BACKTRACK_BATCH):
        monkeypatch.setattr(_newton, "_BACKTRACK_BATCH", batch)
        calls.clear()
        runs[batch] = (_newton.newton(counted, u0, par, chaotic=True), len(calls))
    (one, n_one), (batched, n_batched) = runs[1], runs[_newton._BACKTRACK_BATCH]
    assert n_batched < n_one  # these starts need several halvings in some iterations
    np.testing.assert_array_equal(batched.converged, one.converged)
    np.testing.assert_array_equal(batched.iterations, one.iterations)
    assert batched.converged.sum() > 40
    # the same columns evaluated in batches of another composition: round-off of the
    # quadrature sums (~1e-15); the converged roots agree to Newton's tolerance
    ok = one.converged
    np.testing.assert_allclose(batched.u[:, ok], one.u[:, ok], rtol=1e-10, atol=1e-12)


def test_columns_joining_a_running_newton_batch_iterate_as_alone():
    """NewtonBatch (the flood's stream of Newton iterations): columns added while others
    iterate get the same iterations, convergence and roots as in a run of their own."""
    from dmftools.solvers._newton import NewtonBatch, newton
    from dmftools.solvers._solve import _starts, _system, compiled, prepare_parameters

    cf = compiled(NET, "chaotic")
    shape, flat = prepare_parameters(cf, np.linspace(1.2, 3.8, 6), {})
    u0, par, _ = _starts(cf, "chaotic", flat, 6)
    system = _system(cf)
    alone = newton(system, u0, par, chaotic=True)
    batch = NewtonBatch(system, u0.shape[0], len(par), chaotic=True)
    groups = np.array_split(np.random.default_rng(3).permutation(u0.shape[1]), 3)
    order = []
    finished = 0
    for step in range(200):
        if step in (0, 2, 5):
            cols = groups[(0, 2, 5).index(step)]
            order.append(cols)
            batch.add(u0[:, cols], [p[cols] for p in par])
        if not batch.running:
            break
        finished += batch.step().size
    assert not batch.running and finished == u0.shape[1]
    joined = batch.result(np.argsort(np.concatenate(order)))
    np.testing.assert_array_equal(joined.converged, alone.converged)
    np.testing.assert_array_equal(joined.iterations, alone.iterations)
    np.testing.assert_array_equal(joined.singular, alone.singular)
    ok = alone.converged
    assert ok.sum() > 40
    # batches of another composition: round-off of the quadrature sums only
    np.testing.assert_allclose(joined.u[:, ok], alone.u[:, ok], rtol=1e-10, atol=1e-12)


def _arctan_system(u, params):
    """F = (arctan(x) - a, v - 1) and its Jacobian: Newton on arctan overshoots from
    |x| > 1.39 and needs step halvings; v stands in for a variance (kept >= 0)."""
    x, v = u
    zero = np.zeros_like(x)
    F = np.array([np.arctan(x) - params[0], v - 1.0])
    J = np.array([[1.0 / (1.0 + x**2), zero], [zero, 1.0 + zero]])
    return F, J


def _reference_newton(x, v, a, ftol=1e-12, xtol=1e-12, max_backtracks=6):
    """Damped Newton with one halving at a time, in scalars (the rules of :func:`newton`
    for a column that converges): returns (x, iterations)."""
    import math

    def norm(x, v):
        return max(abs(math.atan(x) - a), abs(v - 1.0))

    n0 = norm(x, v)
    dx, dv = -(math.atan(x) - a) * (1 + x * x), -(v - 1.0)
    iterations = 0
    while True:
        alpha = 1.0
        settled = n0 <= ftol * (1 + max(abs(x), abs(v)))
        tx, tv = x + dx, max(v + dv, 0.0)
        for _ in range(max_backtracks):
            if norm(tx, tv) <= n0 or settled:
                break
            alpha *= 0.5
            tx, tv = x + alpha * dx, max(v + alpha * dv, 0.0)
        step = max(abs(tx - x), abs(tv - v))
        x, v, n0 = tx, tv, norm(tx, tv)
        iterations += 1
        dx, dv = -(math.atan(x) - a) * (1 + x * x), -(v - 1.0)
        scale = 1 + max(abs(x), abs(v))
        if n0 <= ftol * scale and (step <= xtol * scale or max(abs(dx), abs(dv)) <= xtol * scale):
            if step > xtol * scale:
                x, v = x + dx, max(v + dv, 0.0)
            return x, iterations


def test_newton_line_search_matches_one_halving_at_a_time_in_scalars():
    """The line search (first halving alone, the rest batched), with columns joining a
    running NewtonBatch, takes the steps of a plain scalar Newton that halves one step at
    a time: same iteration counts and roots."""
    from dmftools.solvers._newton import NewtonBatch

    x0 = np.linspace(-5.0, 2.5, 16)  # from x > 2.5 even halved Newton runs away on arctan
    a = 0.3
    expected = [_reference_newton(float(x), 3.0, a) for x in x0]
    batch = NewtonBatch(_arctan_system, 2, 1, chaotic=False)
    groups = np.array_split(np.arange(x0.size), 3)
    for step in range(100):
        if step < 3:
            g = groups[step]
            batch.add(np.vstack([x0[g], np.full(g.size, 3.0)]), [np.full(g.size, a)])
        if not batch.running:
            break
        batch.step()
    res = batch.result()
    assert res.converged.all()
    np.testing.assert_array_equal(res.iterations, [it for _, it in expected])
    np.testing.assert_allclose(res.u[0], [x for x, _ in expected], rtol=0, atol=1e-14)
    np.testing.assert_allclose(res.u[0], np.tan(a), rtol=1e-14)
