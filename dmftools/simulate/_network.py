"""Drawing one finite-size realisation of a low-rank plus random network.

``J = g chi + (1/N) sum_k m_k n_k^T`` with ``chi_ij ~ N(0, 1/N)``; per unit the loadings
``(m_1..m_R, n_1..n_R, I)`` are jointly Gaussian with the model's means and covariance.

All randomness of a simulation is drawn here, once, in a fixed order (loadings, ``chi``,
initial condition), so that the same seed gives the same network whatever is simulated on it
(one network, or a batched sweep that shifts the mean of ``n_1``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import sympy as sp

from ..model import GaussianLowRank, X
from ..numeric.compile import np_logcosh

__all__ = ["NetworkRealisation", "draw_network", "normalise_rng", "normalise_seeds", "compile_phi"]

RNGLike = Union[int, np.integer, np.random.Generator, np.random.SeedSequence, None]


def normalise_rng(rng: RNGLike) -> tuple[np.random.Generator, int]:
    """Turn ``rng`` into a Generator and the integer seed that reproduces it.

    An int is used as the seed; ``None`` draws fresh OS entropy; a Generator is consumed once
    to draw a 63-bit child seed (so the seed can be recorded and the run repeated).

    Examples
    --------
    >>> gen, seed = normalise_rng(3)
    >>> seed
    3
    >>> float(gen.standard_normal()) == float(np.random.default_rng(3).standard_normal())
    True
    """
    if isinstance(rng, (bool, np.bool_)):
        raise TypeError(f"rng: expected an int, a numpy Generator or None, got {rng!r}")
    if rng is None:
        seed = int(np.random.SeedSequence().entropy)
    elif isinstance(rng, (int, np.integer)):
        if rng < 0:
            raise ValueError(f"rng: a seed must be >= 0, got {rng}")
        seed = int(rng)
    elif isinstance(rng, np.random.Generator):
        seed = int(rng.integers(0, 2**63 - 1))
    elif isinstance(rng, np.random.SeedSequence):
        seed = int(rng.generate_state(1, np.uint64)[0] >> np.uint64(1))
    else:
        raise TypeError(f"rng: expected an int, a numpy Generator or None, got {type(rng).__name__}")
    return np.random.default_rng(seed), seed


def normalise_seeds(rng) -> Optional[list[int]]:
    """The seeds of a multi-seed run, or ``None`` when ``rng`` is a single seed.

    A list, tuple, range or 1-d integer array of anything :func:`normalise_rng` accepts is a
    multi-seed run: one network per entry, each entry normalised to the integer seed that
    reproduces it. The seeds must be distinct (standard errors assume independent draws).
    A single seed (int, Generator, SeedSequence, None) is left for :func:`normalise_rng`,
    and a Generator is not consumed here.

    Examples
    --------
    >>> normalise_seeds([3, 1, 2]), normalise_seeds(range(2)), normalise_seeds(7) is None
    ([3, 1, 2], [0, 1], True)
    """
    if isinstance(rng, np.ndarray):
        if rng.ndim != 1 or not np.issubdtype(rng.dtype, np.integer):
            raise TypeError(f"rng: an array of seeds must be 1-d and of integers, got {rng.dtype} shape {rng.shape}")
        rng = rng.tolist()
    if not isinstance(rng, (list, tuple, range)):
        return None
    if len(rng) == 0:
        raise ValueError("rng: the sequence of seeds is empty")
    seeds = [normalise_rng(entry)[1] for entry in rng]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"rng: the seeds must be distinct (independent networks), got {seeds}")
    return seeds


@functools.lru_cache(maxsize=64)
def _lambdified(expr: sp.Expr):
    return sp.lambdify(X, expr, modules=[{"logcosh": np_logcosh}, "numpy", "scipy"])


def compile_phi(expr: sp.Expr):
    """Compile ``phi`` (a SymPy expression in :data:`dmftools.model.X`) to a numpy ufunc-like.

    Compiled once per expression (cached); the returned function keeps the input's dtype and
    shape, also for constant expressions.

    Examples
    --------
    >>> import sympy as sp
    >>> phi = compile_phi(sp.tanh(X))
    >>> phi(np.zeros(3, dtype=np.float32)).dtype
    dtype('float32')
    """
    raw = _lambdified(expr)

    def phi(x):
        out = raw(x)
        if np.ndim(out) == 0 or np.shape(out) != np.shape(x):
            out = np.broadcast_to(out, np.shape(x))
        return np.asarray(out, dtype=x.dtype)

    return phi


#: SymPy functions whose numpy ufunc can write into a given array: ``phi = f(x)`` exactly is
#: evaluated as ``f(x, out=out)``, the same ufunc loop that ``sympy.lambdify`` calls.
_UFUNCS = {sp.tanh: np.tanh, sp.exp: np.exp, sp.sin: np.sin, sp.cos: np.cos, sp.atan: np.arctan}


def compile_phi_into(expr: sp.Expr):
    """Compile ``phi`` to ``phi_into(x, out)``, which writes ``phi(x)`` into ``out``.

    Same values as :func:`compile_phi` (``out`` has ``x``'s shape and dtype). When ``phi`` is
    a single numpy ufunc applied to :data:`dmftools.model.X` (e.g. ``tanh``) it is evaluated
    straight into ``out``; otherwise the result of :func:`compile_phi` is copied there.

    Examples
    --------
    >>> import sympy as sp
    >>> x = np.linspace(-2, 2, 5, dtype=np.float32)
    >>> out = np.empty_like(x)
    >>> for expr in (sp.tanh(X), sp.erf(X / 2)):
    ...     compile_phi_into(expr)(x, out)
    ...     print(np.array_equal(out, compile_phi(expr)(x)))
    True
    True
    """
    ufunc = _UFUNCS.get(expr.func) if expr.args == (X,) else None
    if ufunc is not None:

        def phi_into(x, out):
            ufunc(x, out=out)

        return phi_into
    phi = compile_phi(expr)

    def phi_into(x, out):
        np.copyto(out, phi(x))

    return phi_into


def loading_factor(cov: np.ndarray) -> np.ndarray:
    """A factor ``L`` with ``L L^T = cov`` that tolerates singular (PSD) covariances.

    Built from :func:`numpy.linalg.eigh`, clipping round-off negative eigenvalues to zero,
    so deterministic loadings (zero variance) and perfectly correlated ones work.
    """
    w, v = np.linalg.eigh(np.asarray(cov, dtype=float))
    return v * np.sqrt(np.clip(w, 0.0, None))


@dataclass(frozen=True)
class NetworkRealisation:
    """One draw of a network: ``chi``, the loadings and an initial condition.

    Attributes
    ----------
    chi : ndarray, shape (N, N)
        The random part, entries ``N(0, 1/N)`` (multiplied by ``g`` in the dynamics).
    m, n : ndarray, shape (N, R)
        Structure loadings; the structured part is ``m @ n.T / N``.
    input : ndarray, shape (N,)
        The external input vector ``I``.
    x0 : ndarray, shape (N,)
        The initial condition drawn with the network (standard normal per unit).
    seed : int
        The seed that reproduces this draw.
    """

    chi: np.ndarray
    m: np.ndarray
    n: np.ndarray
    input: np.ndarray
    x0: np.ndarray
    seed: int

    @property
    def size(self) -> int:
        return self.chi.shape[0]

    @property
    def overlap(self) -> np.ndarray:
        """Realised overlaps ``(m_k^T n_l / N)_{kl}``, shape (R, R)."""
        return self.m.T @ self.n / self.size

    def connectivity(self, g: float) -> np.ndarray:
        """The dense ``J = g chi + m n^T / N`` (small N, tests and references only)."""
        return g * self.chi + self.m @ self.n.T / self.size


def draw_network(net: GaussianLowRank, N: int, rng: RNGLike = 0) -> NetworkRealisation:
    """Draw ``chi``, the loadings and an initial condition for ``N`` units.

    Order of draws (fixed, so sweeps and single runs share realisations): standard normals
    ``z`` of shape (N, 2R+1) for the loadings, then ``chi``, then ``x0``.
    Loadings are ``means + z @ L.T`` with ``L`` from :func:`loading_factor`.

    Parameters
    ----------
    net : GaussianLowRank
    N : int
        Number of units, >= 1.
    rng : int, numpy.random.Generator or None

    Examples
    --------
    >>> import dmftools as dmf
    >>> real = draw_network(dmf.RankOne(Mm=1.0, Mn=2.0, Sm=0.0, Sn=0.0), N=50, rng=1)
    >>> real.m.shape, float(real.overlap[0, 0])
    ((50, 1), 2.0)
    """
    N = _check_size(N)
    if not isinstance(net, GaussianLowRank):
        raise TypeError(f"net: expected a GaussianLowRank (e.g. from RankOne), got {type(net).__name__}")
    gen, seed = normalise_rng(rng)
    R = net.rank
    z = gen.standard_normal((N, 2 * R + 1))
    loadings = net.means + z @ loading_factor(net.cov).T
    chi = gen.standard_normal((N, N))
    chi *= 1.0 / math.sqrt(N)
    x0 = gen.standard_normal(N)
    return NetworkRealisation(
        chi=chi, m=loadings[:, :R].copy(), n=loadings[:, R : 2 * R].copy(),
        input=loadings[:, 2 * R].copy(), x0=x0, seed=seed,
    )


def _check_size(N) -> int:
    if isinstance(N, (bool, np.bool_)) or not isinstance(N, (int, np.integer)):
        raise TypeError(f"N: expected an integer number of units, got {N!r}")
    if N < 1:
        raise ValueError(f"N: the number of units must be >= 1, got {N}")
    return int(N)
