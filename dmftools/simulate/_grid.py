"""Batched (g, overlap) sweeps: many networks per GEMM, chunks sent to any executor.

Every grid point shares one realisation: the same ``chi``, the same standard-normal loading
directions and the same initial condition. The overlap ``m_1^T n_1 / N`` is varied by setting
the mean of ``n_1``: ``M_{n_1} = (overlap - Cov(m_1, n_1)) / M_{m_1}`` (for unit rank,
``overlap = Mm Mn + Smn``), so point ``(g, o)`` is exactly the network that
``simulate(net with that M_{n_1}, g, N, rng=seed)`` draws.

All randomness is drawn once in the caller; a chunk carries its data and parameters (and the
SymPy ``phi``, compiled in the worker), so results do not depend on where chunks run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import sympy as sp

from .._progress import progress_iter
from ..model import GaussianLowRank
from ._integrate import Dynamics, check_run, integrate
from ._network import _check_size, compile_phi, draw_network, normalise_seeds
from ._statistics import GridSimulation

__all__ = ["simulate_grid"]

#: Memory budget for the per-chunk working arrays (states, stages, accumulators).
CHUNK_BUDGET_BYTES = 512 * 2**20
#: Upper bound on the networks per chunk (GEMMs are already efficient well below this).
MAX_CHUNK = 256
#: Time points summed in the state's dtype before the statistics go to float64 totals: in
#: float32 a block sum of 16 terms carries ~16 ulp (1e-6) relative error, below the float32
#: state's own round-off after a few chaotic steps; in float64 it is immaterial.
STATS_BLOCK = 16


@dataclass(frozen=True)
class _Chunk:
    """Everything a worker needs for one chunk of grid points (picklable)."""

    seed_index: int
    start: int
    chi: np.ndarray
    m: np.ndarray
    n: np.ndarray
    input: np.ndarray
    x0: np.ndarray
    g: np.ndarray
    dn: np.ndarray
    phi: sp.Expr
    regime: str
    method: str
    record: str
    dt: float
    steps: int
    first_recorded: int


def _run_chunk(chunk: _Chunk) -> dict:
    """Integrate one chunk of networks; return its statistics (float64)."""
    dtype = chunk.chi.dtype
    B = chunk.g.shape[0]
    dyn = Dynamics(
        chi=chunk.chi, g=chunk.g.astype(dtype)[None, :], m=chunk.m, n=chunk.n,
        phi=compile_phi(chunk.phi), regime=chunk.regime, dn=chunk.dn.astype(dtype),
    )
    external = chunk.input[:, None]
    N, R = chunk.m.shape
    # sum and sum of squares of x - shift (shift: the first recorded state, which avoids
    # cancellation in the variance): accumulated in the state's dtype over blocks of
    # STATS_BLOCK steps (cheap passes), then added to float64 totals
    shift = np.zeros((N, B), dtype=dtype)
    diff = np.empty((N, B), dtype=dtype)
    block_sum = np.zeros((N, B), dtype=dtype)
    block_sq = np.zeros((N, B), dtype=dtype)
    total = np.zeros((N, B))
    total_sq = np.zeros((N, B))
    kappa_sum = np.zeros((R, B))
    count = 0
    use_aux = chunk.record == "y"

    def on_state(k, state, kappa, aux, rates):
        nonlocal count
        if k < chunk.first_recorded:
            return
        values = aux if use_aux else state
        if k == chunk.first_recorded:
            shift[...] = values
        np.subtract(values, shift, out=diff)
        np.add(block_sum, diff, out=block_sum)
        np.multiply(diff, diff, out=diff)
        np.add(block_sq, diff, out=block_sq)
        np.add(kappa_sum, kappa, out=kappa_sum)
        count += 1
        if count % STATS_BLOCK == 0 or k == chunk.steps:
            np.add(total, block_sum, out=total)
            np.add(total_sq, block_sq, out=total_sq)
            block_sum.fill(0)
            block_sq.fill(0)

    state = np.repeat(chunk.x0[:, None], B, axis=1)
    if chunk.method == "euler":
        _euler_fused(chunk, dyn.phi, state, on_state)
    else:
        integrate(dyn, state, chunk.steps, chunk.dt, chunk.method, lambda k, frac: external, on_state)
    mean = total / count
    variance = np.clip(total_sq / count - mean * mean, 0.0, None)
    chaoticity = np.sqrt(variance).mean(axis=0)
    finite = np.all(np.isfinite(total_sq), axis=0)
    return {"seed_index": chunk.seed_index, "start": chunk.start, "chaoticity": np.where(finite, chaoticity, np.nan),
            "kappa": (kappa_sum / count).T}


def _euler_fused(chunk: _Chunk, phi, state: np.ndarray, on_state) -> None:
    """Euler steps of a chunk with all of ``J r + I`` in one GEMM (``state`` is advanced in place).

    ``A = [chi | m | I]`` (N x (N+R+1)) multiplies ``[g r; kappa; 1]`` (columns with their own
    ``g`` and overlap), so one GEMM gives ``J r + I`` with the low-rank part and the input
    included. Current model: ``r = phi(x)``, the right-hand side is pre-scaled by ``dt`` and
    ``x <- (1 - dt) x + dt (J r + I)``; rate model: ``y = J r + I`` (recorded) and
    ``r <- (1 - dt) r + dt phi(y)``. ``kappa`` and the column means come from one (R+1) x N
    product. The Euler step of :class:`Dynamics` up to rounding, with about half of its
    elementwise passes over the (N, B) state.
    """
    dtype = state.dtype
    N, R = chunk.m.shape
    B = state.shape[1]
    dt = chunk.dt
    A = np.empty((N, N + R + 1), dtype=dtype)
    A[:, :N] = chunk.chi
    A[:, N : N + R] = chunk.m
    A[:, N + R] = chunk.input
    reduce = np.empty((R + 1, N), dtype=dtype)  # rows n_k / N and 1 / N: kappa and mean(r)
    reduce[:R] = chunk.n.T
    reduce[R] = 1.0
    reduce /= N
    current = chunk.regime == "current"
    # current: the GEMM gives dt (J phi(x) + I) directly; rate: y = J r + I (recorded, fed to phi)
    scale = dt if current else 1.0
    rhs = np.empty((N + R + 1, B), dtype=dtype)
    rhs[N + R] = scale
    g_scaled = (chunk.g * scale).astype(dtype)[None, :]
    dn = chunk.dn.astype(dtype)
    decay = dtype.type(1.0 - dt)
    out = np.empty((N, B), dtype=dtype)
    for k in range(chunk.steps + 1):
        rates = phi(state) if current else state
        moments = reduce @ rates
        kappa = moments[:R]
        kappa[0] += dn * moments[R]
        if current:
            on_state(k, state, kappa, state, rates)
            if k == chunk.steps:
                break
        np.multiply(rates, g_scaled, out=rhs[:N])
        np.multiply(kappa, scale, out=rhs[N : N + R])
        np.matmul(A, rhs, out=out)
        if current:
            state *= decay
            state += out
            continue
        on_state(k, state, kappa, out, state)
        if k == chunk.steps:
            break
        target = phi(out)
        target *= dt
        state *= decay
        state += target


def default_chunk(N: int, points: int, dtype, method: str) -> int:
    """Networks per chunk: at most :data:`MAX_CHUNK`, working set under :data:`CHUNK_BUDGET_BYTES`."""
    stages = {"euler": 4, "heun": 7, "rk4": 10}[method]
    per_network = N * (stages * np.dtype(dtype).itemsize + 5 * 8)
    return int(max(1, min(points, MAX_CHUNK, CHUNK_BUDGET_BYTES // per_network)))


def simulate_grid(net: GaussianLowRank, g, overlap, N: int, T: float, transient: float = 0.0,
                  dt: float = 0.1, regime: str = "current", rng=0, dtype=np.float32,
                  chunk: Optional[int] = None, executor=None, progress: Optional[bool] = None,
                  method: str = "euler", record: Optional[str] = None) -> GridSimulation:
    """Simulate a (g, overlap) grid of networks sharing one realisation, B at a time.

    Each step of a chunk of B networks costs one GEMM ``chi @ phi(X)`` with ``X`` of shape
    (N, B) plus O(N B R) low-rank work; ``J`` is never formed.

    Parameters
    ----------
    net : GaussianLowRank
        The model; its mean of ``n_1`` is replaced per overlap (``M_{m_1}`` must be non-zero).
    g : array_like, shape (G,)
        Random strengths, >= 0.
    overlap : array_like, shape (O,)
        Nominal structure strengths ``m_1^T n_1 / N``, set through
        ``M_{n_1} = (overlap - Cov(m_1, n_1)) / M_{m_1}``.
    N, T, transient, dt, regime, method
        As in :func:`dmftools.simulate.simulate`. Statistics use ``t >= transient``.
    rng : int, numpy.random.Generator, None, or a sequence of these
        One seed: one realisation shared by all grid points. A sequence of distinct seeds
        (e.g. ``[0, 1, 2]``): one realisation per seed, all chunks of all seeds sent to the
        executor together; the result holds per-seed values, their means over seeds and the
        standard errors (``chaoticity_sem``, ``kappa_sem``, ...).
    dtype : float32 or float64, default float32
    chunk : int, optional
        Networks per chunk (default: up to 256, within a 512 MiB working set). Results
        depend on the chunking only through floating-point summation order.
    executor : object with ``.map(fn, iterable)``, optional
        E.g. a ``concurrent.futures`` executor or a ``dask.distributed.Client`` (futures it
        returns are resolved with ``.result()``); chunks are sent, not points. Default:
        in-process ``map``. Same seed and chunk -> same results. In-process, BLAS uses every
        core for the GEMMs but ``phi`` and the statistics run on one; a
        ``ProcessPoolExecutor`` whose workers start with ``OPENBLAS_NUM_THREADS=1`` (and
        ``chunk`` small enough to give each worker several chunks) runs those on every core
        too, and is much less sensitive to other load on the machine.
    progress : bool, optional
        Progress bar over chunks (tqdm); default only when stderr is a terminal.
    record : {"x"} or {"r", "y"}, optional
        Variable whose temporal std is the chaoticity; default ``"x"`` (current) and
        ``"y" = J r + I`` (rate, the variable that obeys the current-model equation).

    Returns
    -------
    GridSimulation

    Examples
    --------
    >>> import dmftools as dmf
    >>> from dmftools.simulate import simulate_grid
    >>> net = dmf.RankOne(Mm=1.0, Mn=0.0, Sm=1.0, Sn=1.0)
    >>> grid = simulate_grid(net, g=[0.5, 2.0], overlap=[0.0, 2.0], N=200, T=40, transient=20)
    >>> grid.chaoticity.shape, grid.kappa.shape
    ((2, 2), (2, 2, 1))
    >>> bool(grid.chaoticity[0, 0] < 0.01 < grid.chaoticity[1, 0])
    True

    Three seeds: means over seeds and standard errors.

    >>> grid = simulate_grid(net, g=[0.5, 2.0], overlap=[0.0, 2.0], N=200, T=40, transient=20, rng=[0, 1, 2])
    >>> grid.seeds, grid.chaoticity_samples.shape, grid.chaoticity_sem.shape
    ((0, 1, 2), (3, 2, 2), (2, 2))
    """
    if not isinstance(net, GaussianLowRank):
        raise TypeError(f"net: expected a GaussianLowRank (e.g. from RankOne), got {type(net).__name__}")
    N = _check_size(N)
    if record is None and regime == "rate":
        record = "y"
    T, dt, transient, steps, record, dtype = check_run(T, dt, transient, regime, method, record, dtype)
    g = _grid_axis("g", g, nonnegative=True)
    overlap = _grid_axis("overlap", overlap)
    R = net.rank
    mean_m1 = net.means[0]
    if mean_m1 == 0:
        raise ValueError("overlap: varied by scaling the mean of n_1, which needs a non-zero mean of m_1 "
                         "(Mm); got Mm = 0")
    mean_n = (overlap - net.cov[0, R]) / mean_m1
    points = g.size * overlap.size
    if chunk is None:
        chunk = default_chunk(N, points, dtype, method)
    elif isinstance(chunk, (bool, np.bool_)) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk: expected a positive integer number of networks per chunk, got {chunk!r}")
    if executor is not None and not callable(getattr(executor, "map", None)):
        raise TypeError(f"executor: expected an object with a .map(fn, iterable) method, got {type(executor).__name__}")

    seeds = normalise_seeds(rng)
    single = seeds is None
    g_points = np.repeat(g, overlap.size)
    dn_points = np.tile(mean_n - net.means[R], g.size)
    first_recorded = int(math.ceil(transient / dt - 1e-9))
    common = dict(phi=net.phi.expr, regime=regime, method=method, record=record, dt=dt, steps=steps,
                  first_recorded=first_recorded)
    tasks, realised, recorded_seeds = [], [], []
    for index, seed in enumerate([rng] if single else seeds):
        real = draw_network(net, N, seed)
        recorded_seeds.append(real.seed)
        shared = dict(chi=real.chi.astype(dtype), m=real.m.astype(dtype), n=real.n.astype(dtype),
                      input=real.input.astype(dtype), x0=real.x0.astype(dtype), **common)
        m1, n1 = real.m[:, 0], real.n[:, 0]
        realised.append(m1 @ n1 / N + dn_points * m1.mean())
        del real  # one float64 chi at a time
        tasks += [
            _Chunk(seed_index=index, start=s, g=g_points[s : s + chunk], dn=dn_points[s : s + chunk], **shared)
            for s in range(0, points, int(chunk))
        ]
    S = len(recorded_seeds)
    mapper = map if executor is None else executor.map
    chaoticity = np.empty((S, points))
    kappa = np.empty((S, points, R))
    for out in progress_iter(mapper(_run_chunk, tasks), len(tasks), "simulate_grid", "chunk", progress):
        if not isinstance(out, dict) and callable(getattr(out, "result", None)):
            out = out.result()  # dask.distributed Client.map returns futures
        i, s = out["seed_index"], out["start"]
        stop = s + out["chaoticity"].shape[0]
        chaoticity[i, s:stop] = out["chaoticity"]
        kappa[i, s:stop] = out["kappa"]

    shape = (g.size, overlap.size)
    return GridSimulation(
        g=g, overlap=overlap, seeds=tuple(recorded_seeds), chaoticity_samples=chaoticity.reshape((S,) + shape),
        kappa_samples=kappa.reshape((S,) + shape + (R,)),
        realised_overlap_samples=np.stack(realised).reshape((S,) + shape), mean_n=mean_n, N=N, T=T, dt=dt,
        transient=transient, regime=regime, method=method, record=record, dtype=dtype.name,
        meta={"chunk": int(chunk), "chunks": len(tasks), "chunks_per_seed": len(tasks) // S,
              "scaled": "mean of n_1"},
    )


def _grid_axis(name, values, nonnegative=False):
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-d array of values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: all values must be finite")
    if nonnegative and np.any(arr < 0):
        raise ValueError(f"{name}: all values must be >= 0, got min {arr.min()}")
    return arr
