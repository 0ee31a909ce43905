"""The compiled kernels (numba) against the numpy lattice rules at random points.

Run from the repository root (needs the ``jit`` extra)::

    python benchmarks/check_kernels.py

Single and nested averages of the tanh integrands (tanh, log cosh, tanh', tanh'') at 2000
random points: mu in [-5, 5], Delta_0 log-uniform in [1e-3, 100], Delta_inf / Delta_0 uniform
in [0, 1] with 200 points at 0 and 200 just below 1 (every path of the nested rules).
Prints the largest difference relative to max(1, |value|); the tests hold it below 1e-13.
"""

from __future__ import annotations

import sys

import numpy as np
import sympy as sp

from dmftools.model import X, logcosh
from dmftools.numeric import _jit, lattice
from dmftools.numeric.compile import np_logcosh

TANH = [sp.Lambda(X, e) for e in (sp.tanh(X), logcosh(X), 1 - sp.tanh(X) ** 2, -2 * sp.tanh(X) * (1 - sp.tanh(X) ** 2))]
PAIRS = ((0, 0), (0, 1), (1, 1), (0, 2), (2, 2), (1, 3), (0, 3))


def _numpy_integrands(x):
    t = np.tanh(x)
    return [t, np_logcosh(x), 1 - t**2, -2 * t * (1 - t**2)]


def main() -> int:
    kernels = _jit.kernels(TANH)
    if kernels is None:
        print("numba is not installed (pip install '.[jit]') or DMFTOOLS_JIT=0: nothing to compare")
        return 1
    rng = np.random.default_rng(2026)
    n = 2000
    mu = rng.uniform(-5, 5, n)
    d0 = 10 ** rng.uniform(-3, 2, n)
    frac = rng.uniform(0, 1, n)
    frac[:200] = 0.0
    frac[200:400] = 1 - 10 ** rng.uniform(-6, -1, 200)
    di = frac * d0

    def worst(fast, slow):
        return max(float(np.max(np.abs(f - s) / np.maximum(1, np.abs(s)))) for f, s in zip(fast, slow))

    nested = worst(lattice.nested_averages(None, 4, PAIRS, mu, d0, di, kernels=kernels),
                   lattice.nested_averages(_numpy_integrands, 4, PAIRS, mu, d0, di))
    single = worst(lattice.single_averages(None, 4, mu, d0, kernels=kernels),
                   lattice.single_averages(_numpy_integrands, 4, mu, d0))
    print(f"{n} points: largest difference relative to max(1, |value|): nested {nested:.2e}, single {single:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
