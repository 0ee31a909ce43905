"""The reference simulator against independent theory, its own numerics, and itself.

Theory: the unit-rank stationary DMF equations are written out by hand here and solved with
numpy Gauss-Hermite quadrature + scipy fsolve, independently of dmftools' symbolic layer.
"""

import concurrent.futures
import hashlib
import importlib
import multiprocessing
import sys

import numpy as np
import pytest
import sympy as sp
from scipy.optimize import fsolve

import dmftools as dmf
from dmftools.simulate import SimulationEnsemble, draw_network, pulse_input, simulate, simulate_grid, step_input

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
    assert ds["chaoticity"].dims == ("g", "overlap") and ds["seed"].values.tolist() == [0]
    np.testing.assert_array_equal(ds["kappa"].sel(k=1).values, grid.kappa[..., 0])
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = grid.plot()
    assert len(fig.axes) == 4  # two panels and their colour bars
    plt.close(fig)


# -- (5) validation --------------------------------------------------------------------------
NET = dmf.RankOne(**STRUCTURED)
DRIVEN = dmf.RankOne(**STRUCTURED, MI=0.3, SI=0.5)


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
        (dict(T=0.05, transient=0.05), ValueError, "T"),  # no step left after the transient
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
        (dict(T=0.05, transient=0.05, dt=0.1), ValueError, "T"),
        (dict(transient=-2.0), ValueError, "transient"),
        (dict(regime="spiking"), ValueError, "regime"),
        (dict(threads=0), ValueError, "threads"),
        (dict(threads=1.5), ValueError, "threads"),
        (dict(net=DRIVEN, input_strength=np.nan), ValueError, "input_strength"),
        (dict(net=DRIVEN, input_strength=[0.5, np.inf]), ValueError, "input_strength"),
        (dict(net=DRIVEN, input_strength=[[0.5, 1.0]]), ValueError, "input_strength"),
        (dict(net=DRIVEN, input_strength=[]), ValueError, "input_strength"),
        (dict(net=DRIVEN, input_strength="strong"), TypeError, "input_strength"),
        (dict(net=DRIVEN, input_strength=True), TypeError, "input_strength"),
        (dict(input_strength=[0.5, 1.0]), ValueError, "input_strength"),  # NET has no input
        (dict(input_strength=2.0), ValueError, "input_strength"),
    ],
)
def test_simulate_grid_rejects_bad_input(kwargs, error, name):
    args = dict(net=NET, g=[0.5], overlap=[1.0], N=10, T=1.0)
    args.update(kwargs)
    with pytest.raises(error, match=rf"^{name}:"):
        simulate_grid(**args)


# -- (7) seed 000's general form: tau, input u(t) through B, readout z = W r -----------------
QUIET = dict(Mm=0.0, Mn=0.0, Sm=0.0, Sn=0.0)  # m = n = 0: with g = 0, J = 0 and the dynamics is linear


def _filtered_sine(t, omega, tau):
    """Solution of tau y' = -y + sin(omega t), y(0) = 0."""
    a = omega * tau
    return (np.sin(omega * t) - a * np.cos(omega * t) + a * np.exp(-t / tau)) / (1 + a**2)


def _filtered_pulse(t, onset, duration, tau):
    """Solution of tau y' = -y + 1[onset <= t < onset + duration], y(0) = 0."""
    rise = np.where(t >= onset, 1 - np.exp(-(t - onset) / tau), 0.0)
    after = t >= onset + duration
    return np.where(after, (1 - np.exp(-duration / tau)) * np.exp(-(t - onset - duration) / tau), rise)


def test_general_form_current_model_against_closed_form():
    """tau dx/dt = -x + B u(t) at J = 0 is a linear filter of B u: exact solution known."""
    N, tau, omega, dt, T = 40, 2.0, 1.3, 0.05, 12.0
    rng = np.random.default_rng(1)
    B = rng.standard_normal((N, 2))
    W = rng.standard_normal((3, N)) / N
    pulse = pulse_input(4.0, 3.0, amplitude=1.0)
    u = lambda t: np.array([np.sin(omega * t), pulse(t)])  # noqa: E731 (plain callable)
    u_with_limits = _TwoChannel(omega, pulse)  # the same, with left limits at step ends
    sim = simulate(dmf.RankOne(**QUIET), g=0.0, N=N, T=T, dt=dt, tau=tau, B=B, u=u_with_limits, W=W,
                   method="rk4", rng=0)
    t = sim.times[:, None]
    x0 = sim.network.x0
    exact = (x0 * np.exp(-t / tau) + B[:, 0] * _filtered_sine(t, omega, tau)
             + B[:, 1] * _filtered_pulse(t, 4.0, 3.0, tau))
    # RK4 global error ~ (dt/tau)^4 |u''''|-ish ~ 1e-7 here (observed 2e-8); the pulse switches on
    # grid points and its left limit ends each step, so it costs no accuracy. 1e-6 would still
    # catch a missing 1/tau (O(1)) or a pulse seen one stage early (O(dt) ~ 1e-2).
    np.testing.assert_allclose(sim.trajectory, exact, rtol=0, atol=1e-6)
    # the readout is z = W phi(x) at every time point (same arithmetic up to round-off)
    assert sim.readout.shape == (sim.times.size, 3)
    np.testing.assert_allclose(sim.readout, np.tanh(sim.trajectory) @ W.T, rtol=1e-12, atol=1e-14)
    # a plain callable is evaluated as given: its jump at t = 4 is seen by the last RK4 stage of
    # the step before, an O(dt) error (observed ~1e-3): the left limits above are what avoid it
    plain = simulate(dmf.RankOne(**QUIET), g=0.0, N=N, T=T, dt=dt, tau=tau, B=B, u=u, method="rk4", rng=0)
    assert np.abs(plain.trajectory - exact).max() > 1e-4


