"""Batched (g, overlap[, input strength]) sweeps: many networks per GEMM, chunks sent to any executor.

Every grid point shares one realisation: the same ``chi``, the same standard-normal loading
directions, the same input vector ``I`` and the same initial condition. The overlap
``m_1^T n_1 / N`` is varied by setting the mean of ``n_1``:
``M_{n_1} = (overlap - Cov(m_1, n_1)) / M_{m_1}`` (for unit rank, ``overlap = Mm Mn + Smn``),
so point ``(g, o)`` is exactly the network that ``simulate(net with that M_{n_1}, g, N,
rng=seed)`` draws. The input strength ``c`` multiplies the input vector: point ``(g, o, c)``
is driven by ``c I`` (``simulate(..., input=c)`` on the same network).

All randomness is drawn once in the caller; a chunk carries its data and parameters (and the
SymPy ``phi``, compiled in the worker), so results do not depend on where chunks run.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import numpy as np
import sympy as sp
from threadpoolctl import ThreadpoolController, threadpool_limits

from .._progress import progress_iter
from ..model import GaussianLowRank
from ._integrate import Dynamics, check_run, integrate
from ._network import _check_size, compile_phi, compile_phi_into, draw_network, normalise_seeds
from ._statistics import GridSimulation

__all__ = ["simulate_grid"]

#: Memory budget for one chunk's working arrays (states, stages, accumulators).
CHUNK_BUDGET_BYTES = 512 * 2**20
#: Memory budget for the chunks integrated at the same time in-process (``threads``).
WORKING_BUDGET_BYTES = 2**30
#: Upper bound on the networks per chunk (GEMMs are already efficient well below this).
MAX_CHUNK = 256
#: A grid is split into at least this many chunks (when each gets >= MIN_CHUNK_WIDTH networks),
#: so that small grids, too, keep several cores busy. A constant, not the machine's core
#: count: the chunking (which sets the GEMMs' summation order) must not depend on the machine.
MIN_CHUNKS = 4
MIN_CHUNK_WIDTH = 8
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
    #: Per network, the factor ``c`` of the input vector (``c I``); ``None``: all 1.
    input_scale: Optional[np.ndarray] = None


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None


#: Thread-local thread-count setters (``int set(int)``, returning the previous value) by threadpoolctl API.
_LOCAL_SETTERS = {"openblas": "openblas_set_num_threads_local", "mkl": "mkl_set_num_threads_local"}


def _blas_libraries():
    """threadpoolctl's controllers of the BLAS libraries loaded in this process."""
    return ThreadpoolController().select(user_api="blas").lib_controllers


def _thread_local_setters(libraries):
    """For each BLAS library its thread-local thread-count setter, or None if one lacks it.

    OpenBLAS >= 0.3.27 and MKL limit the calling thread only, which is what a chunk running
    next to other chunks needs; older OpenBLAS builds, BLIS and others have only a global setting.
    """
    setters = []
    for lib in libraries:
        name = _LOCAL_SETTERS.get(lib.internal_api)
        setter = getattr(lib.dynlib, name, None) if name else None
        if setter is None:
            return None
        setter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
        setters.append(setter)
    return setters


