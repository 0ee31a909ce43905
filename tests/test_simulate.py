"""The reference simulator against independent theory, its own numerics, and itself.

Theory: the unit-rank stationary DMF equations are written out by hand here and solved with
numpy Gauss-Hermite quadrature + scipy fsolve, independently of dmftools' symbolic layer.
"""

import concurrent.futures
import multiprocessing
import sys

import numpy as np
import pytest
from scipy.optimize import fsolve

import dmftools as dmf
from dmftools.simulate import draw_network, simulate, simulate_grid

STRUCTURED = dict(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)  # overlap 2.2 > 1: structured, stationary for g < 1


# -- (1) theory: the hand-written unit-rank stationary DMF ---------------------------------
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(200)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _gauss(f, mu, delta):
    return float(np.sum(_WEIGHTS * f(mu + np.sqrt(max(delta, 0.0)) * _NODES)))


def _unit_rank_fixed_point(Mm, Mn, Sm, g):
    """mu = Mm kappa, Delta0 = g^2 [phi^2] + Sm^2 kappa^2, kappa = Mn [phi]; positive branch."""

    def residual(v):
        mu, delta0, kappa = v
        return [
            mu - Mm * kappa,
            delta0 - g**2 * _gauss(lambda x: np.tanh(x) ** 2, mu, delta0) - Sm**2 * kappa**2,
            kappa - Mn * _gauss(np.tanh, mu, delta0),
        ]

    solution, info, ok, msg = fsolve(residual, [Mm, 1.0, 1.0], xtol=1e-13, full_output=True)
    assert ok == 1, msg
    assert solution[2] > 0.1  # the positive structured branch, not the trivial kappa = 0
    return solution


SEEDS = range(6)
N_THEORY = 2000


@pytest.fixture(scope="module")
def structured_runs():
    net = dmf.RankOne(**STRUCTURED)
    runs = {}
    for g in (0.0, 0.5):
        runs[g] = [simulate(net, g=g, N=N_THEORY, T=40, transient=30, rng=s) for s in SEEDS]
    return runs


@pytest.mark.parametrize("g", [0.0, 0.5])
def test_kappa_and_delta0_match_stationary_dmf(structured_runs, g):
    mu, delta0, kappa = _unit_rank_fixed_point(STRUCTURED["Mm"], STRUCTURED["Mn"], STRUCTURED["Sm"], g)
    runs = structured_runs[g]
    # the sign of kappa is a spontaneous symmetry breaking (x -> -x): compare |kappa|, |mu|
    kappas = [abs(run.kappa()[0]) for run in runs]
    # Per-seed spread of kappa is dominated by the realised overlap m^T n / N, whose std is
    # sqrt(Mm^2 Sn^2 + Mn^2 Sm^2 + Sm^2 Sn^2 / ...) / sqrt(N) ~ 2.5 / sqrt(N); 4 sigma of the seed mean:
    assert abs(np.mean(kappas) - kappa) < 4 * 2.5 / np.sqrt(N_THEORY * len(runs))
    # Delta0 = <x^2> - mu^2 fluctuates ~ 6 / sqrt(N) per seed (measured, 2 Sm^2 kappa x the
    # kappa spread plus the spread of Sm^2); 4 sigma of the seed mean:
    assert abs(np.mean([run.delta0() for run in runs]) - delta0) < 4 * 6 / np.sqrt(N_THEORY * len(runs))
    assert abs(np.mean([abs(run.mean()) for run in runs]) - mu) < 4 * 2.5 * 1.1 / np.sqrt(N_THEORY * len(runs))
    for run in runs:
        # a fixed point: after t = 30 the units no longer move (decay rate >= 0.3 here, e^-9 ~ 1e-4 of O(1))
        assert run.temporal_std() < 1e-4
        # at a fixed point the long-lag autocovariance equals the lag-0 one (exactly, up to the above)
        assert run.delta_inf() == pytest.approx(run.delta0(), rel=1e-6)


def test_random_part_shifts_kappa_as_dmf_predicts(structured_runs):
    """Common random numbers (same seed at g = 0 and 0.5) cancel the loading fluctuations."""
    theory = (_unit_rank_fixed_point(1.1, 2.0, 1.0, 0.5)[2] - _unit_rank_fixed_point(1.1, 2.0, 1.0, 0.0)[2])
    shifts = [abs(a.kappa()[0]) - abs(b.kappa()[0]) for a, b in zip(structured_runs[0.5], structured_runs[0.0])]
    assert theory == pytest.approx(-0.0441, abs=1e-3)
    # paired differences spread ~ 0.8 / sqrt(N) per seed (measured over 10 seeds at N = 2000); 4 sigma:
    assert abs(np.mean(shifts) - theory) < 4 * 0.8 / np.sqrt(N_THEORY * len(shifts))


