"""Benchmark the batched phase-diagram sweep against its floor (bare GEMMs) and a naive loop.

Usage::

    python benchmarks/bench_simulate.py [--quick]

Full: a 50 x 50 (g, overlap) grid, N = 1000, 400 Euler steps, float32 (seed 004's diagram).
Reports the wall time of :func:`dmftools.simulate.simulate_grid`, of the bare GEMMs of the
same shapes, of ``scipy.integrate.odeint`` on one dense ``J`` per network (timed on a few
networks and extrapolated to the grid), their ratios and the peak memory.
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
from dmftools.simulate._grid import default_chunk  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 x 20 grid, N = 500, 200 steps")
    parser.add_argument("--odeint-networks", type=int, default=2, help="networks timed with odeint")
    args = parser.parse_args(argv)

    side, N, steps = (20, 500, 200) if args.quick else (50, 1000, 400)
    dt = 0.1
    T = steps * dt
    points = side * side
    dtype = np.float32
    net = dmf.RankOne(Mm=1.0, Mn=0.0, Sm=1.0, Sn=1.0)
    g = np.linspace(0.0, 4.0, side)
    overlap = np.linspace(0.0, 4.0, side)
    chunk = default_chunk(N, points, dtype, "euler")
    print(f"grid {side} x {side} = {points} networks, N = {N}, {steps} Euler steps (T = {T:g}), "
          f"float32, chunk = {chunk}, threads: OMP/OPENBLAS = "
          f"{os.environ.get('OMP_NUM_THREADS', '-')}/{os.environ.get('OPENBLAS_NUM_THREADS', '-')}")

    # 1. the sweep (timed without tracemalloc, whose hooks slow numpy's allocations)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    grid = simulate_grid(net, g=g, overlap=overlap, N=N, T=T, transient=T / 2, dt=dt, rng=0,
                         dtype=dtype, progress=False)
    t_grid = time.perf_counter() - start
    rss_sweep = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"simulate_grid               {t_grid:9.2f} s   ({1e3 * t_grid / points:.2f} ms per network)")
    # peak memory does not depend on the number of steps: trace a 20-step sweep of the same grid
    tracemalloc.start()
    simulate_grid(net, g=g, overlap=overlap, N=N, T=20 * dt, transient=10 * dt, dt=dt, rng=0,
                  dtype=dtype, progress=False)
    _, peak_traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # 2. the floor: the GEMMs alone, same shapes and chunking
    rng = np.random.default_rng(1)
    chi = rng.standard_normal((N, N)).astype(dtype) / np.sqrt(N)
    X = rng.standard_normal((N, chunk)).astype(dtype)
    widths = [min(chunk, points - s) for s in range(0, points, chunk)]
    start = time.perf_counter()
    for width in widths:
        Xw = np.ascontiguousarray(X[:, :width])  # a strided view would miss the BLAS path
        for _ in range(steps + 1):  # steps + 1 field evaluations, as in the sweep
            chi @ Xw
    t_gemm = time.perf_counter() - start
    flops = 2.0 * N * N * points * (steps + 1)
    print(f"bare GEMMs                  {t_gemm:9.2f} s   ({flops / t_gemm / 1e9:.1f} GFLOP/s)")

    # 3. naive: scipy odeint on one dense J per network, timed on a slice, extrapolated
    from scipy.integrate import odeint

    real = draw_network(net, N, rng=0)
    t_eval = np.linspace(0.0, T, steps + 1)
    sample = np.linspace(0, points - 1, args.odeint_networks).astype(int)
    start = time.perf_counter()
    for p in sample:
        gi, oi = divmod(int(p), side)
        n = real.n + (overlap[oi] - net.means[1] * net.means[0]) / net.means[0]
        J = g[gi] * real.chi + real.m @ n.T / N
        odeint(lambda x, t: -x + J @ np.tanh(x) + real.input, real.x0, t_eval)
    t_one = (time.perf_counter() - start) / len(sample)
    t_odeint = t_one * points
    print(f"odeint, dense J (extrap.)   {t_odeint:9.2f} s   ({t_one:.3f} s per network, {len(sample)} timed)")

    print(f"ratio simulate_grid / GEMMs   {t_grid / t_gemm:6.2f}")
    print(f"ratio odeint / simulate_grid  {t_odeint / t_grid:6.1f}")
    print(f"peak traced memory (sweep)  {peak_traced / 2**20:9.1f} MiB")
    print(f"peak RSS after the sweep    {rss_sweep:9.1f} MiB   (before: {rss_before:.1f} MiB)")
    print(f"sanity: chaoticity at (g={g[-1]:g}, overlap=0) = {grid.chaoticity[-1, 0]:.3f}, "
          f"|kappa| at (g=0, overlap={overlap[-1]:g}) = {abs(grid.kappa[0, -1, 0]):.3f}")


if __name__ == "__main__":
    main()
