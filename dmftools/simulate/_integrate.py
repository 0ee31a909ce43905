"""Time stepping for B networks at once, without ever forming ``J`` densely.

The state has shape (N, B): column ``b`` is a network with random strength ``g[b]`` and,
optionally, the mean of ``n_1`` shifted by ``dn[b]`` (how sweeps vary the overlap). One
evaluation of the vector field costs one GEMM ``chi @ phi(X)`` (current) or ``chi @ R``
(rate), plus O(N B R) for the low-rank part ``m (n^T phi(X)) / N``.

With the external drive ``e(t) = s(t) I + B u(t)`` (seed 000's input through ``B``):

current:  tau dx/dt = -x + g chi phi(x) + m kappa + e(t),      kappa = n^T phi(x) / N
rate:     tau dr/dt = -r + phi(y),   y = g chi r + m kappa + e(t),   kappa = n^T r / N
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ._inputs import DriveSchedule

__all__ = ["Dynamics", "integrate", "METHODS", "REGIMES", "simulate"]

METHODS = ("euler", "heun", "rk4")
REGIMES = ("current", "rate")
RECORDS = {"current": ("x",), "rate": ("r", "y")}
#: What each recorded variable is, as stated in results.
RECORD_MEANING = {
    "x": "x, the current model's state (tau dx/dt = -x + J phi(x) + e)",
    "r": "r, the rate model's state (tau dr/dt = -r + phi(y))",
    "y": "y = J r + e, the rate model's input current (obeys the current-model equation plus tau de/dt)",
}


@dataclass
class Dynamics:
    """The vector field of B networks sharing ``chi``, ``m``, ``n`` and ``I``.

    Parameters
    ----------
    chi : ndarray (N, N)
    g : ndarray (1, B)
    m, n : ndarray (N, R)
    phi : callable
    regime : {"current", "rate"}
    dn : ndarray (B,) or None
        Shift of the mean of ``n_1`` per column.
    tau : float
        Time constant: the field is divided by ``tau``.
    """

    chi: np.ndarray
    g: np.ndarray
    m: np.ndarray
    n: np.ndarray
    phi: Callable
    regime: str
    dn: Optional[np.ndarray] = None
    tau: float = 1.0

    def kappa(self, rates: np.ndarray) -> np.ndarray:
        """``n_k^T rates / N`` per column, shape (R, B)."""
        N = rates.shape[0]
        kappa = self.n.T @ rates
        kappa /= N
        if self.dn is not None:
            kappa[0] += self.dn * rates.mean(axis=0)
        return kappa

    def field(self, state: np.ndarray, external: np.ndarray):
        """Return ``(d state/dt, kappa, aux, rates)`` for the external drive column ``external``.

        ``aux`` is ``y = J r + external`` (rate) or ``x`` (current); ``rates`` is ``phi(x)``
        (current) or ``r`` (rate), the vector a readout ``W r`` reads.
        """
        if self.regime == "current":
            rates = self.phi(state)
            kappa = self.kappa(rates)
            drive = self.chi @ rates
            drive *= self.g
            drive += self.m @ kappa
            drive += external
            drive -= state
            if self.tau != 1.0:
                drive /= self.tau
            return drive, kappa, state, rates
        kappa = self.kappa(state)
        y = self.chi @ state
        y *= self.g
        y += self.m @ kappa
        y += external
        deriv = self.phi(y)
        deriv -= state
        if self.tau != 1.0:
            deriv /= self.tau
        return deriv, kappa, y, state


def integrate(dyn: Dynamics, state: np.ndarray, steps: int, dt: float, method: str,
              drive: Callable[[int, float], np.ndarray], on_state: Callable) -> np.ndarray:
    """Advance ``state`` by ``steps`` steps of size ``dt``.

    ``drive(k, c)`` is the external drive column at ``t = (k + c) dt``.
    ``on_state(k, state, kappa, aux, rates)`` is called at every time point ``k = 0..steps``
    with the state at ``t = k dt`` (before stepping); the arrays must not be kept without a
    copy. Returns the final state.
    """
    state = state.copy()
    half = 0.5 * dt
    for k in range(steps + 1):
        k1, kappa, aux, rates = dyn.field(state, drive(k, 0.0))
        on_state(k, state, kappa, aux, rates)
        if k == steps:
            break
        if method == "euler":
            k1 *= dt
            state += k1
        elif method == "heun":
            k2 = dyn.field(state + dt * k1, drive(k, 1.0))[0]
            k1 += k2
            k1 *= half
            state += k1
        else:  # rk4
            k2 = dyn.field(state + half * k1, drive(k, 0.5))[0]
            k3 = dyn.field(state + half * k2, drive(k, 0.5))[0]
            k4 = dyn.field(state + dt * k3, drive(k, 1.0))[0]
            k2 += k3
            k2 *= 2.0
            k1 += k2
            k1 += k4
            k1 *= dt / 6.0
            state += k1
    return state


# -- validation shared by simulate and simulate_grid --------------------------------------
def _check_real(name, value, *, positive=False, nonnegative=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name}: must be > 0, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{name}: must be >= 0, got {value}")
    return value


def check_run(T, dt, transient, regime, method, record, dtype):
    """Validate the time grid and the names; return ``(T, dt, transient, steps, record, dtype)``."""
    T = _check_real("T", T, positive=True)
    dt = _check_real("dt", dt, positive=True)
    transient = _check_real("transient", transient, nonnegative=True)
    if not isinstance(regime, str) or regime not in REGIMES:
        raise ValueError(f"regime: expected one of {REGIMES}, got {regime!r}")
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    allowed = RECORDS[regime]
    if record is None:
        record = "x" if regime == "current" else "r"
    if record not in allowed:
        raise ValueError(f"record: the {regime} model records one of {allowed}, got {record!r}")
    # the run lasts transient + T; statistics use the last T (seed 004: "measured after a
    # transient phase was over for 100 seconds")
    total = transient + T
    steps = int(round(total / dt))
    if steps < 1 or abs(steps * dt - total) > 1e-6 * dt:
        raise ValueError(f"dt: transient + T = {total} must be a whole number (>= 1) of steps dt={dt}")
    if steps - int(np.ceil(transient / dt - 1e-9)) < 1:
        raise ValueError(f"T: must span at least one step dt={dt} after the transient, got T={T}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: not a numpy dtype: {dtype!r}") from None
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype}")
    return T, dt, transient, steps, record, dtype


def _check_matrix(name, value, N, *, rows_are_units):
    """A finite real array with N rows (``B``: (N,) or (N, P)) or N columns (``W``: (N,) or (Q, N))."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a real array, got {type(value).__name__}") from None
    expected = f"({N},) or ({N}, P)" if rows_are_units else f"({N},) or (Q, {N})"
    units_axis = 0 if rows_are_units else -1
    if arr.ndim not in (1, 2) or arr.shape[units_axis] != N or arr.size == 0:
        raise ValueError(f"{name}: expected shape {expected} for N = {N} units, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: all entries must be finite")
    return arr