@contextmanager
def _one_blas_thread():
    """Run the block with BLAS on one thread in this thread; yields the BLAS libraries' controllers.

    Every chunk is integrated with single-threaded BLAS wherever it runs (in-process on
    ``threads`` threads, on worker processes, on dask workers), so a chunk's GEMMs always take
    the same code path and the results depend on the seed and the chunking only (OpenBLAS's
    summation order changes with its thread count). Where every loaded BLAS has a
    thread-local setting (OpenBLAS >= 0.3.27, MKL), only the calling thread is limited.
    Otherwise the limit is process-wide (threadpoolctl), reference-counted across the threads
    that share it, and lifted when the last one leaves; :func:`simulate_grid` then also enters
    it from the calling thread, because OpenBLAS ignores a global thread count set from
    another thread once the main thread has set one.
    """
    libraries = _blas_libraries()
    setters = _thread_local_setters(libraries)
    if setters is not None:
        previous = [setter(1) for setter in setters]
        try:
            yield libraries
        finally:
            for setter, value in zip(setters, previous):
                setter(value)
        return
    global _blas_users, _blas_limiter
    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield libraries
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class _Statistics:
    """Per-network time statistics accumulated on the fly.

    Sum and sum of squares of ``x - shift`` (shift: the first recorded state, which avoids
    cancellation in the variance), accumulated in the state's dtype over blocks of
    :data:`STATS_BLOCK` time points, then added to float64 totals; ``kappa`` summed in
    float64.
    """

    def __init__(self, N: int, B: int, R: int, dtype, first_recorded: int, steps: int):
        self.first, self.steps = first_recorded, steps
        self.shift = np.zeros((N, B), dtype=dtype)
        self.block_sum = np.zeros((N, B), dtype=dtype)
        self.block_sq = np.zeros((N, B), dtype=dtype)
        self.diff = np.empty((N, B), dtype=dtype)
        self.total = np.zeros((N, B))
        self.total_sq = np.zeros((N, B))
        self.kappa_sum = np.zeros((R, B))
        self.count = 0

    def add(self, k: int, values: np.ndarray, kappa: np.ndarray) -> None:
        """Accumulate time point ``k``: ``values`` (N, B), the recorded variable, and ``kappa`` (R, B).

        Time points before ``first_recorded`` (the transient) are skipped.
        """
        if k < self.first:
            return
        self.count += 1
        np.add(self.kappa_sum, kappa, out=self.kappa_sum)
        if k == self.first:
            self.shift[...] = values
        diff = self.diff
        np.subtract(values, self.shift, out=diff)
        np.add(self.block_sum, diff, out=self.block_sum)
        np.multiply(diff, diff, out=diff)
        np.add(self.block_sq, diff, out=self.block_sq)
        if self.count % STATS_BLOCK == 0 or k == self.steps:
            np.add(self.total, self.block_sum, out=self.total)
            np.add(self.total_sq, self.block_sq, out=self.total_sq)
            self.block_sum.fill(0)
            self.block_sq.fill(0)

    def result(self, chunk: _Chunk) -> dict:
        count = self.count
        mean = self.total / count
        variance = np.clip(self.total_sq / count - mean * mean, 0.0, None)
        chaoticity = np.sqrt(variance).mean(axis=0)
        finite = np.all(np.isfinite(self.total_sq), axis=0) & np.all(np.isfinite(self.kappa_sum), axis=0)
        kappa = np.where(finite[None, :], self.kappa_sum / count, np.nan)
        return {"seed_index": chunk.seed_index, "start": chunk.start,
                "chaoticity": np.where(finite, chaoticity, np.nan), "kappa": kappa.T}


def _run_chunk(chunk: _Chunk) -> dict:
    """Integrate one chunk of networks, BLAS on one thread; return its statistics (float64)."""
    # a diverging network overflows; it is reported once, by simulate_grid, not per operation
    with _one_blas_thread() as libraries, np.errstate(over="ignore", invalid="ignore"):
        # the most threads any BLAS would use here (num_threads is read live; 0: none found)
        blas_threads = max((lib.num_threads for lib in libraries), default=0)
        out = _integrate_chunk(chunk)
    out["blas_threads"] = blas_threads
    return out