class _TwoChannel:
    def __init__(self, omega, pulse):
        self.omega, self.pulse = omega, pulse

    def __call__(self, t):
        return np.array([np.sin(self.omega * t), self.pulse(t)])

    def left_limit(self, t):
        return np.array([np.sin(self.omega * t), self.pulse.left_limit(t)])


def test_general_form_rate_model_against_closed_form():
    """tau dr/dt = -r + phi(B u) at J = 0: y = B u exactly, r relaxes to phi(B u) with rate 1/tau."""
    N, tau, dt, T = 30, 0.5, 0.02, 3.0
    steps = int(round(T / dt))
    rng = np.random.default_rng(2)
    B = rng.standard_normal(N)
    level = np.where(np.arange(steps + 1) * dt < 1.0, 0.0, 0.7)  # a step at t = 1 given on the grid
    net = dmf.RankOne(**QUIET)
    y = simulate(net, g=0.0, N=N, T=T, dt=dt, regime="rate", record="y", tau=tau, B=B, u=level,
                 method="rk4", rng=3)
    r = simulate(net, g=0.0, N=N, T=T, dt=dt, regime="rate", record="r", tau=tau, B=B, u=level,
                 method="rk4", rng=3, W=np.ones(N) / N)
    assert (y.record, r.record) == ("y", "r") and "J r + e" in y.record_meaning
    # y = J r + B u with J = 0: exactly the input, sampled on the grid (1 ulp of B*u)
    np.testing.assert_allclose(y.trajectory, level[:, None] * B, rtol=1e-15, atol=0)
    t = r.times[:, None]
    r0 = r.network.x0
    target = np.tanh(0.7 * B)
    exact = np.where(t < 1.0, r0 * np.exp(-t / tau),
                     (r0 * np.exp(-1.0 / tau) - target) * np.exp(-(t - 1.0) / tau) + target)
    # the grid step is held over whole steps (zero-order hold), so RK4 stays exact to
    # ~(dt/tau)^4 / 120 per unit time ~ 1e-8; tolerance 1e-7
    np.testing.assert_allclose(r.trajectory, exact, rtol=0, atol=1e-7)
    # the rate model reads out its state: z = W r
    np.testing.assert_allclose(r.readout, r.trajectory.mean(axis=1), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("regime", ["current", "rate"])
def test_general_form_euler_is_the_residual_update(regime):
    """One Euler step is x + (dt/tau)(-x + J r + B u) with the dense J (seed 000's update)."""
    net = dmf.RankOne(**STRUCTURED, MI=0.2, SI=0.3)
    N, g, dt, tau = 50, 1.3, 0.1, 3.0
    B = np.random.default_rng(4).standard_normal((N, 2))
    u = np.array([[0.5, -1.0], [0.2, 0.3]])  # two steps, a row per step
    sim = simulate(net, g=g, N=N, T=2 * dt, dt=dt, tau=tau, B=B, u=u, regime=regime, rng=6)
    J = sim.network.connectivity(g)
    state = sim.network.x0
    for k in range(2):
        external = sim.network.input + B @ u[k]
        if regime == "current":
            state = state + (dt / tau) * (-state + J @ np.tanh(state) + external)
        else:
            state = state + (dt / tau) * (-state + np.tanh(J @ state + external))
        # the same arithmetic in another order: round-off only
        np.testing.assert_allclose(sim.trajectory[k + 1], state, rtol=1e-12, atol=1e-13)


def test_tau_rescales_time():
    """tau = 2 with step dt is tau = 1 with step dt / 2 and u(2 t): identical Euler arithmetic."""
    net = dmf.RankOne(**STRUCTURED)
    B = np.linspace(-1, 1, 60)
    slow = simulate(net, g=1.5, N=60, T=10, dt=0.1, tau=2.0, B=B, u=lambda t: np.sin(t), rng=8)
    fast = simulate(net, g=1.5, N=60, T=5, dt=0.05, tau=1.0, B=B, u=lambda t: np.sin(2 * t), rng=8)
    # (f / 2) * 0.1 and f * 0.05 round identically (exact powers of two), u is evaluated at the
    # same points: equal to the last bit (chaotic g = 1.5 would amplify any difference)
    np.testing.assert_array_equal(slow.trajectory, fast.trajectory)
    assert slow.tau == 2.0 and "tau=2.0" in repr(slow)


def test_step_and_pulse_inputs():
    s = step_input(0.3, amplitude=2.0, baseline=-1.0)
    # right-continuous, robust to round-off in stage times k * dt (3 * 0.1 = 0.30000000000000004)
    assert [s(t) for t in (0.0, 0.29, 0.3, 3 * 0.1, 0.1 * 3 - 1e-16, 5.0)] == [-1.0, -1.0, 2.0, 2.0, 2.0, 2.0]
    assert s.left_limit(0.3) == -1.0 and s.left_limit(0.31) == 2.0
    p = pulse_input(1.0, 0.5, amplitude=[1.0, 2.0])
    np.testing.assert_array_equal(p(1.2), [1.0, 2.0])
    np.testing.assert_array_equal(p(1.5), [0.0, 0.0])
    np.testing.assert_array_equal(p.left_limit(1.5), [1.0, 2.0])
    with pytest.raises(ValueError, match="^duration:"):
        pulse_input(1.0, 0.0)
    import pickle

    assert pickle.loads(pickle.dumps(s))(1.0) == 2.0  # travels to executor workers


# -- (8) rate model with time-varying input: dy/dt = -y + J phi(y) + I + dI/dt ---------------
def test_rate_model_smooth_input_obeys_current_model_plus_derivative():
    """y = J r + e(t) solves tau dy/dt = -y + J phi(y) + e + tau de/dt (THEORY.md section 6)."""
    net = dmf.RankOne(**STRUCTURED, MI=0.2, SI=0.4)
    N, g, tau, T, omega = 80, 1.2, 2.0, 8.0, 1.5
    B = np.random.default_rng(5).standard_normal(N)
    u = lambda t: np.sin(omega * t)  # noqa: E731
    du = lambda t: omega * np.cos(omega * t)  # noqa: E731
    errors = []
    for dt in (0.1, 0.05):
        rate = simulate(net, g=g, N=N, T=T, dt=dt, tau=tau, B=B, u=u, regime="rate", record="y",
                        method="rk4", rng=2)
        current = simulate(net, g=g, N=N, T=T, dt=dt, tau=tau, B=B, u=lambda t: u(t) + tau * du(t),
                           method="rk4", rng=2, x0=rate.trajectory[0])
        errors.append(np.abs(rate.trajectory - current.trajectory).max())
        # without the derivative term the current model is O(1) off (observed 2.5)
        plain = simulate(net, g=g, N=N, T=T, dt=dt, tau=tau, B=B, u=u, method="rk4", rng=2,
                         x0=rate.trajectory[0])
        assert np.abs(rate.trajectory - plain.trajectory).max() > 0.3
    # the schemes differ only by RK4's quadrature error on e'(t): O(dt^4) globally. Observed
    # 3.0e-6 at dt = 0.1 and 1.9e-7 at 0.05 (ratio 16.06; 16.1 and 16.03 at the neighbouring
    # halvings). Error < 1e-5 and a ratio > 12 (order > 3.6; order 3 gives 8) establish the
    # relation in the limit dt -> 0, not just to the size of the O(1) derivative term
    assert errors[0] < 1e-5
    assert errors[0] / errors[1] > 12


def test_rate_model_step_input_moves_y_at_once_current_model_filters_it():
    """A step in I: y jumps by Delta I in one step; x does not; both settle on the same state."""
    net = dmf.RankOne(Mm=1.0, Mn=0.5, Sm=1.0, Sn=1.0, MI=0.3, SI=0.5)  # overlap 0.5: one fixed point
    N, g, dt, T, onset = 200, 0.5, 0.05, 40.0, 5.0
    k0 = int(round(onset / dt))
    step = step_input(onset, amplitude=2.0, baseline=1.0)  # multiplier of I: 1 -> 2
    rate = simulate(net, g=g, N=N, T=T, dt=dt, input=step, regime="rate", record="y", rng=3)
    current = simulate(net, g=g, N=N, T=T, dt=dt, input=step, rng=3, x0=rate.trajectory[0])
    delta_input = rate.network.input  # (2 - 1) I
    J = rate.network.connectivity(g)
    y_before = rate.trajectory[k0 - 1]
    field = -y_before + J @ np.tanh(y_before) + 1.0 * rate.network.input
    # discrete dI/dt relation: the Euler step across the switch is the current-model step plus
    # the whole Delta I (round-off only: the same sums in another order)
    np.testing.assert_allclose(rate.trajectory[k0] - y_before, dt * field + delta_input, rtol=0, atol=1e-12)
    # so y moves by Delta I at once (to O(dt): observed max |dt field| ~ 0.03) ...
    jump_rate = rate.trajectory[k0] - rate.trajectory[k0 - 1]
    assert np.abs(jump_rate - delta_input).max() < 3 * dt
    # ... while x moves by O(dt) only: filtered, it needs ~ 1 time unit to follow
    jump_current = current.trajectory[k0] - current.trajectory[k0 - 1]
    assert np.abs(jump_current).max() < 3 * dt < 0.5 * np.abs(delta_input).max()
    # the whole rate trajectory is the current model with a kick of Delta I at the onset (the
    # integral of dI/dt) and the new input afterwards: same Euler arithmetic up to round-off
    # (contracting dynamics at g = 0.5, no amplification)
    np.testing.assert_allclose(rate.trajectory[:k0], current.trajectory[:k0], rtol=0, atol=1e-12)
    kicked = simulate(net, g=g, N=N, T=T - onset, dt=dt, input=lambda t: 2.0, rng=3,
                      x0=current.trajectory[k0] + delta_input)
    np.testing.assert_allclose(rate.trajectory[k0:], kicked.trajectory, rtol=0, atol=1e-10)
    # transients differ (by Delta I at the onset), stationary states do not: after 35 time
    # units the decay (rate >= 1 - 0.5 - overlap-driven ~ 0.3) leaves < 1e-4 of O(1)
    assert np.abs(rate.trajectory[k0] - current.trajectory[k0]).max() > 0.5
    np.testing.assert_allclose(rate.trajectory[-1], current.trajectory[-1], rtol=0, atol=1e-6)


# -- (9) several seeds: means and standard errors --------------------------------------------
def test_ensemble_statistics_and_standard_errors():
    net = dmf.RankOne(**STRUCTURED)
    runs = simulate(net, g=0.5, N=150, T=6, transient=3, rng=[4, 9, 2])
    assert isinstance(runs, SimulationEnsemble) and runs.seeds == (4, 9, 2)
    # each member is exactly the single-seed run
    np.testing.assert_array_equal(runs[1].trajectory, simulate(net, g=0.5, N=150, T=6, transient=3, rng=9).trajectory)
    values = np.array([run.temporal_std() for run in runs])
    est = runs.temporal_std()
    np.testing.assert_array_equal(est.samples, values)
    # mean and standard error of the mean: std with ddof = 1 over sqrt(n) (exact formulas)
    assert est.mean == pytest.approx(values.mean(), rel=1e-14)
    assert est.sem == pytest.approx(values.std(ddof=1) / np.sqrt(3), rel=1e-12)
    kappa = runs.kappa(absolute=True)
    assert kappa.mean.shape == kappa.sem.shape == (1,)
    np.testing.assert_allclose(kappa.samples[:, 0], [abs(run.kappa()[0]) for run in runs], rtol=0, atol=0)
    lags, delta = runs.autocorrelation(max_lag=1.0)
    assert lags.shape == (11,) and delta.samples.shape == (3, 11) and delta.sem.shape == (11,)
    # one seed in a list: an ensemble of one, undefined standard error
    single = simulate(net, g=0.5, N=50, T=1, rng=[5])
    assert len(single) == 1 and np.isnan(single.delta0().sem)


def test_ensemble_standard_error_matches_known_spread():
    """Realised overlap m^T n / N over seeds: its sem must match the known sampling spread."""
    net = dmf.RankOne(**STRUCTURED)
    N, seeds = 200, 48
    runs = simulate(net, g=0.0, N=N, T=0.1, rng=range(seeds))
    est = runs.overlap()
    # Var(m n) = Mm^2 Sn^2 + Mn^2 Sm^2 + Sm^2 Sn^2 = 6.21 for independent Gaussian m, n
    expected_sem = np.sqrt(6.21 / N) / np.sqrt(seeds)
    # the sample std of 48 draws has relative spread 1 / sqrt(2 * 47) ~ 0.10: 3 sigma = 0.31
    assert est.sem[0, 0] == pytest.approx(expected_sem, rel=0.31)
    # and the mean is unbiased: within 4 standard errors of the nominal overlap
    assert abs(est.mean[0, 0] - 2.2) < 4 * expected_sem


def test_ensemble_rejects_bad_seed_lists():
    with pytest.raises(ValueError, match="^rng:.*distinct"):
        simulate(NET, g=0.5, N=10, T=1.0, rng=[1, 2, 1])
    with pytest.raises(ValueError, match="^rng:.*empty"):
        simulate(NET, g=0.5, N=10, T=1.0, rng=[])
    with pytest.raises(TypeError, match="^rng:"):
        simulate(NET, g=0.5, N=10, T=1.0, rng=[0, "one"])
    with pytest.raises(ValueError, match="^rng:.*distinct"):
        simulate_grid(NET, g=[0.5], overlap=[1.0], N=10, T=1.0, rng=(3, 3))


def test_grid_several_seeds_mean_and_sem():
    net = dmf.RankOne(**STRUCTURED)
    grid = simulate_grid(net, **{**GRID, "rng": [9, 4, 7]}, chunk=4)
    assert grid.seeds == (9, 4, 7) and grid.seed is None
    assert grid.chaoticity_samples.shape == (3, 3, 2) and grid.kappa_samples.shape == (3, 3, 2, 1)
    # seed by seed, exactly the single-seed sweeps (same chunking)
    for i, seed in enumerate(grid.seeds):
        alone = simulate_grid(net, **{**GRID, "rng": seed}, chunk=4)
        np.testing.assert_array_equal(grid.chaoticity_samples[i], alone.chaoticity)
        np.testing.assert_array_equal(grid.kappa_samples[i], alone.kappa)
        np.testing.assert_array_equal(grid.realised_overlap_samples[i], alone.realised_overlap)
    # means over seeds and standard errors of the mean (exact formulas)
    np.testing.assert_allclose(grid.chaoticity, grid.chaoticity_samples.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(grid.chaoticity_sem, grid.chaoticity_samples.std(axis=0, ddof=1) / np.sqrt(3),
                               rtol=1e-12)
    np.testing.assert_allclose(grid.abs_kappa_sem, np.abs(grid.kappa_samples).std(axis=0, ddof=1) / np.sqrt(3),
                               rtol=1e-12)
    # chunks of all seeds interleave on an executor: results land at their seed
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        threaded = simulate_grid(net, **{**GRID, "rng": [9, 4, 7]}, chunk=4, executor=pool)
    np.testing.assert_array_equal(threaded.chaoticity_samples, grid.chaoticity_samples)
    np.testing.assert_array_equal(threaded.kappa_samples, grid.kappa_samples)
    # a single seed: sem undefined (NaN), samples have a seed axis of 1
    one = simulate_grid(net, **GRID, chunk=4)
    assert one.seed == 9 and np.all(np.isnan(one.chaoticity_sem))
    xr = pytest.importorskip("xarray")
    ds = grid.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert ds["seed"].values.tolist() == [9, 4, 7] and ds.attrs["n_seeds"] == 3
    for name in ("chaoticity", "kappa", "abs_kappa", "realised_overlap"):
        assert {name, f"{name}_sem", f"{name}_samples"} <= set(ds.data_vars)
    np.testing.assert_array_equal(ds["chaoticity_sem"].values, grid.chaoticity_sem)
    np.testing.assert_array_equal(ds["kappa_sem"].sel(k=1).values, grid.kappa_sem[..., 0])
    assert ds["chaoticity_samples"].dims == ("seed", "g", "overlap")


# -- (10) plot with theory boundaries ------------------------------------------------------------
class _TheoryDiagram:
    """Stands in for the theory phase diagram: anything with boundary_curves()."""

    def boundary_curves(self):
        return {"onset of chaos": (np.array([1.0, 1.0]), np.array([0.0, 1.0])),
                "structured": (np.linspace(0, 1, 5), np.ones(5) + np.array([0, 0, 0, np.nan, 5.0]))}


def test_grid_plot_overlays_boundaries(monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plot() must not call plt.show"))
    net = dmf.RankOne(**STRUCTURED)
    grid = simulate_grid(net, g=[0.5, 1.0, 2.0], overlap=[0.0, 1.0, 2.2], N=40, T=2, transient=1)
    bare = grid.plot()
    extent = (bare.axes[0].get_xlim(), bare.axes[0].get_ylim())
    plt.close(bare)
    # cell edges of the non-uniform grid (round-off in the edge midpoints only)
    np.testing.assert_allclose(np.ravel(extent), [0.25, 2.5, -0.5, 2.8], rtol=1e-14)
    for boundaries in (_TheoryDiagram(), _TheoryDiagram().boundary_curves()):
        fig = grid.plot(boundaries=boundaries)
        first, second = fig.axes[0], fig.axes[1] if fig.axes[1].get_title() else fig.axes[2]
        limits = (first.get_xlim(), first.get_ylim())
        curves = _TheoryDiagram().boundary_curves()
        for ax in (first, second):
            lines = ax.get_lines()
            assert len(lines) == 2
            for line, (gs, overlaps) in zip(lines, curves.values()):
                np.testing.assert_array_equal(line.get_xdata(), gs)
                np.testing.assert_array_equal(line.get_ydata(), overlaps)
        assert [t.get_text() for t in first.get_legend().get_texts()] == list(curves)
        # a curve reaching overlap 6 does not stretch the panel: the sweep's extent is kept
        assert limits == extent
        plt.close(fig)
    # into given axes, no boundaries: no lines, no legend
    fig, axes = plt.subplots(1, 2)
    assert grid.plot(ax=axes) is fig and not axes[0].get_lines() and axes[0].get_legend() is None
    plt.close(fig)


@pytest.mark.parametrize(
    "boundaries, error",
    [
        ([(0, 1)], TypeError),
        ({"a": (np.ones(3), np.ones(4))}, ValueError),
        ({"a": np.ones(3)}, ValueError),
        ({"a": (np.ones((2, 2)), np.ones((2, 2)))}, ValueError),
        ({"a": ([], [])}, ValueError),
    ],
)
def test_grid_plot_rejects_bad_boundaries(boundaries, error):
    pytest.importorskip("matplotlib").use("Agg")
    grid = simulate_grid(NET, g=[0.5], overlap=[1.0], N=10, T=1.0)
    with pytest.raises(error, match="^boundaries:"):
        grid.plot(boundaries=boundaries)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(tau=0.0), "tau"),
        (dict(tau=-1.0), "tau"),
        (dict(tau=np.inf), "tau"),
        (dict(B=np.ones(10)), "u"),  # B without u
        (dict(u=lambda t: 1.0), "B"),  # u without B
        (dict(B=np.ones(9), u=lambda t: 1.0), "B"),
        (dict(B=np.ones((10, 2, 1)), u=lambda t: np.ones(2)), "B"),
        (dict(B=np.full(10, np.nan), u=lambda t: 1.0), "B"),
        (dict(B=np.ones((10, 2)), u=np.ones((10, 3))), "u"),
        (dict(B=np.ones((10, 2)), u=np.ones((9, 2))), "u"),
        (dict(B=np.ones((10, 2)), u=np.ones(10)), "u"),
        (dict(B=np.ones(10), u=np.full(10, np.nan)), "u"),
        (dict(B=np.ones((10, 2)), u=lambda t: 1.0), "u"),
        (dict(B=np.ones(10), u=lambda t: np.nan), "u"),
        (dict(B=np.ones(10), u=lambda t: 1.0 if t < 0.5 else np.ones(2)), "u"),  # checked at every stage
        (dict(B=np.ones(10), u="ramp"), "u"),
        (dict(W=np.ones(9)), "W"),
        (dict(W=np.ones((2, 11))), "W"),
        (dict(W=np.full((2, 10), np.inf)), "W"),
        (dict(input=np.ones(12)), "input"),
    ],
)
def test_general_form_rejects_bad_input(kwargs, name):
    args = dict(net=NET, g=0.5, N=10, T=1.0, dt=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{name}:"):
        simulate(**args)


def test_general_form_accepts_grid_samples_per_step_or_per_point():
    base = dict(net=NET, g=0.5, N=10, T=1.0, dt=0.1, B=np.ones((10, 2)), rng=1)
    per_step = simulate(**base, u=np.ones((10, 2)))
    per_point = simulate(**base, u=np.ones((11, 2)))
    callable_ = simulate(**base, u=lambda t: np.ones(2))
    # constant u: same arithmetic whichever way it is given
    np.testing.assert_array_equal(per_step.trajectory, per_point.trajectory)
    np.testing.assert_array_equal(per_step.trajectory, callable_.trajectory)
    # and u = 1 through B = 1 is the same as the model input I shifted by 2 (round-off)
    shifted = dmf.RankOne(**STRUCTURED, MI=2.0)
    ref = simulate(shifted, g=0.5, N=10, T=1.0, dt=0.1, rng=1)
    np.testing.assert_allclose(per_step.trajectory, ref.trajectory, rtol=0, atol=1e-12)


# -- (11) input strength as a sweep axis -----------------------------------------------------------
def _arithmetic_fingerprint():
    """The platform's rounding in what the sweep's values depend on beyond IEEE basics: numpy's
    BLAS products of the shapes of the stored grid below (N = 60, chunks of 3 and 1) and tanh."""
    rng = np.random.default_rng(0)
    parts = []
    for width in (3, 1):
        A, X = rng.standard_normal((60, 62)), rng.standard_normal((62, width))
        parts += [A @ X, rng.standard_normal((2, 60)) @ rng.standard_normal((60, width))]
    parts.append(np.tanh(np.linspace(-4, 4, 1001)))
    return hashlib.sha256(b"".join(part.tobytes() for part in parts)).hexdigest()[:16]


#: Outputs of the implementation before ``input_strength`` and the threaded elementwise work
#: (commit b7c7799), float64, on the platform with the fingerprint below.
OLD_OUTPUTS = {
    "fingerprint": "951921725586c515",
    "current": (["0x1.fd10a27a0e2dap-6", "0x1.07942e4b234cep-4", "0x1.2dcc91382a972p-5", "0x1.b9e617c921702p-5"],
                ["0x1.b88ce5341b52cp-2", "0x1.bbde9f3d94353p+0", "0x1.9d28e06bea881p-2", "0x1.aeb1a565a4a9bp+0"]),
    "rate": (["0x1.56b4f4a731c97p-7", "0x1.813ba84437fcfp-6", "0x1.19256e9f02e2bp-6", "0x1.4ad8672404be5p-6"],
             ["0x1.b5cdf4fef717dp-2", "0x1.b88b24521837dp+0", "0x1.9900a96eec495p-2", "0x1.ab92e6ea2a3d1p+0"]),
}


@pytest.mark.parametrize("regime", ["current", "rate"])
@pytest.mark.parametrize("input_strength", [{}, {"input_strength": 1.0}])
def test_grid_scalar_input_strength_one_is_unchanged(regime, input_strength):
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0, MI=0.3, SI=0.6, SnI=0.2)
    grid = simulate_grid(net, g=[0.3, 0.6], overlap=[0.5, 2.2], N=60, T=6, transient=3, rng=5,
                         dtype=np.float64, chunk=3, regime=regime, **input_strength)
    assert grid.chaoticity.shape == (2, 2) and grid.input_strength == 1.0 and not grid.input_axis
    chaoticity, kappa = (np.array([float.fromhex(v) for v in values]) for values in OLD_OUTPUTS[regime])
    if _arithmetic_fingerprint() == OLD_OUTPUTS["fingerprint"]:
        # same BLAS kernels and tanh as the stored run: bit for bit
        np.testing.assert_array_equal(grid.chaoticity.ravel(), chaoticity)
        np.testing.assert_array_equal(grid.kappa.ravel(), kappa)
    else:
        # another platform rounds the products differently (1e-16 per step); g <= 0.6 contracts,
        # so the difference stays at round-off: 1e-12
        np.testing.assert_allclose(grid.chaoticity.ravel(), chaoticity, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(grid.kappa.ravel(), kappa, rtol=1e-12, atol=1e-15)


def _scaled_input(c, **base):
    """The model whose input is c I: means, standard deviation and covariances of I times c."""
    return dict(base, MI=c * base.get("MI", 0.0), SI=abs(c) * base.get("SI", 0.0),
                SmI=c * base.get("SmI", 0.0), SnI=c * base.get("SnI", 0.0))


def test_grid_input_strength_is_the_model_with_scaled_input():
    """Input independent of the loadings: the scaled model draws the same network with input c I."""
    base = dict(Mm=1.0, Mn=0.0, Sm=1.0, Sn=1.5, MI=0.5, SI=0.2)
    gs, overlaps, cs = [0.5, 2.0], [0.0, 2.5], [0.0, 0.5, 1.5, 3.0]
    grid = simulate_grid(dmf.RankOne(**base), g=gs, overlap=overlaps, N=200, T=10, transient=5, rng=6,
                         dtype=np.float64, input_strength=cs)
    assert grid.chaoticity.shape == (2, 2, 4) and grid.kappa.shape == (2, 2, 4, 1)
    np.testing.assert_array_equal(grid.input_strength, cs)
    reference = draw_network(dmf.RankOne(**base), 200, 6)
    for c in cs:
        scaled = draw_network(dmf.RankOne(**_scaled_input(c, **base)), 200, 6)
        # precondition: the factorisation of the scaled covariance keeps its column order here
        # (Var(I) c^2 stays the smallest eigenvalue), so m, n, chi, x0 are the same draws and the
        # input is c I up to the rounding of c (MI + z SI) vs c MI + z (c SI)
        for name in ("m", "n", "chi", "x0"):
            np.testing.assert_array_equal(getattr(scaled, name), getattr(reference, name))
        np.testing.assert_allclose(scaled.input, c * reference.input, rtol=0, atol=1e-14)
    # the realised overlap does not depend on the input: the same for every c
    np.testing.assert_array_equal(grid.realised_overlap, np.repeat(grid.realised_overlap[..., :1], 4, axis=2))
    for i, g in enumerate(gs):
        for j, overlap in enumerate(overlaps):
            for k, c in enumerate(cs):
                point = dmf.RankOne(**_scaled_input(c, **{**base, "Mn": overlap}))
                single = simulate(point, g=g, N=200, T=10, transient=5, rng=6)
                # same network and input up to 1e-16; GEMM vs GEMV summation order (1e-16 per
                # step), amplified at most e^{lambda T} (lambda < 0.5): 1e-8 as in the plain grid test
                assert grid.chaoticity[i, j, k] == pytest.approx(single.temporal_std(), rel=1e-8, abs=1e-10)
                assert grid.kappa[i, j, k, 0] == pytest.approx(single.kappa()[0], rel=1e-8, abs=1e-10)
    # the input moves the structure: kappa depends on c at the structured, stationary points
    assert np.ptp(grid.kappa[0, 1, :, 0]) > 0.05


def test_grid_input_strength_correlated_input_against_dense_euler():
    """Input correlated with m and n (a scaled model draws other vectors): a dense-J Euler loop
    on the grid's own drawn vectors, driven by c I."""
    base = dict(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0, MI=0.2, SI=0.8, SmI=0.3, SnI=0.5)
    net = dmf.RankOne(**base)
    N, dt, steps, first = 120, 0.1, 100, 50
    gs, overlaps, cs = [0.5, 1.8], [2.2], [-1.0, 0.5, 2.0]
    grid = simulate_grid(net, g=gs, overlap=overlaps, N=N, T=5, transient=5, rng=3, dtype=np.float64,
                         input_strength=cs, chunk=4)
    real = draw_network(net, N, 3)
    n = real.n + (overlaps[0] / base["Mm"] - base["Mn"])  # the grid's mean of n_1 for this overlap
    for i, g in enumerate(gs):
        J = g * real.chi + real.m @ n.T / N
        for k, c in enumerate(cs):
            x, xs, kappas = real.x0.copy(), [], []
            for step in range(steps + 1):
                r = np.tanh(x)
                if step >= first:
                    xs.append(x.copy())
                    kappas.append(n[:, 0] @ r / N)
                x = x + dt * (-x + J @ r + c * real.input)
            # float64 on both sides; summation orders differ (1e-16 per step), chaos at g = 1.8
            # amplifies by at most e^{T} over these 10 time units: 1e-9
            assert grid.chaoticity[i, 0, k] == pytest.approx(np.std(xs, axis=0).mean(), rel=1e-9, abs=1e-12)
            assert grid.kappa[i, 0, k, 0] == pytest.approx(np.mean(kappas), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("regime, method, dtype", [("current", "euler", np.float32), ("rate", "rk4", np.float64)])
def test_grid_input_strength_zero_is_the_model_without_input(regime, method, dtype):
    loadings = dict(Mm=1.0, Mn=0.0, Sm=1.0, Sn=1.5)
    with_input, without = dmf.RankOne(**loadings, MI=0.5, SI=0.2), dmf.RankOne(**loadings)
    a, b = draw_network(with_input, 150, 4), draw_network(without, 150, 4)
    # precondition: the same m, n, chi and x0 (Var(I) sorts first in both factorisations), I = 0 without
    assert np.array_equal(a.m, b.m) and np.array_equal(a.n, b.n) and np.array_equal(a.x0, b.x0)
    assert not np.any(b.input) and np.any(a.input)
    common = dict(g=[0.5, 2.0], overlap=[0.0, 2.5], N=150, T=10, transient=5, rng=4, regime=regime,
                  method=method, dtype=dtype)
    reference = simulate_grid(without, **common)
    # the input enters as 0 * I: exact zeros added to the same products, chunked alike (4 points)
    scalar = simulate_grid(with_input, **common, input_strength=0.0)
    axis = simulate_grid(with_input, **common, input_strength=[0.0])
    assert scalar.chaoticity.shape == (2, 2) and axis.chaoticity.shape == (2, 2, 1)
    for chaoticity, kappa in ((scalar.chaoticity, scalar.kappa), (axis.chaoticity[..., 0], axis.kappa[..., 0, :])):
        np.testing.assert_array_equal(chaoticity, reference.chaoticity)
        np.testing.assert_array_equal(kappa, reference.kappa)
    assert not np.allclose(simulate_grid(with_input, **common).kappa, reference.kappa)


def test_grid_input_strength_needs_an_input():
    for strength in ([0.5, 1.0], [1.0], 0.0, 2.0):
        with pytest.raises(ValueError, match="^input_strength: the model has no input to scale"):
            simulate_grid(NET, g=[0.5], overlap=[1.0], N=10, T=1.0, input_strength=strength)
    # the default factor 1 leaves a model without input as it is
    assert simulate_grid(NET, g=[0.5], overlap=[1.0], N=10, T=1.0, input_strength=1.0).chaoticity.shape == (1, 1)


def _assert_samples_equal(a, b):
    for name in ("chaoticity_samples", "kappa_samples", "realised_overlap_samples", "input_strength"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_grid_input_strength_executors_and_seeds():
    grid_args = dict(g=[0.5, 2.0], overlap=[0.0, 2.2], N=120, T=6, transient=4, chunk=5,
                     input_strength=[0.0, 1.0, 2.5])
    local = simulate_grid(DRIVEN, **grid_args, rng=[9, 4])
    assert local.chaoticity_samples.shape == (2, 2, 2, 3) and local.kappa_samples.shape == (2, 2, 2, 3, 1)
    assert local.realised_overlap_samples.shape == (2, 2, 2, 3) and local.shape == (2, 2, 3)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        _assert_samples_equal(local, simulate_grid(DRIVEN, **grid_args, rng=[9, 4], executor=pool))
    if sys.platform != "win32":
        ctx = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
            _assert_samples_equal(local, simulate_grid(DRIVEN, **grid_args, rng=[9, 4], executor=pool))
    # each seed's slice is its single-seed sweep; the elementwise threads do not change values
    for index, seed in enumerate((9, 4)):
        for threads in (1, 2):
            alone = simulate_grid(DRIVEN, **grid_args, rng=seed, threads=threads)
            np.testing.assert_array_equal(local.chaoticity_samples[index], alone.chaoticity)
            np.testing.assert_array_equal(local.kappa_samples[index], alone.kappa)
    assert "2 x 2 x 3 points" in repr(local)


def test_grid_input_strength_xarray_and_plot(monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plot() must not call plt.show"))
    grid = simulate_grid(DRIVEN, g=[0.5, 2.0], overlap=[0.0, 2.2], N=40, T=2, transient=1, input_strength=[0.5, 2.0])
    with pytest.raises(ValueError, match=r"^input_index: .*input-strength axis \(2 values\)"):
        grid.plot()
    with pytest.raises(ValueError, match="^input_index:"):
        grid.plot(input_index=2)
    fig = grid.plot(input_index=1)
    assert "input strength 2" in fig.axes[0].get_title()
    mesh = fig.axes[0].collections[0]
    np.testing.assert_array_equal(np.asarray(mesh.get_array()).ravel(), grid.chaoticity[..., 1].T.ravel())
    plt.close(fig)
    flat = simulate_grid(DRIVEN, g=[0.5], overlap=[1.0], N=20, T=1, input_strength=0.5)
    assert flat.chaoticity.shape == (1, 1) and flat.input_strength == 0.5 and "input_strength=0.5" in repr(flat)
    with pytest.raises(ValueError, match="^input_index: this grid has no input-strength axis"):
        flat.plot(input_index=0)
    xr = pytest.importorskip("xarray")
    ds = grid.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert ds["chaoticity"].dims == ("g", "overlap", "input_strength")
    assert ds["kappa_samples"].dims == ("seed", "g", "overlap", "input_strength", "k")
    assert ds["input_strength"].values.tolist() == [0.5, 2.0] and "input_strength" not in ds.attrs
    np.testing.assert_array_equal(ds["kappa"].sel(input_strength=2.0, k=1).values, grid.kappa[:, :, 1, 0])
    assert flat.to_xarray().attrs["input_strength"] == 0.5


# -- (12) chunks on threads, BLAS on one thread per chunk --------------------------------------------
@pytest.mark.parametrize(
    "options",
    [dict(), dict(regime="rate"), dict(regime="rate", record="r"), dict(method="heun"),
     dict(regime="rate", method="rk4", dtype=np.float64)],
)
def test_grid_threads_do_not_change_values(options):
    args = dict(GRID, input_strength=[0.5, 1.0], chunk=5, **options)
    one = simulate_grid(DRIVEN, **args, threads=1)
    assert one.meta["threads"] == 1 and one.meta["chunks"] == 3
    for threads in (2, 3, 8):
        # every chunk is the same computation on whichever thread runs it
        many = simulate_grid(DRIVEN, **args, threads=threads)
        assert many.meta["threads"] == min(threads, 3)  # never more threads than chunks
        _assert_samples_equal(one, many)


def test_grid_chunks_run_on_one_blas_thread(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    grid_module = importlib.import_module("dmftools.simulate._grid")
    blas = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    if not blas:
        pytest.skip("threadpoolctl finds no BLAS library to limit")
    before = [lib["num_threads"] for lib in blas]
    seen = []
    integrate_chunk = grid_module._integrate_chunk

    def spy(chunk):
        seen.append([lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"])
        return integrate_chunk(chunk)

    monkeypatch.setattr(grid_module, "_integrate_chunk", spy)
    grid = simulate_grid(DRIVEN, **GRID, chunk=1, threads=2)
    assert len(seen) == 6 and all(counts == [1] * len(blas) for counts in seen)
    assert grid.meta["blas_threads"] == 1 and grid.meta["threads"] == 2
    # the limit is lifted when the last concurrent chunk is done
    after = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert after == before


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method")
def test_grid_results_do_not_depend_on_where_chunks_run():
    """N = 400: GEMMs large enough for a multi-threaded BLAS to split them, which would change
    the summation order; one BLAS thread per chunk makes every placement give the same bits."""
    args = dict(g=[0.5, 2.5], overlap=[0.0, 1.0, 2.2, 3.0], N=400, T=4, transient=2, rng=3, chunk=4)
    net = dmf.RankOne(**STRUCTURED)
    local = simulate_grid(net, **args, threads=1)
    _assert_samples_equal(local, simulate_grid(net, **args, threads=2))
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        _assert_samples_equal(local, simulate_grid(net, **args, executor=pool))
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        _assert_samples_equal(local, simulate_grid(net, **args, executor=pool))
    # whatever BLAS thread count the caller has set (without the per-chunk limit this run,
    # on one BLAS thread, would differ from the default one on several)
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        _assert_samples_equal(local, simulate_grid(net, **args, threads=1))
    # and from a thread other than the main one (OpenBLAS ignores thread counts set there once
    # the main thread has set one, which the runs above did)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as caller:
        _assert_samples_equal(local, caller.submit(simulate_grid, net, **args, threads=2).result())


def test_default_chunk_plan():
    from dmftools.simulate._grid import MAX_CHUNK, MIN_CHUNKS, _chunk_bytes, default_chunk

    for N, points in [(1000, 2500), (1000, 100), (200, 7), (50, 1), (5000, 300), (100, 257)]:
        chunk = default_chunk(N, points, np.float32, "euler")
        chunks = -(-points // chunk)
        assert 1 <= chunk <= MAX_CHUNK
        # even split: the last chunk is at most one network per chunk short of the others
        assert points - (chunks - 1) * chunk >= chunk - chunks
        assert chunks >= min(MIN_CHUNKS, points // 8)
    # the budget: a 2500-point grid at N = 1000 within 2 GB, at the default 2 concurrent chunks
    chunk = default_chunk(1000, 2500, np.float32, "euler")
    assert 2 * _chunk_bytes(1000, 1, chunk, np.float32, "euler") < 2 * 2**30


def test_grid_diverging_points_are_reported():
    # phi(x) = x: the current model is linear, x' = (J - 1) x + I, which grows like
    # e^{(g - 1) t} for g > 1 (bulk radius g) and overflows float32 within T = 200 at g = 3;
    # at g = 0.5 with overlap 0 every eigenvalue of J - 1 is below -0.4: a finite fixed point
    net = dmf.RankOne(Mm=1.0, Mn=0.0, Sm=1.0, Sn=1.0, MI=0.5, phi=sp.Symbol("x"))
    with pytest.warns(RuntimeWarning, match=r"^simulate_grid: 2 of 4 networks diverged .* e\.g\. g = 3, overlap = 0 "):
        grid = simulate_grid(net, g=[0.5, 3.0], overlap=[0.0, 0.5], N=100, T=200, dt=0.5, rng=1)
    np.testing.assert_array_equal(grid.diverged[0], [[False, False], [True, True]])
    assert np.all(np.isnan(grid.chaoticity[1])) and np.all(np.isnan(grid.kappa[1]))
    assert np.all(np.isfinite(grid.chaoticity[0])) and np.all(np.isfinite(grid.kappa[0]))
