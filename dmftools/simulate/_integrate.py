"""Time stepping for B networks at once, without ever forming ``J`` densely.

The state has shape (N, B): column ``b`` is a network with random strength ``g[b]`` and,
optionally, the mean of ``n_1`` shifted by ``dn[b]`` (how sweeps vary the overlap). One
evaluation of the vector field costs one GEMM ``chi @ phi(X)`` (current) or ``chi @ R``
(rate), plus O(N B R) for the low-rank part ``m (n^T phi(X)) / N``.

current:  dx/dt = -x + g chi phi(x) + m kappa + s(t) I,     kappa = n^T phi(x) / N
rate:     dr/dt = -r + phi(y),   y = g chi r + m kappa + s(t) I,   kappa = n^T r / N
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

__all__ = ["Dynamics", "integrate", "METHODS", "REGIMES", "input_schedule"]

METHODS = ("euler", "heun", "rk4")
REGIMES = ("current", "rate")
RECORDS = {"current": ("x",), "rate": ("r", "y")}


@dataclass
class Dynamics:
    """The vector field of B networks sharing ``chi``, ``m``, ``n`` and ``I``.

    Parameters
    ----------
    chi : ndarray (N, N)
    g : ndarray (1, B)
    m, n : ndarray (N, R)
    input : ndarray (N, 1)
    phi : callable
    regime : {"current", "rate"}
    dn : ndarray (B,) or None
        Shift of the mean of ``n_1`` per column.
    """

    chi: np.ndarray
    g: np.ndarray
    m: np.ndarray
    n: np.ndarray
    input: np.ndarray
    phi: Callable
    regime: str
    dn: Optional[np.ndarray] = None

    def kappa(self, rates: np.ndarray) -> np.ndarray:
        """``n_k^T rates / N`` per column, shape (R, B)."""
        N = rates.shape[0]
        kappa = self.n.T @ rates
        kappa /= N
        if self.dn is not None:
            kappa[0] += self.dn * rates.mean(axis=0)
        return kappa

    def field(self, state: np.ndarray, s: float):
        """Return ``(d state/dt, kappa, aux)``; ``aux`` is ``y`` (rate) or ``x`` (current)."""
        if self.regime == "current":
            rates = self.phi(state)
            kappa = self.kappa(rates)
            drive = self.chi @ rates
            drive *= self.g
            drive += self.m @ kappa
            drive += s * self.input
            drive -= state
            return drive, kappa, state
        kappa = self.kappa(state)
        y = self.chi @ state
        y *= self.g
        y += self.m @ kappa
        y += s * self.input
        deriv = self.phi(y)
        deriv -= state
        return deriv, kappa, y


def input_schedule(input, steps: int, dt: float) -> Callable[[int, float], float]:
    """``s(k, frac)``: the multiplier of ``I`` at ``t = (k + frac) dt``.

    ``None`` -> 1; an array of shape (steps,) is held constant over step ``k`` (the final
    state uses its last entry); a callable ``t -> scalar`` is evaluated at every stage.
    """
    if input is None:
        return lambda k, frac: 1.0
    if callable(input):
        def schedule(k, frac):
            value = np.asarray(input((k + frac) * dt))
            if value.ndim != 0:
                raise ValueError(f"input: the callable must return a scalar multiplier, got shape {value.shape}")
            return float(value)
        return schedule
    values = np.asarray(input, dtype=float)
    if values.shape != (steps,):
        raise ValueError(
            f"input: expected an array of shape ({steps},) (one multiplier per step, steps = T/dt) "
            f"or a callable t -> scalar, got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError("input: all multipliers must be finite")
    return lambda k, frac: float(values[min(k, steps - 1)])


def integrate(dyn: Dynamics, state: np.ndarray, steps: int, dt: float, method: str,
              schedule: Callable[[int, float], float], on_state: Callable) -> np.ndarray:
    """Advance ``state`` by ``steps`` steps of size ``dt``.

    ``on_state(k, state, kappa, aux)`` is called at every time point ``k = 0..steps`` with
    the state at ``t = k dt`` (before stepping); the arrays must not be kept without a copy.
    Returns the final state.
    """
    state = state.copy()
    half = 0.5 * dt
    for k in range(steps + 1):
        k1, kappa, aux = dyn.field(state, schedule(k, 0.0))
        on_state(k, state, kappa, aux)
        if k == steps:
            break
        if method == "euler":
            k1 *= dt
            state += k1
        elif method == "heun":
            k2 = dyn.field(state + dt * k1, schedule(k, 1.0))[0]
            k1 += k2
            k1 *= half
            state += k1
        else:  # rk4
            k2 = dyn.field(state + half * k1, schedule(k, 0.5))[0]
            k3 = dyn.field(state + half * k2, schedule(k, 0.5))[0]
            k4 = dyn.field(state + dt * k3, schedule(k, 1.0))[0]
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
    if transient > T:
        raise ValueError(f"transient: must be <= T, got transient={transient} > T={T}")
    if not isinstance(regime, str) or regime not in REGIMES:
        raise ValueError(f"regime: expected one of {REGIMES}, got {regime!r}")
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    allowed = RECORDS[regime]
    if record is None:
        record = "x" if regime == "current" else "r"
    if record not in allowed:
        raise ValueError(f"record: the {regime} model records one of {allowed}, got {record!r}")
    steps = int(round(T / dt))
    if steps < 1 or abs(steps * dt - T) > 1e-6 * dt:
        raise ValueError(f"dt: T={T} must be a whole number (>= 1) of steps dt={dt}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: not a numpy dtype: {dtype!r}") from None
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype}")
    return T, dt, transient, steps, record, dtype


def simulate(net, g: float, N: int, T: float, dt: float = 0.1, regime: str = "current", rng=0,
             transient: float = 0.0, method: str = "euler", dtype=np.float64, record: Optional[str] = None,
             input=None, x0=None):
    r"""Simulate one finite network drawn from ``net``.

    current: :math:`\dot x = -x + J\phi(x) + s(t) I`; rate: :math:`\dot r = -r + \phi(J r + s(t) I)`,
    with :math:`J = g\chi + \frac1N \sum_k m_k n_k^T`, :math:`\chi_{ij} \sim N(0, 1/N)` and
    per-unit loadings jointly Gaussian (``net.means``, ``net.cov``). ``J`` is never formed:
    each step computes ``chi @ phi(x)`` and ``m (n^T phi(x)) / N``.

    Parameters
    ----------
    net : GaussianLowRank
        The model (e.g. :func:`dmftools.RankOne`).
    g : float
        Random strength, >= 0.
    N : int
        Number of units, >= 1.
    T : float
        Duration, > 0 and a whole number of steps ``dt``.
    dt : float, default 0.1
    regime : {"current", "rate"}
    rng : int, numpy.random.Generator or None, default 0
        Normalised once; the seed is recorded in the result. Draw order: loadings, ``chi``,
        initial condition (see :func:`dmftools.simulate.draw_network`).
    transient : float, default 0
        Statistics use ``t >= transient``; 0 <= transient <= T.
    method : {"euler", "heun", "rk4"}
        Explicit Euler (order 1), Heun (2) or classical Runge-Kutta (4).
    dtype : float32 or float64
    record : {"x"} (current) or {"r", "y"} (rate), optional
        Variable stored in the trajectory; ``y = J r + s I`` is the rate model's input current.
        Default ``"x"`` / ``"r"``.
    input : array of shape (steps,) or callable, optional
        Multiplier ``s(t)`` of the input vector ``I`` (default 1): an array holds one value per
        step, a callable ``t -> scalar`` is evaluated at every stage.
    x0 : array of shape (N,), optional
        Initial ``x`` (current) or ``r`` (rate); default the standard normal draw of the network.

    Returns
    -------
    Simulation

    Examples
    --------
    >>> import dmftools as dmf
    >>> from dmftools.simulate import simulate
    >>> net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    >>> sim = simulate(net, g=0.5, N=300, T=30, transient=20, rng=4)
    >>> sim.trajectory.shape
    (301, 300)
    >>> bool(abs(sim.kappa()[0]) > 0.5), sim.seed
    (True, 4)
    """
    from ..model import GaussianLowRank
    from ._network import _check_size, compile_phi, draw_network
    from ._statistics import Simulation

    if not isinstance(net, GaussianLowRank):
        raise TypeError(f"net: expected a GaussianLowRank (e.g. from RankOne), got {type(net).__name__}")
    g = _check_real("g", g, nonnegative=True)
    N = _check_size(N)
    T, dt, transient, steps, record, dtype = check_run(T, dt, transient, regime, method, record, dtype)
    schedule = input_schedule(input, steps, dt)
    if x0 is not None:
        x0 = np.asarray(x0, dtype=float)
        if x0.shape != (N,):
            raise ValueError(f"x0: expected shape ({N},), got {x0.shape}")
        if not np.all(np.isfinite(x0)):
            raise ValueError("x0: all entries must be finite")

    real = draw_network(net, N, rng)
    start = real.x0 if x0 is None else x0
    dyn = Dynamics(
        chi=real.chi.astype(dtype), g=np.full((1, 1), g, dtype=dtype), m=real.m.astype(dtype),
        n=real.n.astype(dtype), input=real.input.astype(dtype)[:, None],
        phi=compile_phi(net.phi.expr), regime=regime,
    )
    trajectory = np.empty((steps + 1, N), dtype=dtype)
    kappas = np.empty((steps + 1, net.rank), dtype=dtype)
    use_aux = record == "y"

    def on_state(k, state, kappa, aux):
        trajectory[k] = (aux if use_aux else state)[:, 0]
        kappas[k] = kappa[:, 0]

    integrate(dyn, start.astype(dtype)[:, None], steps, dt, method, schedule, on_state)
    if not np.all(np.isfinite(trajectory[-1])):
        raise FloatingPointError("the simulation diverged (non-finite state); reduce dt or check phi")
    return Simulation(
        times=np.arange(steps + 1) * dt, trajectory=trajectory, kappa_trajectory=kappas, network=real,
        g=g, N=N, T=T, dt=dt, transient=transient, regime=regime, method=method, record=record,
        seed=real.seed, overlap=real.overlap, nominal_overlap=net.overlap,
    )