def _integrate_chunk(chunk: _Chunk) -> dict:
    dtype = chunk.chi.dtype
    B = chunk.g.shape[0]
    N, R = chunk.m.shape
    scales = np.ones(B) if chunk.input_scale is None else np.asarray(chunk.input_scale, dtype=float)
    stats = _Statistics(N, B, R, dtype, chunk.first_recorded, chunk.steps)
    state = np.repeat(chunk.x0[:, None], B, axis=1)
    if chunk.method == "euler":
        _euler_fused(chunk, compile_phi_into(chunk.phi), state, stats, scales)
        return stats.result(chunk)
    dyn = Dynamics(
        chi=chunk.chi, g=chunk.g.astype(dtype)[None, :], m=chunk.m, n=chunk.n,
        phi=compile_phi(chunk.phi), regime=chunk.regime, dn=chunk.dn.astype(dtype),
    )
    if chunk.input_scale is None:
        external = chunk.input[:, None]
    else:
        external = (chunk.input[:, None] * scales[None, :]).astype(dtype)
    use_aux = chunk.record == "y"

    def on_state(k, state, kappa, aux, rates):
        stats.add(k, aux if use_aux else state, kappa)

    integrate(dyn, state, chunk.steps, chunk.dt, chunk.method, lambda k, frac: external, on_state)
    return stats.result(chunk)


def _euler_fused(chunk: _Chunk, phi_into, state: np.ndarray, stats: _Statistics, scales: np.ndarray) -> None:
    """Euler steps of a chunk with all of ``J r + c I`` in one GEMM (``state`` is advanced in place).

    ``A = [chi | m | I]`` (N x (N+R+1)) multiplies ``[g r; kappa; c]`` (columns with their own
    ``g``, overlap and input factor ``c``), so one GEMM gives ``J r + c I`` with the low-rank
    part and the input included. Current model: ``r = phi(x)``, the right-hand side is
    pre-scaled by ``dt`` and ``x <- (1 - dt) x + dt (J r + c I)``; rate model:
    ``y = J r + c I`` (recorded) and ``r <- (1 - dt) r + dt phi(y)``. ``kappa`` and the
    column means come from one (R+1) x N product. The Euler step of :class:`Dynamics` up to
    rounding.
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
    # current: the GEMM gives dt (J phi(x) + c I) directly; rate: y = J r + c I (recorded, fed to phi)
    scale = dt if current else 1.0
    rhs = np.empty((N + R + 1, B), dtype=dtype)
    rhs[N + R] = scale * scales
    g_scaled = (chunk.g * scale).astype(dtype)[None, :]
    dn = chunk.dn.astype(dtype)
    decay = dtype.type(1.0 - dt)
    out = np.empty((N, B), dtype=dtype)
    steps = chunk.steps

    if current:
        # x_k from x_{k-1} and the product of step k-1; statistics of x_k; phi(x_k) and g dt phi(x_k)
        rates = np.empty((N, B), dtype=dtype)
        for k in range(steps + 1):
            if k > 0:
                state *= decay
                state += out
            phi_into(state, rates)
            moments = reduce @ rates
            kappa = moments[:R]
            kappa[0] += dn * moments[R]
            stats.add(k, state, kappa)
            if k == steps:
                break
            np.multiply(rates, g_scaled, out=rhs[:N])
            np.multiply(kappa, scale, out=rhs[N : N + R])
            np.matmul(A, rhs, out=out)
        return

    # statistics of y_k (or r_k); r_{k+1} = (1 - dt) r_k + dt phi(y_k); g r_{k+1} for the next product
    recorded = out if chunk.record == "y" else state
    scratch = np.empty((N, B), dtype=dtype)
    for k in range(steps + 1):
        moments = reduce @ state
        kappa = moments[:R]
        kappa[0] += dn * moments[R]
        np.multiply(state, g_scaled, out=rhs[:N])
        np.multiply(kappa, scale, out=rhs[N : N + R])
        np.matmul(A, rhs, out=out)
        stats.add(k, recorded, kappa)
        if k == steps:
            break
        phi_into(out, scratch)
        scratch *= dt
        state *= decay
        state += scratch


def _network_bytes(N: int, dtype, method: str) -> int:
    """Working set per network of a chunk: state and stages, statistics, phi's temporaries."""
    stages = {"euler": 4, "heun": 7, "rk4": 10}[method]  # (N, B) arrays of the integrator
    # + shift, block sums, difference (dtype); totals and the final moments (float64); phi's temporaries
    return N * ((stages + 4 + 2) * np.dtype(dtype).itemsize + 5 * 8)


