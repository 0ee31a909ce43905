"""Completeness of the grid solver: every root the full multi-start finds, the grid finds.

Run from the repository root::

    python benchmarks/check_completeness.py          # 100 x 100 (about 10 s)
    python benchmarks/check_completeness.py 200      # 200 x 200 (about 30 s)

``dmf.solve`` on the n x n (g, Mn) grid of M&O Fig. 1 (coarse subgrid, then neighbours'
roots and the flood across the grid) against ``dmf.solve`` on the same points in shuffled
order, which is not a grid, so every point gets the full multi-start. Prints, per state,
the number of roots found both ways, the number of points where the counts differ (0
expected) and the largest kappa difference where they agree. Exit status 1 if any point
differs.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import dmftools as dmf


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 100
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    G, M = np.meshgrid(np.linspace(0.01, 4, n), np.linspace(0, 4, n) / 1.1, indexing="ij")  # overlap = 1.1 Mn
    t0 = time.perf_counter()
    grid = dmf.solve(net, g=G, Mn=M)
    t1 = time.perf_counter()
    perm = np.random.default_rng(0).permutation(G.size)
    shuffled = dmf.solve(net, g=G.reshape(-1)[perm], Mn=M.reshape(-1)[perm])
    t2 = time.perf_counter()
    print(f"grid {n} x {n}: {t1 - t0:.2f} s; shuffled points (multi-start everywhere): {t2 - t1:.2f} s")
    inverse = np.argsort(perm)
    failed = False
    for state in ("stationary", "chaotic"):
        a, b = grid[state], shuffled[state]
        found_a = np.asarray(a.found).reshape(len(a.branches), -1)
        found_b = np.asarray(b.found).reshape(len(b.branches), -1)[:, inverse]
        ca, cb = found_a.sum(axis=0), found_b.sum(axis=0)
        differ = np.flatnonzero(ca != cb)
        failed |= differ.size > 0
        print(f"{state}: roots {ca.sum()} (grid) and {cb.sum()} (multi-start); points that differ: {differ.size}")
        for i in differ[:5]:
            print(f"  g = {G.reshape(-1)[i]:.4f}, overlap = {1.1 * M.reshape(-1)[i]:.4f}: {ca[i]} against {cb[i]}")
        ka = np.sort(np.where(found_a, np.asarray(a.values["kappa"]).reshape(found_a.shape), np.nan), axis=0)
        kb = np.sort(np.where(found_b, np.asarray(b.values["kappa"]).reshape(len(b.branches), -1)[:, inverse], np.nan),
                     axis=0)
        same = ca == cb
        if np.any(same & (ca > 0)):
            print(f"  largest |kappa difference| where the counts agree: {np.nanmax(np.abs(ka[:, same] - kb[:, same])):.2e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
