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

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import numpy as np
import sympy as sp

from .._progress import progress_iter
from ..model import GaussianLowRank
from ._integrate import Dynamics, check_run, integrate
from ._network import _check_size, compile_phi, compile_phi_into, draw_network, normalise_seeds
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
#: Fewest elements of an (N, B) array per thread worth a hand-off to another thread (smaller
#: chunks run their elementwise work on one thread).
MIN_THREAD_ELEMENTS = 2**15


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
    #: Threads for the elementwise work (the caller's included); results do not depend on it.
    threads: int = 1


class _RowBlocks:
    """Run elementwise work on row blocks of (N, B) arrays, one block per thread.

    ``run(fn)`` calls ``fn(rows, scratch)`` once per block (``rows`` a slice of contiguous
    rows, ``scratch`` a work array of the block's shape), the first block on the calling
    thread and the others on a small pool that lives as long as this object; numpy's ufuncs
    release the GIL, so the blocks run in parallel. One block per thread keeps the number of
    ufunc calls per step (each a possible GIL hand-off between the threads) at its minimum.
    An elementwise operation gives the same values whatever the blocks, so neither the
    number of threads nor which thread ran a block shows in results.
    """

    def __init__(self, N: int, B: int, dtype, threads: int):
        threads = max(1, min(int(threads), (N * B) // MIN_THREAD_ELEMENTS, N))
        edges = [round(i * N / threads) for i in range(threads + 1)]
        self.blocks = [slice(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]
        self.threads = threads
        self.scratch = [np.empty((rows.stop - rows.start, B), dtype=dtype) for rows in self.blocks]
        self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="dmftools-rows") if threads > 1 else None

    def run(self, fn) -> None:
        if self._pool is None:
            fn(self.blocks[0], self.scratch[0])
            return
        futures = [self._pool.submit(fn, rows, scratch) for rows, scratch in zip(self.blocks[1:], self.scratch[1:])]
        try:
            fn(self.blocks[0], self.scratch[0])
        finally:
            for future in futures:  # every block is done before the arrays are touched again
                future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Statistics:
    """Per-network time statistics accumulated on the fly, row block by row block.

    Sum and sum of squares of ``x - shift`` (shift: the first recorded state, which avoids
    cancellation in the variance), accumulated in the state's dtype over blocks of
    :data:`STATS_BLOCK` time points, then added to float64 totals; ``kappa`` summed in
    float64. Every element is accumulated by the same operations in the same order whatever
    the row blocks.
    """

    def __init__(self, N: int, B: int, R: int, dtype, first_recorded: int, steps: int):
        self.first, self.steps = first_recorded, steps
        self.shift = np.zeros((N, B), dtype=dtype)
        self.block_sum = np.zeros((N, B), dtype=dtype)
        self.block_sq = np.zeros((N, B), dtype=dtype)
        self.total = np.zeros((N, B))
        self.total_sq = np.zeros((N, B))
        self.kappa_sum = np.zeros((R, B))
        self.count = 0
        self._flush = self._set_shift = False

    def begin(self, k: int) -> bool:
        """Start time point ``k`` (main thread, before its blocks); whether ``k`` is recorded."""
        if k < self.first:
            return False
        self.count += 1
        self._set_shift = k == self.first
        self._flush = self.count % STATS_BLOCK == 0 or k == self.steps
        return True

    def add_kappa(self, kappa: np.ndarray) -> None:
        """Add ``kappa`` (R, B) of a recorded time point."""
        np.add(self.kappa_sum, kappa, out=self.kappa_sum)

    def block(self, values: np.ndarray, rows: slice, diff: np.ndarray) -> None:
        """Accumulate ``values[rows]`` (the recorded variable at the current time point)."""
        shift, block_sum, block_sq = self.shift[rows], self.block_sum[rows], self.block_sq[rows]
        if self._set_shift:
            shift[...] = values
        np.subtract(values, shift, out=diff)
        np.add(block_sum, diff, out=block_sum)
        np.multiply(diff, diff, out=diff)
        np.add(block_sq, diff, out=block_sq)
        if self._flush:
            total, total_sq = self.total[rows], self.total_sq[rows]
            np.add(total, block_sum, out=total)
            np.add(total_sq, block_sq, out=total_sq)
            block_sum.fill(0)
            block_sq.fill(0)

    def result(self, chunk: _Chunk) -> dict:
        count = self.count
        mean = self.total / count
        variance = np.clip(self.total_sq / count - mean * mean, 0.0, None)
        chaoticity = np.sqrt(variance).mean(axis=0)
        finite = np.all(np.isfinite(self.total_sq), axis=0)
        return {"seed_index": chunk.seed_index, "start": chunk.start,
                "chaoticity": np.where(finite, chaoticity, np.nan), "kappa": (self.kappa_sum / count).T}


def _run_chunk(chunk: _Chunk) -> dict:
    """Integrate one chunk of networks; return its statistics (float64)."""
    dtype = chunk.chi.dtype
    B = chunk.g.shape[0]
    N, R = chunk.m.shape
    scales = np.ones(B) if chunk.input_scale is None else np.asarray(chunk.input_scale, dtype=float)
    stats = _Statistics(N, B, R, dtype, chunk.first_recorded, chunk.steps)
    state = np.repeat(chunk.x0[:, None], B, axis=1)
    with _RowBlocks(N, B, dtype, chunk.threads) as blocks:
        if chunk.method == "euler":
            _euler_fused(chunk, compile_phi_into(chunk.phi), state, stats, blocks, scales)
        else:
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
                if stats.begin(k):
                    stats.add_kappa(kappa)
                    values = aux if use_aux else state
                    blocks.run(lambda rows, diff: stats.block(values[rows], rows, diff))

            integrate(dyn, state, chunk.steps, chunk.dt, chunk.method, lambda k, frac: external, on_state)
    return stats.result(chunk)


def _euler_fused(chunk: _Chunk, phi_into, state: np.ndarray, stats: _Statistics, blocks: _RowBlocks,
                 scales: np.ndarray) -> None:
    """Euler steps of a chunk with all of ``J r + c I`` in one GEMM (``state`` is advanced in place).

    ``A = [chi | m | I]`` (N x (N+R+1)) multiplies ``[g r; kappa; c]`` (columns with their own
    ``g``, overlap and input factor ``c``), so one GEMM gives ``J r + c I`` with the low-rank
    part and the input included. Current model: ``r = phi(x)``, the right-hand side is
    pre-scaled by ``dt`` and ``x <- (1 - dt) x + dt (J r + c I)``; rate model:
    ``y = J r + c I`` (recorded) and ``r <- (1 - dt) r + dt phi(y)``. ``kappa`` and the
    column means come from one (R+1) x N product. The Euler step of :class:`Dynamics` up to
    rounding.

    Per step the main thread does the two products (BLAS, every core); everything
    elementwise (the Euler update, the statistics, ``phi``, the scaling of the right-hand
    side) is one pass over row blocks on ``blocks``' threads, between the products.
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
    use_aux = chunk.record == "y"

    if current:
        rates = np.empty((N, B), dtype=dtype)
        k, recorded = 0, False

        def step_block(rows, scratch):
            # x_k from x_{k-1} and the product of step k-1; statistics of x_k; phi(x_k) and g dt phi(x_k)
            x, r = state[rows], rates[rows]
            if k > 0:
                x *= decay
                x += out[rows]
            if recorded:
                stats.block(x, rows, scratch)
            phi_into(x, r)
            if k < steps:
                np.multiply(r, g_scaled, out=rhs[rows])

        for k in range(steps + 1):
            recorded = stats.begin(k)
            blocks.run(step_block)
            moments = reduce @ rates
            kappa = moments[:R]
            kappa[0] += dn * moments[R]
            if recorded:
                stats.add_kappa(kappa)
            if k == steps:
                break
            np.multiply(kappa, scale, out=rhs[N : N + R])
            np.matmul(A, rhs, out=out)
        return

    k, recording = 0, False

    def rate_block(rows, scratch):
        # statistics of y_k (or r_k); r_{k+1} = (1 - dt) r_k + dt phi(y_k); g r_{k+1} for the next product
        if recording:
            stats.block(out[rows] if use_aux else state[rows], rows, scratch)
        if k == steps:
            return
        phi_into(out[rows], scratch)
        scratch *= dt
        r = state[rows]
        r *= decay
        r += scratch
        np.multiply(r, g_scaled, out=rhs[rows])

    np.multiply(state, g_scaled, out=rhs[:N])
    for k in range(steps + 1):
        moments = reduce @ state
        kappa = moments[:R]
        kappa[0] += dn * moments[R]
        np.multiply(kappa, scale, out=rhs[N : N + R])
        np.matmul(A, rhs, out=out)
        recording = stats.begin(k)
        if recording:
            stats.add_kappa(kappa)
        blocks.run(rate_block)


def default_chunk(N: int, points: int, dtype, method: str) -> int:
    """Networks per chunk: at most :data:`MAX_CHUNK`, working set under :data:`CHUNK_BUDGET_BYTES`."""
    stages = {"euler": 4, "heun": 7, "rk4": 10}[method]
    per_network = N * (stages * np.dtype(dtype).itemsize + 5 * 8)
    return int(max(1, min(points, MAX_CHUNK, CHUNK_BUDGET_BYTES // per_network)))


def simulate_grid(net: GaussianLowRank, g, overlap, N: int, T: float, transient: float = 0.0,
                  dt: float = 0.1, regime: str = "current", rng=0, dtype=np.float32,
                  chunk: Optional[int] = None, executor=None, progress: Optional[bool] = None,
                  method: str = "euler", record: Optional[str] = None, *, input_strength=1.0,
                  threads: int = 1) -> GridSimulation:
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
        Networks per chunk (default: up to 256, within a 512 MiB working set). Results
        depend on the chunking only through floating-point summation order.
    executor : object with ``.map(fn, iterable)``, optional
        E.g. a ``concurrent.futures`` executor or a ``dask.distributed.Client`` (futures it
        returns are resolved with ``.result()``); chunks are sent, not points. Default:
        in-process ``map``. Same seed and chunk -> same results, given the same BLAS thread
        count (OpenBLAS's GEMM summation order depends on it). In-process, BLAS uses every
        core for the GEMMs but the elementwise work (``phi``, the Euler update, the
        statistics) runs on ``threads`` threads; a ``ProcessPoolExecutor`` whose workers start
        with ``OPENBLAS_NUM_THREADS=1`` (and ``chunk`` small enough to give each worker several
        chunks) runs all of it on every core, and is less sensitive to other load.
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
    threads : int, default 1
        Threads sharing each chunk's elementwise work between the GEMMs, on row blocks (the
        calling thread included; each GEMM stays one BLAS call). Results do not depend on it.
        The default is 1 because more did not pay where measured (a 2-core VM, see
        ``benchmarks/bench_simulate.py``): after each GEMM, OpenBLAS's threads busy-wait on the
        other cores, so a woken helper thread shares the calling thread's core, and waking a
        thread on an idle core there costs a sizeable part of a step. Worth measuring with
        ``threads=`` set to the cores where wake-ups are cheap and BLAS threads sleep.

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
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads: expected a positive integer number of threads, got {threads!r}")

    seeds = normalise_seeds(rng)
    single = seeds is None
    # points in C order over (g, overlap, input strength)
    g_points = np.repeat(g, overlap.size * K)
    dn_points = np.tile(np.repeat(mean_n - net.means[R], K), g.size)
    c_points = np.tile(strengths, g.size * overlap.size)
    first_recorded = int(math.ceil(transient / dt - 1e-9))
    common = dict(phi=net.phi.expr, regime=regime, method=method, record=record, dt=dt, steps=steps,
                  first_recorded=first_recorded, threads=int(threads))
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

    shape = (g.size, overlap.size) + ((K,) if input_axis else ())
    return GridSimulation(
        g=g, overlap=overlap, seeds=tuple(recorded_seeds), chaoticity_samples=chaoticity.reshape((S,) + shape),
        kappa_samples=kappa.reshape((S,) + shape + (R,)),
        realised_overlap_samples=np.stack(realised).reshape((S,) + shape), mean_n=mean_n, N=N, T=T, dt=dt,
        transient=transient, regime=regime, method=method, record=record, dtype=dtype.name,
        meta={"chunk": int(chunk), "chunks": len(tasks), "chunks_per_seed": len(tasks) // S,
              "scaled": "mean of n_1", "threads": int(threads)},
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