def _chunk_bytes(N: int, R: int, width: int, dtype, method: str) -> int:
    """Working set of one chunk of ``width`` networks, the fused Euler step's ``[chi | m | I]`` included."""
    shared = N * (N + R + 1) * np.dtype(dtype).itemsize if method == "euler" else 0
    return width * _network_bytes(N, dtype, method) + shared


def default_chunk(N: int, points: int, dtype, method: str) -> int:
    """Networks per chunk, the same on every machine.

    At most :data:`MAX_CHUNK` and within :data:`CHUNK_BUDGET_BYTES`; the points are then
    spread evenly over the chunks, at least :data:`MIN_CHUNKS` of them when each still gets
    :data:`MIN_CHUNK_WIDTH` networks.

    Examples
    --------
    >>> import numpy as np
    >>> default_chunk(1000, 2500, np.float32, "euler")   # 10 chunks of 250
    250
    >>> default_chunk(1000, 100, np.float32, "euler")    # 4 chunks, so small grids use several cores
    25
    >>> default_chunk(1000, 10, np.float32, "euler")
    10
    """
    cap = int(max(1, min(MAX_CHUNK, CHUNK_BUDGET_BYTES // _network_bytes(N, dtype, method))))
    chunks = max(-(-points // cap), min(MIN_CHUNKS, points // MIN_CHUNK_WIDTH), 1)
    return int(-(-points // chunks))


def _concurrent_chunks(threads: Optional[int], tasks: int, chunk_bytes: int) -> int:
    """Chunks integrated at once in-process: ``threads`` (default: usable cores), within the memory budget."""
    if threads is None:
        threads = usable_cores()
    return int(max(1, min(threads, tasks, WORKING_BUDGET_BYTES // max(chunk_bytes, 1))))


def simulate_grid(net: GaussianLowRank, g, overlap, N: int, T: float, transient: float = 0.0,
                  dt: float = 0.1, regime: str = "current", rng=0, dtype=np.float32,
                  chunk: Optional[int] = None, executor=None, progress: Optional[bool] = None,
                  method: str = "euler", record: Optional[str] = None, *, input_strength=1.0,
                  threads: Optional[int] = None) -> GridSimulation:
    """Simulate a (g, overlap) or (g, overlap, input strength) grid of networks sharing one realisation.

    Each step of a chunk of B networks costs one GEMM ``chi @ phi(X)`` with ``X`` of shape
    (N, B) plus O(N B R) low-rank work; ``J`` is never formed. Grid points differ only in
    ``g``, the mean of ``n_1`` and the factor of the input vector, so every point of a seed
    shares ``chi``, the loading directions, the input vector ``I`` and the initial condition.

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
        Networks per chunk (default: :func:`default_chunk`, up to 256 and at least 4 chunks
        when the grid is large enough; it depends only on N, the number of points, dtype and
        method). Results depend on the chunking through the GEMMs' floating-point summation
        order only.
    executor : object with ``.map(fn, iterable)``, optional
        E.g. a ``concurrent.futures`` executor or a ``dask.distributed.Client`` (futures it
        returns are resolved with ``.result()``); chunks are sent, not points. Default:
        in-process, ``threads`` chunks at a time. Every chunk runs with BLAS limited to one
        thread (``threadpoolctl``), wherever it runs, so the same seed and chunk give
        bit-identical results in-process with any ``threads``, on a process pool and on dask
        workers (same BLAS library and CPU).
    progress : bool, optional
        Progress bar over chunks (tqdm); default only when stderr is a terminal.
    record : {"x"} or {"r", "y"}, optional
        Variable whose temporal std is the chaoticity; default ``"x"`` (current) and
        ``"y" = J r + c I`` (rate, the variable that obeys the current-model equation).
    input_strength : float or array_like of shape (K,), default 1.0
        Factor ``c`` of the model's input vector: grid point ``(g, o, c)`` is driven by
        ``c I``, with ``I`` the realisation's input vector, so the mean and standard deviation
        of the input (``MI``, ``SI``) and its covariances with the loadings (``SmI``,
        ``SnI``) scale together by ``c`` (variance by ``c^2``). A scalar keeps the grid
        (G, O); an array adds a third axis: results of shape (G, O, K). Any value other than
        the scalar 1 needs a model with an input (``MI``, ``SI`` not both 0).
    threads : int, optional
        In-process only: chunks integrated at once on a thread pool (numpy's GEMMs and ufuncs
        release the GIL), each on one core. Default: the usable cores, fewer when the
        concurrently running chunks would exceed 1 GiB. One thread per chunk keeps the
        elementwise work of a step (``phi``, the Euler update, the statistics) running on
        every core next to the GEMMs, which a single chunk with multi-threaded BLAS does not.
        Results do not depend on it.

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

    Input strength as a third axis (the input here is correlated with ``n``):

    >>> driven = dmf.RankOne(Mm=1.0, Mn=0.0, Sm=1.0, Sn=1.0, SnI=0.5, SI=1.0)
    >>> grid = simulate_grid(driven, g=[0.5], overlap=[0.0, 2.0], N=200, T=20, transient=20,
    ...                      input_strength=[0.0, 1.0, 2.0])
    >>> grid.chaoticity.shape, grid.kappa.shape, grid.input_strength.tolist()
    ((1, 2, 3), (1, 2, 3, 1), [0.0, 1.0, 2.0])
    """
    if not isinstance(net, GaussianLowRank):
        raise TypeError(f"net: expected a GaussianLowRank (e.g. from RankOne), got {type(net).__name__}")
    N = _check_size(N)
    if record is None and regime == "rate":
        record = "y"
    T, dt, transient, steps, record, dtype = check_run(T, dt, transient, regime, method, record, dtype)
    g = _grid_axis("g", g, nonnegative=True)
    overlap = _grid_axis("overlap", overlap)
    strengths, input_axis = _input_strength(input_strength, net)
    R = net.rank
    mean_m1 = net.means[0]
    if mean_m1 == 0:
        raise ValueError("overlap: varied by scaling the mean of n_1, which needs a non-zero mean of m_1 "
                         "(Mm); got Mm = 0")
    mean_n = (overlap - net.cov[0, R]) / mean_m1
    K = strengths.size
    points = g.size * overlap.size * K
    if chunk is None:
        chunk = default_chunk(N, points, dtype, method)
    elif isinstance(chunk, (bool, np.bool_)) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk: expected a positive integer number of networks per chunk, got {chunk!r}")
    if executor is not None and not callable(getattr(executor, "map", None)):
        raise TypeError(f"executor: expected an object with a .map(fn, iterable) method, got {type(executor).__name__}")
    if threads is not None and (isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer))
                                or threads < 1):
        raise ValueError(f"threads: expected None or a positive integer number of threads, got {threads!r}")

    seeds = normalise_seeds(rng)
    single = seeds is None
    # points in C order over (g, overlap, input strength)
    g_points = np.repeat(g, overlap.size * K)
    dn_points = np.tile(np.repeat(mean_n - net.means[R], K), g.size)
    c_points = np.tile(strengths, g.size * overlap.size)
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
            _Chunk(seed_index=index, start=s, g=g_points[s : s + chunk], dn=dn_points[s : s + chunk],
                   input_scale=c_points[s : s + chunk], **shared)
            for s in range(0, points, int(chunk))
        ]
    S = len(recorded_seeds)
    pool = None
    if executor is not None:
        mapper = executor.map
        concurrent = None
    else:
        concurrent = _concurrent_chunks(threads, len(tasks), _chunk_bytes(N, R, int(chunk), dtype, method))
        if concurrent > 1:
            pool = ThreadPoolExecutor(concurrent, thread_name_prefix="dmftools-chunk")
            mapper = pool.map
        else:
            mapper = map
    chaoticity = np.empty((S, points))
    kappa = np.empty((S, points, R))
    blas_threads = 0
    try:
        with _one_blas_thread():  # from the calling thread: see _one_blas_thread
            for out in progress_iter(mapper(_run_chunk, tasks), len(tasks), "simulate_grid", "chunk", progress):
                if not isinstance(out, dict) and callable(getattr(out, "result", None)):
                    out = out.result()  # dask.distributed Client.map returns futures
                i, s = out["seed_index"], out["start"]
                stop = s + out["chaoticity"].shape[0]
                chaoticity[i, s:stop] = out["chaoticity"]
                kappa[i, s:stop] = out["kappa"]
                blas_threads = max(blas_threads, out["blas_threads"])
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    diverged = np.isnan(chaoticity)
    if np.any(diverged):
        seed_index, point = (int(v[0]) for v in np.nonzero(diverged))
        warnings.warn(
            f"simulate_grid: {int(diverged.sum())} of {diverged.size} networks diverged (non-finite state), "
            f"e.g. g = {g_points[point]:g}, overlap = {np.repeat(overlap, K)[point % (overlap.size * K)]:g} "
            f"(seed {recorded_seeds[seed_index]}); their statistics are NaN (see GridSimulation.diverged). "
            "Reduce dt or use a bounded phi.",
            RuntimeWarning, stacklevel=2,
        )
    shape = (g.size, overlap.size) + ((K,) if input_axis else ())
    return GridSimulation(
        g=g, overlap=overlap, seeds=tuple(recorded_seeds), chaoticity_samples=chaoticity.reshape((S,) + shape),
        kappa_samples=kappa.reshape((S,) + shape + (R,)),
        realised_overlap_samples=np.stack(realised).reshape((S,) + shape), mean_n=mean_n, N=N, T=T, dt=dt,
        transient=transient, regime=regime, method=method, record=record, dtype=dtype.name,
        meta={"chunk": int(chunk), "chunks": len(tasks), "chunks_per_seed": len(tasks) // S,
              "scaled": "mean of n_1", "threads": concurrent,
              "blas_threads": blas_threads},
        input_strength=strengths.copy() if input_axis else float(strengths[0]),
    )


def _input_strength(value, net: GaussianLowRank) -> tuple[np.ndarray, bool]:
    """Validate ``input_strength``: ``(factors, whether the grid gets an input-strength axis)``."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"input_strength: expected a real number or a 1-d array of them, got {value!r}")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"input_strength: expected a real number or a 1-d array of them, "
                        f"got {type(value).__name__}") from None
    if arr.ndim > 1 or arr.size == 0:
        raise ValueError(f"input_strength: expected a number or a non-empty 1-d array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"input_strength: all values must be finite, got {arr.tolist()}")
    axis = arr.ndim == 1
    I = 2 * net.rank  # index of the input in means and cov
    if (axis or arr != 1.0) and net.means[I] == 0 and not np.any(net.cov[I]):
        raise ValueError(
            "input_strength: the model has no input to scale (MI = 0 and the input's variance and "
            "covariances are 0); give the model an input (e.g. RankOne(..., MI=..., SI=...)) or leave "
            "input_strength at 1"
        )
    return np.atleast_1d(arr), axis


def _grid_axis(name, values, nonnegative=False):
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-d array of values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: all values must be finite")
    if nonnegative and np.any(arr < 0):
        raise ValueError(f"{name}: all values must be >= 0, got min {arr.min()}")
    return arr
