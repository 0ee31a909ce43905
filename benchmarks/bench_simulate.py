"""Benchmark the batched phase-diagram sweep against its floor (bare GEMMs) and odeint.

Usage::

    python benchmarks/bench_simulate.py [--quick] [--repeat 3] [--chunk B] [--threads T] [--workers W]

Full: a 50 x 50 (g, overlap) grid, N = 1000, 400 Euler steps, float32 (seed 004's diagram).

Measured, in this order:

1. the floor: the bare GEMMs of the sweep's shapes, ``chi @ X`` with ``X`` of shape (N, B)
   for every chunk and each of the ``steps + 1`` field evaluations, into a preallocated
   output (no allocation or page faults in the loop), best of ``--repeat`` runs, two ways:
   (a) chunk after chunk with BLAS on every core, (b) ``T`` chunks at a time on a thread
   pool with one BLAS thread each (the way the sweep runs them). The floor is the faster;
2. the sweep, :func:`dmftools.simulate.simulate_grid` end to end (drawing the network,
   chunking, statistics) with its defaults (``T`` chunks at a time on threads, one BLAS
   thread per chunk); best of ``--repeat`` runs;
3. the floor again, to see whether the machine's load changed while the sweep ran;
4. per chunk, on one core: the chunk's integration (``_run_chunk``) and its bare GEMMs with
   one BLAS thread, back to back, best of ``--repeat`` per chunk, summed over chunks (the
   share of a core's time that goes to the GEMMs, robust to other load);
5. the authors' method, ``scipy.integrate.odeint`` on one dense ``J`` per network, timed on a
   sample of networks spread over the grid (best of ``--repeat`` each), extrapolated;
6. peak memory: traced numpy allocations of a short sweep of the same grid (peak memory
   does not depend on the number of steps) and the process's peak RSS.

With ``--workers W`` (default 2) the floor and the sweep are also timed on W worker
processes with one BLAS thread each (``simulate_grid(..., executor=ProcessPoolExecutor)``).
``--threads`` defaults to the usable cores.

Ratios are throughputs: "sweep at X% of GEMM throughput" is floor time / sweep time, with
the floor (the faster of 1a and 1b, before or after the sweep) timed in the same run; with
workers, the ratio against the best GEMM throughput of any configuration (1c included) too.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import dmftools as dmf  # noqa: E402
from dmftools.simulate import draw_network, simulate_grid  # noqa: E402
from dmftools.simulate._grid import _Chunk, _one_blas_thread, _run_chunk, default_chunk, usable_cores  # noqa: E402


_WORKER_CHI = {}


def _gemm_task(job):
    """In a worker: the bare GEMMs of one chunk, ``steps + 1`` products ``chi @ X`` of width ``width``."""
    N, width, steps = job
    chi = _WORKER_CHI.get(N)
    if chi is None:
        chi = _WORKER_CHI[N] = (np.random.default_rng(1).standard_normal((N, N)) / np.sqrt(N)).astype(np.float32)
    X = np.tanh(np.random.default_rng(2).standard_normal((N, width))).astype(np.float32)
    out = np.empty((N, width), dtype=np.float32)
    for _ in range(steps + 1):
        np.matmul(chi, X, out=out)
    return width


def best_of(repeat, fn):
    """Minimum wall time of ``repeat`` calls (the run least disturbed by other processes)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 x 20 grid, N = 500, 200 steps")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (best is reported)")
    parser.add_argument("--odeint-networks", type=int, default=6, help="networks timed with odeint")
    parser.add_argument("--chunk", type=int, default=None, help="networks per chunk (default: simulate_grid's)")
    parser.add_argument("--workers", type=int, default=2,
                        help="also time the sweep on this many worker processes with single-threaded BLAS (0: skip)")
    parser.add_argument("--threads", type=int, default=None,
                        help="chunks at a time in-process, simulate_grid(threads=T) (default: the usable cores)")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads: expected a positive number of threads, got {args.threads}")
    threads = args.threads or usable_cores()

    side, N, steps = (20, 500, 200) if args.quick else (50, 1000, 400)
    dt = 0.1
    T = steps * dt
    points = side * side
    dtype = np.float32
    net = dmf.RankOne(Mm=1.0, Mn=0.0, Sm=1.0, Sn=1.0)
    g = np.linspace(0.0, 4.0, side)
    overlap = np.linspace(0.0, 4.0, side)
    chunk = args.chunk or default_chunk(N, points, dtype, "euler")
    widths = [min(chunk, points - s) for s in range(0, points, chunk)]
    flops = 2.0 * N * N * points * (steps + 1)
    print(f"grid {side} x {side} = {points} networks, N = {N}, {steps} Euler steps (T = {T:g}), float32, "
          f"chunk = {chunk} ({len(widths)} chunks), best of {args.repeat}; "
          f"threads OMP/OPENBLAS = {os.environ.get('OMP_NUM_THREADS', '-')}/"
          f"{os.environ.get('OPENBLAS_NUM_THREADS', '-')}, load average {os.getloadavg()[0]:.2f}")

    # 1. the floor first: bare GEMMs of the same shapes, preallocated operands and outputs
    rng = np.random.default_rng(1)
    chi = (rng.standard_normal((N, N)) / np.sqrt(N)).astype(dtype)
    operands = {w: np.tanh(rng.standard_normal((N, w))).astype(dtype) for w in set(widths)}
    outputs = {w: np.empty((N, w), dtype=dtype) for w in set(widths)}

    def gemms(width_list):
        for width in width_list:
            X, out = operands[width], outputs[width]
            for _ in range(steps + 1):  # steps + 1 field evaluations, as in the sweep
                np.matmul(chi, X, out=out)

    def one_chunk_gemms(width):
        X, out = operands[width], np.empty((N, width), dtype=dtype)
        with _one_blas_thread():
            for _ in range(steps + 1):
                np.matmul(chi, X, out=out)

    from concurrent.futures import ThreadPoolExecutor

    gemm_pool = ThreadPoolExecutor(threads)

    def gemms_threaded(width_list):
        list(gemm_pool.map(one_chunk_gemms, width_list))

    gemms(widths[:1])  # warm up BLAS threads and buffers
    t_gemm, gemm_runs = best_of(args.repeat, lambda: gemms(widths))
    print(f"1a. bare GEMMs, BLAS on every core        {t_gemm:8.2f} s   {flops / t_gemm / 1e9:6.1f} GFLOP/s   "
          f"runs {', '.join(f'{t:.2f}' for t in gemm_runs)}")
    t_gemm_t, gemm_t_runs = best_of(args.repeat, lambda: gemms_threaded(widths))
    print(f"1b. bare GEMMs, {threads} chunks x 1 BLAS thread   {t_gemm_t:8.2f} s   {flops / t_gemm_t / 1e9:6.1f} GFLOP/s   "
          f"runs {', '.join(f'{t:.2f}' for t in gemm_t_runs)}")

    # 1c/2b. the same on worker processes with one BLAS thread each (simulate_grid's executor=)
    pool, saved = None, {}
    if args.workers > 0:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        saved = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
        os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")  # read by the spawned workers
        pool = ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"))
        chunk_w = max(1, min(chunk, -(-points // (2 * args.workers))))  # >= 2 chunks per worker
        jobs = [(N, min(chunk_w, points - s), steps) for s in range(0, points, chunk_w)]
        list(pool.map(_gemm_task, [(N, 1, 1)] * (4 * args.workers)))  # start workers, cache chi
        t_gemm_w, gemm_w_runs = best_of(args.repeat, lambda: list(pool.map(_gemm_task, jobs)))
        print(f"1c. bare GEMMs on {args.workers} workers x 1 BLAS thread, chunk {chunk_w}: {t_gemm_w:6.2f} s   "
              f"{flops / t_gemm_w / 1e9:6.1f} GFLOP/s   runs {', '.join(f'{t:.2f}' for t in gemm_w_runs)}")

    # 2. the sweep, end to end
    results = []

    def sweep(**options):
        results[:] = [simulate_grid(net, g=g, overlap=overlap, N=N, T=T / 2, transient=T / 2, dt=dt, rng=0,
                                    dtype=dtype, chunk=chunk, progress=False, **options)]

    t_grid, grid_runs = best_of(args.repeat, lambda: sweep(threads=threads))
    print(f"2. simulate_grid (end to end, threads={threads}) {t_grid:8.2f} s   {flops / t_grid / 1e9:6.1f} GFLOP/s   "
          f"runs {', '.join(f'{t:.2f}' for t in grid_runs)}   ({1e3 * t_grid / points:.2f} ms per network; "
          f"meta {results[0].meta['threads']} threads, {results[0].meta['blas_threads']} BLAS thread per chunk)")
    rss_sweep = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    t_workers = None
    if pool is not None:
        def sweep_workers():
            simulate_grid(net, g=g, overlap=overlap, N=N, T=T / 2, transient=T / 2, dt=dt, rng=0,
                          dtype=dtype, chunk=chunk_w, progress=False, executor=pool)

        t_workers, worker_runs = best_of(args.repeat, sweep_workers)
        print(f"2b. simulate_grid on the workers, executor=pool: {t_workers:6.2f} s   "
              f"{flops / t_workers / 1e9:6.1f} GFLOP/s   runs {', '.join(f'{t:.2f}' for t in worker_runs)}")
        pool.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # 3. the floor again: did the load change?
    t_gemm2, gemm2_runs = best_of(args.repeat, lambda: gemms(widths))
    t_gemm2_t, gemm2_t_runs = best_of(args.repeat, lambda: gemms_threaded(widths))
    gemm_pool.shutdown()
    print(f"3. bare GEMMs again: 1a {t_gemm2:.2f} s (runs {', '.join(f'{t:.2f}' for t in gemm2_runs)}), "
          f"1b {t_gemm2_t:.2f} s (runs {', '.join(f'{t:.2f}' for t in gemm2_t_runs)})")

    # 4. per chunk on one core: integration and its GEMMs back to back, both on one BLAS thread
    real = draw_network(net, N, rng=0)
    mean_n = overlap / net.means[0]
    g_points = np.repeat(g, side)
    dn_points = np.tile(mean_n - net.means[1], side)
    shared = dict(chi=real.chi.astype(dtype), m=real.m.astype(dtype), n=real.n.astype(dtype),
                  input=real.input.astype(dtype), x0=real.x0.astype(dtype), phi=net.phi.expr,
                  regime="current", method="euler", record="x", dt=dt, steps=steps,
                  first_recorded=int(round(steps / 2)))
    paired_chunk = paired_gemm = 0.0
    for s, width in zip(range(0, points, chunk), widths):
        task = _Chunk(seed_index=0, start=s, g=g_points[s : s + width], dn=dn_points[s : s + width], **shared)
        best_c = best_g = np.inf
        for _ in range(args.repeat):
            start = time.perf_counter()
            _run_chunk(task)
            best_c = min(best_c, time.perf_counter() - start)
            start = time.perf_counter()
            one_chunk_gemms(width)
            best_g = min(best_g, time.perf_counter() - start)
        paired_chunk += best_c
        paired_gemm += best_g
    print(f"4. per chunk on one core: chunks {paired_chunk:.2f} s, their GEMMs {paired_gemm:.2f} s")

    # 5. odeint on one dense J per network, sampled across the grid (g-major order), extrapolated
    from scipy.integrate import odeint

    t_eval = np.linspace(0.0, T, steps + 1)
    sample = np.linspace(0, points - 1, args.odeint_networks).astype(int)
    per_network = []
    for p in sample:
        gi, oi = divmod(int(p), side)
        n = real.n + (overlap[oi] - net.means[1] * net.means[0]) / net.means[0]
        J = g[gi] * real.chi + real.m @ n.T / N
        best, _ = best_of(args.repeat, lambda: odeint(lambda x, t: -x + J @ np.tanh(x) + real.input, real.x0, t_eval))
        per_network.append(best)
    t_odeint = float(np.mean(per_network)) * points
    print(f"5. odeint, dense J (extrap.)   {t_odeint:8.2f} s   ({np.mean(per_network):.3f} s per network, mean of "
          f"{len(sample)}: {', '.join(f'{t:.3f}' for t in per_network)})")

    # 6. memory: trace a 20-step sweep of the same grid (peak independent of the step count)
    tracemalloc.start()
    simulate_grid(net, g=g, overlap=overlap, N=N, T=10 * dt, transient=10 * dt, dt=dt, rng=0,
                  dtype=dtype, chunk=chunk, progress=False)
    _, peak_traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    floor = min(t_gemm, t_gemm2, t_gemm_t, t_gemm2_t)
    print()
    print(f"sweep throughput / GEMM throughput (end to end, best floor)  {100 * floor / t_grid:5.1f} %"
          f"   (target >= 70 %)")
    if pool is not None:
        print(f"  against the best GEMM throughput of any configuration (1c too) "
              f"{100 * min(floor, t_gemm_w) / t_grid:5.1f} %")
    print(f"  against 1a only (BLAS on every core)                       {100 * min(t_gemm, t_gemm2) / t_grid:5.1f} %")
    print(f"GEMM share of a chunk's time on one core (4.)                {100 * paired_gemm / paired_chunk:5.1f} %")
    if t_workers is not None:
        print(f"sweep / GEMM throughput, both on {args.workers} single-threaded workers      "
              f"{100 * t_gemm_w / t_workers:5.1f} %")
        print(f"sweep on workers / in-process GEMM floor                     {100 * floor / t_workers:5.1f} %")
        print(f"odeint time / sweep time on workers                          {t_odeint / t_workers:5.1f} x")
    print(f"odeint time / sweep time                                     {t_odeint / t_grid:5.1f} x"
          f"   (target >= 30 x)")
    print(f"load average at the end                                      {os.getloadavg()[0]:5.2f}")
    print(f"peak traced numpy memory (sweep)   {peak_traced / 2**20:8.1f} MiB")
    print(f"peak RSS of this process            {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.1f} MiB"
          f"   (after the sweeps: {rss_sweep:.1f} MiB)")
    grid = results[0]
    print(f"sanity: chaoticity at (g={g[-1]:g}, overlap=0) = {grid.chaoticity[-1, 0]:.3f}, "
          f"|kappa| at (g=0, overlap={overlap[-1]:g}) = {abs(grid.kappa[0, -1, 0]):.3f}")


if __name__ == "__main__":
    main()