def simulate(net, g: float, N: int, T: float, dt: float = 0.1, regime: str = "current", rng=0,
             transient: float = 0.0, method: str = "euler", dtype=np.float64, record: Optional[str] = None,
             input=None, x0=None, tau: float = 1.0, B=None, u=None, W=None):
    r"""Simulate one finite network drawn from ``net`` (or one per seed).

    With the external drive :math:`e(t) = s(t) I + B u(t)` (the model's input vector ``I``
    times a multiplier, plus seed 000's input ``u`` through a matrix ``B``):

    - current: :math:`\tau \dot x = -x + J\phi(x) + e(t)`;
    - rate: :math:`\tau \dot r = -r + \phi(J r + e(t))`,

    with :math:`J = g\chi + \frac1N \sum_k m_k n_k^T`, :math:`\chi_{ij} \sim N(0, 1/N)` and
    per-unit loadings jointly Gaussian (``net.means``, ``net.cov``). ``J`` is never formed:
    each step computes ``chi @ phi(x)`` and ``m (n^T phi(x)) / N``. The Euler step is seed
    000's residual update :math:`x \leftarrow x + (dt/\tau)(-x + J r + B u)`. A readout
    :math:`z = W r` (:math:`r = \phi(x)` in the current model, the state in the rate model)
    is recorded when ``W`` is given.

    Parameters
    ----------
    net : GaussianLowRank
        The model (e.g. :func:`dmftools.RankOne`).
    g : float
        Random strength, >= 0.
    N : int
        Number of units, >= 1.
    T : float
        Duration recorded after the transient, > 0; the run lasts ``transient + T``, a whole
        number of steps ``dt`` (seed 004: 100 time units after a 100-unit transient).
    dt : float, default 0.1
    regime : {"current", "rate"}
    rng : int, numpy.random.Generator, None, or a sequence of these
        One seed: normalised once, recorded in the result. Draw order: loadings, ``chi``,
        initial condition (see :func:`dmftools.simulate.draw_network`). A sequence of
        distinct seeds (e.g. ``[0, 1, 2]`` or ``range(5)``) runs one network per seed and
        returns a :class:`~dmftools.simulate.SimulationEnsemble`, whose statistics carry the
        mean over seeds and its standard error.
    transient : float, default 0
        Time simulated before the recorded window, >= 0; statistics use
        ``transient <= t <= transient + T``.
    method : {"euler", "heun", "rk4"}
        Explicit Euler (order 1), Heun (2) or classical Runge-Kutta (4).
    dtype : float32 or float64
    record : {"x"} (current) or {"r", "y"} (rate), optional
        Variable stored in the trajectory; ``y = J r + e`` is the rate model's input current.
        Default ``"x"`` / ``"r"``. The result states it (``record``, ``record_meaning``).
    input : array or callable, optional
        Multiplier ``s(t)`` of the input vector ``I`` (default 1): an array with one value per
        step (``steps = (transient + T)/dt`` or ``steps + 1`` values, held over each step) or a callable
        ``t -> scalar`` evaluated at every stage (e.g. :func:`~dmftools.simulate.step_input`).
    x0 : array of shape (N,), optional
        Initial ``x`` (current) or ``r`` (rate); default the standard normal draw of the network.
    tau : float, default 1
        Time constant, > 0 (seed 000's form); the mean-field theory uses ``tau = 1``.
    B : array of shape (N,) or (N, P), optional
        Input matrix of the seed-000 form; requires ``u``.
    u : array or callable, optional
        The input ``u(t)``: an array of shape (steps, P) or (steps + 1, P) sampled on the time
        grid (held over each step; shape (steps,) or (steps + 1,) when ``B`` is 1-d), or a
        callable ``t -> array of shape (P,)`` (scalar for a 1-d ``B``) evaluated at every stage.
    W : array of shape (N,) or (Q, N), optional
        Readout; ``z(t) = W r(t)`` is stored at every time point in ``readout``.

    Returns
    -------
    Simulation or SimulationEnsemble
        A :class:`Simulation` for one seed, a :class:`SimulationEnsemble` for a sequence.

    Examples
    --------
    >>> import numpy as np
    >>> import dmftools as dmf
    >>> from dmftools.simulate import simulate, step_input
    >>> net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    >>> sim = simulate(net, g=0.5, N=300, T=30, transient=20, rng=4)
    >>> sim.trajectory.shape
    (501, 300)
    >>> bool(abs(sim.kappa()[0]) > 0.5), sim.seed
    (True, 4)

    Seed 000's form: time constant, a step input through ``B`` and a readout ``z = W r``:

    >>> b, w = np.ones(300), np.full((2, 300), 1 / 300)
    >>> sim = simulate(net, g=0.5, N=300, T=20, tau=2.0, B=b, u=step_input(10.0, 0.5), W=w, rng=4)
    >>> sim.readout.shape, sim.tau
    ((201, 2), 2.0)

    Several seeds: statistics with standard errors over seeds.

    >>> runs = simulate(net, g=0.5, N=300, T=30, transient=20, rng=[0, 1, 2])
    >>> est = runs.kappa(absolute=True)
    >>> est.samples.shape, bool(0 < est.sem[0] < est.mean[0])
    ((3, 1), True)
    """
    from ..model import GaussianLowRank
    from ._network import _check_size, compile_phi, draw_network, normalise_seeds
    from ._statistics import Simulation, SimulationEnsemble

    if not isinstance(net, GaussianLowRank):
        raise TypeError(f"net: expected a GaussianLowRank (e.g. from RankOne), got {type(net).__name__}")
    g = _check_real("g", g, nonnegative=True)
    N = _check_size(N)
    T, dt, transient, steps, record, dtype = check_run(T, dt, transient, regime, method, record, dtype)
    tau = _check_real("tau", tau, positive=True)
    if x0 is not None:
        x0 = np.asarray(x0, dtype=float)
        if x0.shape != (N,):
            raise ValueError(f"x0: expected shape ({N},), got {x0.shape}")
        if not np.all(np.isfinite(x0)):
            raise ValueError("x0: all entries must be finite")
    if B is None and u is not None:
        raise ValueError("B: u is given but no input matrix B (shape (N,) or (N, P))")
    if B is not None:
        B = _check_matrix("B", B, N, rows_are_units=True)
        if u is None:
            raise ValueError("u: B is given but no input u(t) (an array on the time grid or a callable)")
    if W is not None:
        W = _check_matrix("W", W, N, rows_are_units=False)
    # validates input and u (shapes, finiteness, callables at t = 0) before anything is drawn
    DriveSchedule(np.zeros(N), steps, dt, dtype, input=input, B=B, u=u)
    seeds = normalise_seeds(rng)
    phi = compile_phi(net.phi.expr)

    def one(seed):
        real = draw_network(net, N, seed)
        drive = DriveSchedule(real.input, steps, dt, dtype, input=input, B=B, u=u)
        start = real.x0 if x0 is None else x0
        dyn = Dynamics(
            chi=real.chi.astype(dtype), g=np.full((1, 1), g, dtype=dtype), m=real.m.astype(dtype),
            n=real.n.astype(dtype), phi=phi, regime=regime, tau=tau,
        )
        trajectory = np.empty((steps + 1, N), dtype=dtype)
        kappas = np.empty((steps + 1, net.rank), dtype=dtype)
        readout = None if W is None else np.empty((steps + 1,) + W.shape[:-1])
        use_aux = record == "y"

        def on_state(k, state, kappa, aux, rates):
            trajectory[k] = (aux if use_aux else state)[:, 0]
            kappas[k] = kappa[:, 0]
            if readout is not None:
                readout[k] = W @ rates[:, 0]

        integrate(dyn, start.astype(dtype)[:, None], steps, dt, method, drive, on_state)
        if not np.all(np.isfinite(trajectory[-1])):
            raise FloatingPointError("the simulation diverged (non-finite state); reduce dt or check phi")
        return Simulation(
            times=np.arange(steps + 1) * dt, trajectory=trajectory, kappa_trajectory=kappas, network=real,
            g=g, N=N, T=T, dt=dt, transient=transient, regime=regime, method=method, record=record,
            seed=real.seed, overlap=real.overlap, nominal_overlap=net.overlap, tau=tau, readout=readout,
        )

    if seeds is None:
        return one(rng)
    return SimulationEnsemble(tuple(one(seed) for seed in seeds))
