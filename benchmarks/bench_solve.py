"""Benchmark: dmftools' solvers against the classic damped fixed-point iteration.

Run from the repository root::

    python benchmarks/bench_solve.py            # full 200-point Fig. 1C sweep (classic: ~2-3 min)
    python benchmarks/bench_solve.py --quick    # 20-point slice
    python benchmarks/bench_solve.py --diagram 100   # also the 100 x 100 phase diagram
    python benchmarks/bench_solve.py --numpy    # without the compiled kernels (numba)

Times, in the same run, (1) the authors' algorithm reimplemented in ``benchmarks/_classic.py``
(damped fixed-point iteration, step 0.2, tolerance 1e-8, 200-node Gauss-Hermite, nested
averages point by point) on the g sweep of M&O Fig. 1C (Mm = 1.1, Mn = 2, Sm = Sn = 1,
g in [1e-4, 4]: positive, negative and central branches, stationary and chaotic, stability),
and (2) ``dmf.solve`` on the same sweep (every branch, stationary and chaotic, stability),
then prints the ratio and the largest deviation of kappa and delta0 where both converged.
dmftools' timings are the best of ``--repeat`` runs (default 3; compiled equations are
cached after a first untimed call, as in a session), the classic baseline runs once.
With the compiled kernels, ``dmf.solve`` runs its two states (stationary, chaotic) on two
threads; the sweep is also timed on one thread (``DMFTOOLS_THREADS=1``) and both ratios are
printed. With ``--diagram N`` it also times an N x N phase diagram (solutions and regions): in-process,
on a process pool of the usable cores (``executor=``, one band per core and state), and
once with the boundary curves. The quadrature runs in the compiled kernels when numba is
installed (``pip install ".[jit]"``; compiled once and cached on disk, so the first run on
a machine also compiles them, outside the timings); ``--numpy`` times the numpy rules.

The ratio depends on the host: the classic baseline spends its time in numpy's vectorised
``exp`` and ``log1p`` over 200 x 200 nodes, whose speed depends on the vector units numpy
dispatches to (numpy uses Intel's SVML on AVX-512 hosts); the script prints numpy's version
and the SIMD extensions it found. (On the hosts of the development sessions the same
baseline took 114-142 s on earlier hosts and 23-25 s on an AVX-512 one.)
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import dmftools as dmf  # noqa: E402
from dmftools.numeric import _jit  # noqa: E402
from dmftools.phase._diagram import _default_bands  # noqa: E402
from dmftools.simulate._grid import usable_cores  # noqa: E402
from dmftools.solvers._solve import THREADS_ENV  # noqa: E402
from _classic import classic_sweep  # noqa: E402


def _numba_version() -> str:
    import numba

    return numba.__version__


def _simd() -> str:
    """The SIMD extensions numpy found on this host (the classic baseline's speed, and so
    the ratio, depend on them)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # another numpy layout: not essential to the benchmark
        return "unknown"
    found = [k for k in ("SSE42", "AVX2", "FMA3", "AVX512F", "AVX512_SKX", "NEON", "ASIMD") if features.get(k)]
    return ", ".join(found) or "none"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20-point slice of the sweep")
    parser.add_argument("--diagram", type=int, default=0, help="also time an N x N phase diagram")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many dmftools runs")
    parser.add_argument("--numpy", action="store_true", help="numpy rules only (DMFTOOLS_JIT=0)")
    args = parser.parse_args(argv)
    if args.numpy:
        os.environ[_jit.ENV] = "0"  # read when the equations are compiled, below
    print("quadrature:", f"compiled kernels (numba {_numba_version()})" if _jit.available() else "numpy rules")
    print(f"host: numpy {np.__version__}, SIMD {_simd()}, {os.cpu_count()} cores")
    g = np.linspace(1e-4, 4, 20 if args.quick else 200)
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    dmf.solve(net, g=g)  # compile (or load from the disk cache) once per session, not part of the timing

    t0 = time.perf_counter()
    classic = classic_sweep(g)
    t_classic = time.perf_counter() - t0
    runs = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        res = dmf.solve(net, g=g)
        runs.append(time.perf_counter() - t0)
    t_dmf = min(runs)
    # the same on one thread (solve runs its two states on two threads when compiled)
    previous = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = "1"
    one = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        dmf.solve(net, g=g)
        one.append(time.perf_counter() - t0)
    if previous is None:
        del os.environ[THREADS_ENV]
    else:
        os.environ[THREADS_ENV] = previous
    print(f"g sweep, {g.size} points, all branches, stationary + chaotic + stability")
    print(f"  classic fixed-point iteration : {t_classic:9.2f} s")
    print(f"  dmftools solve                : {t_dmf:9.3f} s   (runs " + ", ".join(f"{t:.3f}" for t in runs) + ")")
    print(f"  ratio classic / dmftools      : {t_classic / t_dmf:9.1f} x   (target >= 1000 x)")
    print(f"  dmftools solve on one thread  : {min(one):9.3f} s   (runs " + ", ".join(f"{t:.3f}" for t in one)
          + f"), ratio {t_classic / min(one):.1f} x")

    # deviations where both converged (classic rows: 0 positive, 1 negative, 2 central)
    for state, suffix in (("stationary", "s"), ("chaotic", "c")):
        ss = res[state]
        worst = 0.0
        for row, branch in ((0, "positive"), (1, "negative")):
            if branch not in ss.branches:
                continue
            j = ss.branches.index(branch)
            ok = ss.found[j] & classic[f"converged_{suffix}"][row]
            if state == "chaotic":
                ok &= classic["computed_c"][row]
            for key in ("kappa", "delta0"):
                mine = ss.values[key][j][ok]
                theirs = classic[f"{key}_{suffix}"][row][ok]
                if mine.size:
                    worst = max(worst, float(np.max(np.abs(mine - theirs))))
        print(f"  max |deviation| kappa, delta0 ({state}, +/- branches, both converged): {worst:.2e}")
    print("  (the classic iteration stops at a relative step of 1e-8; dmftools' residuals are <= 1e-10)")

    if args.diagram:
        n = args.diagram
        runs = []
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            pd = dmf.phase_diagram(net, g=np.linspace(0.01, 4, n), overlap=np.linspace(0, 4, n), boundaries=False)
            runs.append(time.perf_counter() - t0)
        t_pd = min(runs)
        print(f"phase diagram {n} x {n} (all solutions, stability, regions): {t_pd:.2f} s (target < 2 s at 100 x 100)"
              "   (runs " + ", ".join(f"{t:.2f}" for t in runs) + ")")
        print("  regions:", {dmf.phase.REGIONS[c]: int((pd.region == c).sum()) for c in np.unique(pd.region)})
        cores = usable_cores()
        if cores > 1:
            with ProcessPoolExecutor(cores) as pool:
                runs = []
                for _ in range(max(2, args.repeat)):  # the first run includes starting the workers
                    t0 = time.perf_counter()
                    par = dmf.phase_diagram(net, g=np.linspace(0.01, 4, n), overlap=np.linspace(0, 4, n),
                                            boundaries=False, executor=pool, bands=_default_bands(cores, n))
                    runs.append(time.perf_counter() - t0)
            same = bool(np.array_equal(par.region, pd.region))
            print(f"  on {cores} worker processes (executor, {cores} bands x 2 states): {min(runs):.2f} s, "
                  f"{t_pd / min(runs):.2f} x   (runs " + ", ".join(f"{t:.2f}" for t in runs) + f"); same regions: {same}")
        t0 = time.perf_counter()
        full = dmf.phase_diagram(net, g=np.linspace(0.01, 4, n), overlap=np.linspace(0, 4, n))
        print(f"  with the boundary curves (in-process, once): {time.perf_counter() - t0:.2f} s, "
              f"{len(full.boundaries)} boundaries")


if __name__ == "__main__":
    main()