def test_realised_overlap_reported_next_to_nominal():
    net = dmf.RankOne(**STRUCTURED, Smn=0.3)
    sim = simulate(net, g=0.5, N=500, T=1, rng=2)
    real = sim.network
    assert sim.nominal_overlap[0, 0] == pytest.approx(2.5)
    # exact identity: it is the realisation's own m^T n / N
    assert sim.overlap[0, 0] == pytest.approx(real.m[:, 0] @ real.n[:, 0] / 500, rel=1e-12)
    # and it scatters around the nominal one by ~ 2.6 / sqrt(N) (std of m n); 5 sigma:
    assert abs(sim.overlap[0, 0] - 2.5) < 5 * 2.6 / np.sqrt(500)


def test_loadings_tolerate_singular_covariance():
    # n = m exactly (rank-deficient covariance), deterministic input
    net = dmf.GaussianLowRank(rank=1, means=[0.5, 0.5, 0.2], cov=[[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    real = draw_network(net, N=400, rng=1)
    # eigh factor of a PSD-singular matrix: n equals m up to round-off in the factor
    np.testing.assert_allclose(real.n, real.m, atol=1e-12)
    assert np.all(real.input == 0.2)
    # chi entries have variance 1/N (N^2 samples: relative error ~ sqrt(2)/N; 5 sigma)
    assert np.var(real.chi) * 400 == pytest.approx(1.0, abs=5 * np.sqrt(2) / 400)


# -- (2) rate model: y = J r + I obeys the current model ------------------------------------
@pytest.mark.parametrize("method", ["euler", "rk4"])
@pytest.mark.parametrize("g", [0.8, 1.8])
def test_rate_model_input_current_is_current_model(g, method):
    net = dmf.RankOne(**STRUCTURED, MI=0.3, SI=0.5)
    rate = simulate(net, g=g, N=200, T=20, dt=0.05, method=method, regime="rate", record="y", rng=5)
    current = simulate(net, g=g, N=200, T=20, dt=0.05, method=method, regime="current", rng=5,
                       x0=rate.trajectory[0])
    # Runge-Kutta schemes are affine-equivariant: y = J r + I maps every stage of the rate
    # scheme onto the current scheme's, so the discrete trajectories agree to round-off
    # (~1e-15 per step, observed 3e-15 after 400 steps even at g = 1.8), not just to O(dt^p):
    np.testing.assert_allclose(current.trajectory, rate.trajectory, rtol=0, atol=1e-10)
    # the rate model's kappa is n^T r / N with r low-pass filtered phi(y): different from current's
    assert not np.allclose(current.kappa_t(), rate.kappa_t(), atol=1e-3)


def test_rate_model_stationary_r_is_phi_of_y():
    net = dmf.RankOne(**STRUCTURED)
    y = simulate(net, g=0.5, N=300, T=60, transient=50, regime="rate", record="y", rng=1)
    r = simulate(net, g=0.5, N=300, T=60, transient=50, regime="rate", record="r", rng=1)
    # at the fixed point r = phi(y); residual decays like e^{-0.3 t} from O(1): ~ 1e-6 at t=50
    np.testing.assert_allclose(r.trajectory[-1], np.tanh(y.trajectory[-1]), atol=1e-5)


# -- (3) integration order -------------------------------------------------------------------
@pytest.mark.parametrize("regime", ["current", "rate"])
@pytest.mark.parametrize(
    "method, order, dts",
    [("euler", 1, [0.1, 0.05, 0.025, 0.0125]), ("heun", 2, [0.2, 0.1, 0.05, 0.025]), ("rk4", 4, [0.4, 0.2, 0.1, 0.05])],
)
def test_convergence_order(regime, method, order, dts):
    net = dmf.RankOne(**STRUCTURED, MI=0.3, SI=0.5)
    T = 4.0
    # rk4 at dt = T/2048: error ~ 1e-13, far below the coarsest tested errors
    reference = simulate(net, g=1.2, N=60, T=T, dt=T / 2048, method="rk4", rng=3, regime=regime).trajectory[-1]
    errors = [
        np.linalg.norm(simulate(net, g=1.2, N=60, T=T, dt=dt, method=method, rng=3, regime=regime).trajectory[-1]
                       - reference)
        for dt in dts
    ]
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    # asymptotic regime: observed slopes 1.00-1.01, 2.03-2.04, 4.14; 0.25 leaves room for
    # the O(dt^(p+1)) corrections at the coarse end but rejects the neighbouring order
    assert slope == pytest.approx(order, abs=0.25)


def test_time_varying_input():
    net = dmf.RankOne(**STRUCTURED, MI=0.5, SI=0.5)
    steps = 100
    base = simulate(net, g=0.5, N=80, T=10, rng=4)
    ones = simulate(net, g=0.5, N=80, T=10, rng=4, input=np.ones(steps))
    const = simulate(net, g=0.5, N=80, T=10, rng=4, input=lambda t: 1.0)
    # a multiplier of exactly 1 is the default input: identical arithmetic, bit-identical
    np.testing.assert_array_equal(ones.trajectory, base.trajectory)
    np.testing.assert_array_equal(const.trajectory, base.trajectory)
    # a step at t = 5 from 0: before it, the network never saw I
    step = np.where(np.arange(steps) * 0.1 < 5, 0.0, 1.0)
    stepped = simulate(net, g=0.5, N=80, T=10, rng=4, input=step)
    nothing = simulate(dmf.RankOne(**STRUCTURED), g=0.5, N=80, T=10, rng=4)
    np.testing.assert_array_equal(stepped.trajectory[:51], nothing.trajectory[:51])
    assert not np.allclose(stepped.trajectory[-1], nothing.trajectory[-1])


# -- statistics ------------------------------------------------------------------------------
def test_chaotic_statistics_are_consistent():
    net = dmf.RankOne(Mm=1.0, Mn=0.0, Sm=1.0, Sn=1.0)  # no overlap: g = 2 is chaotic, kappa ~ 0
    # N = 1000: at N = 400 finite-size chaos at g = 2 can freeze into slow, nearly static states
    sim = simulate(net, g=2.0, N=1000, T=200, transient=40, rng=1)
    lags, delta = sim.autocorrelation(max_lag=20)
    assert lags[1] == pytest.approx(0.1) and lags[-1] == pytest.approx(20)
    # same estimator at lag 0 (FFT round-off only)
    assert delta[0] == pytest.approx(sim.delta0(), rel=1e-10)
    # chaos: temporal fluctuations, and the autocovariance decays from Delta0 towards
    # Delta_inf ~ 0 (observed 0.03 Delta0 with T = 160 after the transient; margin 0.2 Delta0)
    assert sim.temporal_std() > 0.5
    assert sim.delta_inf() < 0.2 * sim.delta0()
    # correlation time ~ a few units (SCS chaos at g = 2): half decayed by tau = 5
    assert delta[50] < 0.5 * delta[0]
    # decomposition: total variance = mean temporal variance + static variance (exact identity)
    after = sim.trajectory[sim.times >= 40]
    temporal_var = float(np.mean(after.var(axis=0)))
    assert sim.delta0() == pytest.approx(temporal_var + sim.delta_inf(), rel=1e-10)
    # activity along a vector equals the explicit projection
    v = sim.network.m[:, 0]
    series = sim.activity_along("m", average=False)
    np.testing.assert_allclose(series[:, 0], after @ v / 1000, rtol=1e-12)
    assert sim.activity_along(v) == pytest.approx(series[:, 0].mean(), rel=1e-12)
    # kappa_t is n^T phi(x) / N at every recorded time
    np.testing.assert_allclose(sim.kappa_t()[:, 0], np.tanh(after) @ sim.network.n[:, 0] / 1000,
                               rtol=1e-10, atol=1e-13)


# -- (4) reproducibility ---------------------------------------------------------------------
def test_same_seed_bit_identical():
    net = dmf.RankOne(**STRUCTURED)
    a = simulate(net, g=1.5, N=100, T=10, rng=11, method="rk4")
    b = simulate(net, g=1.5, N=100, T=10, rng=np.random.default_rng(0))
    c = simulate(net, g=1.5, N=100, T=10, rng=b.seed, method="rk4")
    d = simulate(net, g=1.5, N=100, T=10, rng=11, method="rk4")
    np.testing.assert_array_equal(a.trajectory, d.trajectory)
    assert a.seed == 11
    # a Generator is turned into a recorded seed that reproduces the run
    np.testing.assert_array_equal(c.network.chi, b.network.chi)
    assert simulate(net, g=1.5, N=100, T=10, rng=None).seed != simulate(net, g=1.5, N=100, T=10, rng=None).seed


GRID = dict(g=[0.5, 1.5, 2.5], overlap=[0.0, 2.2], N=150, T=20, transient=10, rng=9)


def _assert_grid_equal(a, b):
    for name in ("chaoticity", "kappa", "realised_overlap", "g", "overlap", "mean_n"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_grid_executors_bit_identical():
    net = dmf.RankOne(**STRUCTURED)
    local = simulate_grid(net, **GRID, chunk=4)
    again = simulate_grid(net, **GRID, chunk=4)
    _assert_grid_equal(local, again)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        threaded = simulate_grid(net, **GRID, chunk=4, executor=pool)
    _assert_grid_equal(local, threaded)
    assert local.meta["chunks"] == 2
    # other chunkings differ only by GEMM summation order (float32 round-off, ~1e-7,
    # amplified by chaos at g = 2.5 over T = 20; 1e-3 of the O(1) statistics)
    other = simulate_grid(net, **GRID, chunk=1)
    np.testing.assert_allclose(other.chaoticity, local.chaoticity, rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method")
def test_grid_process_pool_bit_identical():
    """Chunks (data + SymPy phi) are pickled to another process and compiled there."""
    net = dmf.RankOne(**STRUCTURED, phi="erf")
    local = simulate_grid(net, **GRID, chunk=3)
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        remote = simulate_grid(net, **GRID, chunk=3, executor=pool)
    _assert_grid_equal(local, remote)


def test_grid_dask_distributed_bit_identical():
    distributed = pytest.importorskip("distributed")
    net = dmf.RankOne(**STRUCTURED)
    local = simulate_grid(net, **GRID, chunk=3)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as client:
        remote = simulate_grid(net, **GRID, chunk=3, executor=client)
    _assert_grid_equal(local, remote)


@pytest.mark.slow
def test_grid_dask_local_cluster_processes_bit_identical():
    """Worker processes on 127.0.0.1: chunks and the SymPy phi travel through pickling."""
    distributed = pytest.importorskip("distributed")
    net = dmf.RankOne(**STRUCTURED)
    local = simulate_grid(net, **GRID, chunk=3)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = simulate_grid(net, **GRID, chunk=3, executor=client)
    _assert_grid_equal(local, remote)


# -- (6) grid against single runs on the same realisation -----------------------------------
@pytest.mark.parametrize("regime", ["current", "rate"])
def test_grid_matches_single_runs(regime):
    net = dmf.RankOne(**STRUCTURED, Smn=0.2)
    gs, overlaps = [0.5, 2.0], [0.0, 2.2]
    grid = simulate_grid(net, g=gs, overlap=overlaps, N=300, T=30, transient=15, dtype=np.float64,
                         rng=7, regime=regime)
    assert grid.seed == 7
    for i, g in enumerate(gs):
        for j, overlap in enumerate(overlaps):
            # documented rule: the mean of n is set so that Mm Mn + Smn = overlap
            point = dmf.RankOne(**{**STRUCTURED, "Mn": (overlap - 0.2) / 1.1}, Smn=0.2)
            assert point.overlap[0, 0] == pytest.approx(overlap, abs=1e-14)
            single = simulate(point, g=g, N=300, T=30, transient=15, rng=7, regime=regime,
                              record="x" if regime == "current" else "y")
            # same network; GEMM vs GEMV summation order differs (1e-16 per step), amplified at
            # most e^{lambda T} with lambda < 0.5 here: observed 1e-13, tolerance 1e-8
            assert grid.chaoticity[i, j] == pytest.approx(single.temporal_std(), rel=1e-8, abs=1e-10)
            assert grid.kappa[i, j, 0] == pytest.approx(single.kappa()[0], rel=1e-8, abs=1e-10)
            # realised overlap: same loadings, shifted mean of n (round-off only)
            assert grid.realised_overlap[i, j] == pytest.approx(single.overlap[0, 0], abs=1e-12)
    # the sweep resolves the phase diagram: fixed points at g = 0.5, chaos at g = 2
    assert np.all(grid.chaoticity[0] < 1e-3) and np.all(grid.chaoticity[1] > 0.1)
    assert abs(grid.kappa[0, 1, 0]) > 0.8 and abs(grid.kappa[0, 0, 0]) < 1e-3


def test_grid_float32_close_to_float64():
    net = dmf.RankOne(**STRUCTURED)
    g32 = simulate_grid(net, g=[0.5], overlap=[0.0, 2.2], N=200, T=30, transient=15, rng=3)
    g64 = simulate_grid(net, g=[0.5], overlap=[0.0, 2.2], N=200, T=30, transient=15, rng=3, dtype=np.float64)
    assert g32.dtype == "float32"
    # stationary points: float32 round-off (~1e-7 relative) does not grow; 1e-4 absolute
    np.testing.assert_allclose(g32.kappa, g64.kappa, atol=1e-4)


def test_grid_to_xarray_and_plot(monkeypatch):
    net = dmf.RankOne(**STRUCTURED)
    grid = simulate_grid(net, g=[0.5, 2.0], overlap=[0.0, 1.0, 2.2], N=60, T=4, transient=2)
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match="pip install"):
        grid.to_xarray()
    monkeypatch.undo()
    xr = pytest.importorskip("xarray")
    ds = grid.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert ds["chaoticity"].dims == ("g", "overlap") and ds.attrs["seed"] == 0
    np.testing.assert_array_equal(ds["kappa"].sel(k=1).values, grid.kappa[..., 0])
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = grid.plot()
    assert len(fig.axes) == 4  # two panels and their colour bars
    plt.close(fig)


# -- (5) validation --------------------------------------------------------------------------
NET = dmf.RankOne(**STRUCTURED)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(N=0), ValueError, "N"),
        (dict(N=2.5), TypeError, "N"),
        (dict(dt=0.0), ValueError, "dt"),
        (dict(dt=-0.1), ValueError, "dt"),
        (dict(dt=0.3), ValueError, "dt"),  # T = 1 is not a whole number of steps
        (dict(T=0.0), ValueError, "T"),
        (dict(T=-1.0), ValueError, "T"),
        (dict(transient=2.0), ValueError, "transient"),
        (dict(transient=-1.0), ValueError, "transient"),
        (dict(g=-1.0), ValueError, "g"),
        (dict(g="big"), TypeError, "g"),
        (dict(regime="voltage"), ValueError, "regime"),
        (dict(method="rk45"), ValueError, "method"),
        (dict(regime="current", record="y"), ValueError, "record"),
        (dict(regime="rate", record="x"), ValueError, "record"),
        (dict(input=np.ones(7)), ValueError, "input"),
        (dict(input=np.ones((10, 2))), ValueError, "input"),
        (dict(input=lambda t: np.ones(2)), ValueError, "input"),
        (dict(x0=np.zeros(5)), ValueError, "x0"),
        (dict(rng="seed"), TypeError, "rng"),
        (dict(rng=-3), ValueError, "rng"),
        (dict(dtype=np.int32), ValueError, "dtype"),
        (dict(net="RankOne"), TypeError, "net"),
    ],
)
def test_simulate_rejects_bad_input(kwargs, error, name):
    args = dict(net=NET, g=0.5, N=10, T=1.0, dt=0.1)
    args.update(kwargs)
    with pytest.raises(error, match=rf"^{name}:"):
        simulate(**args)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(g=[]), ValueError, "g"),
        (dict(g=[[0.5]]), ValueError, "g"),
        (dict(g=[-0.5]), ValueError, "g"),
        (dict(overlap=[np.nan]), ValueError, "overlap"),
        (dict(net=dmf.RankOne(Mm=0.0, Mn=1.0, Sm=1.0, Sn=1.0)), ValueError, "overlap"),
        (dict(chunk=0), ValueError, "chunk"),
        (dict(executor=object()), TypeError, "executor"),
        (dict(N=0), ValueError, "N"),
        (dict(T=1.0, transient=2.0), ValueError, "transient"),
        (dict(regime="spiking"), ValueError, "regime"),
    ],
)
def test_simulate_grid_rejects_bad_input(kwargs, error, name):
    args = dict(net=NET, g=[0.5], overlap=[1.0], N=10, T=1.0)
    args.update(kwargs)
    with pytest.raises(error, match=rf"^{name}:"):
        simulate_grid(**args)
