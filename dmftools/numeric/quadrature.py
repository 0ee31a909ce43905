r"""Quadrature for Gaussian averages: vectorised numpy rules and mpmath references.

The numpy rule is the trapezoid rule on ``z in [-L, L]`` with ``K`` equally spaced nodes
and weights ``h exp(-z^2/2)/sqrt(2 pi)``. For an integrand analytic in a strip of
half-width ``d`` (in ``x``) the error is about

.. math::  \exp\!\big(-2\pi d\,(K-1) / (2 L \sqrt{\Delta})\big) + e^{-L^2/2},

(trapezoid rule for analytic functions; truncation of the Gaussian tail), so the rule
resolves sharp transfer functions at large ``Delta`` where Gauss-Hermite of the same size
does not (THEORY.md section 8: 200-node Gauss-Hermite gives ~1e-9 for ``[tanh'^2]`` at
large ``Delta``). ``tanh`` has poles at ``x = i pi/2``, so ``d = pi/2``. The rule with
``(K+1)/2`` nodes (every second node) is nested in it and gives an error estimate at no
extra cost. The accuracy study behind the defaults is ``docs/accuracy.md``
(script ``derivations/accuracy_study.py``).
"""

from __future__ import annotations

from functools import lru_cache

import mpmath
import numpy as np

__all__ = [
    "DEFAULT_NODES", "DEFAULT_NESTED_NODES", "HALF_WIDTH",
    "trapezoid_rule", "gauss_average", "nested_average",
    "mp_gauss_average", "mp_nested_average",
]

#: Half-width L of the z-interval; the Gaussian tail beyond it is exp(-L^2/2)/L ~ 3e-19.
HALF_WIDTH = 9.0
#: Default nodes for single averages: error < 1e-12 for tanh-like phi up to Delta ~ 100.
DEFAULT_NODES = 801
#: Default nodes per dimension of nested (K x K) averages.
DEFAULT_NESTED_NODES = 201
#: Elements of the largest intermediate array a nested average builds at once.
_CHUNK_ELEMENTS = 1 << 22


@lru_cache(maxsize=32)
def trapezoid_rule(nodes: int, half_width: float = HALF_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``z`` and normalised weights of the truncated Gaussian trapezoid rule.

    Parameters
    ----------
    nodes : int
        Odd number >= 3 of equally spaced nodes on ``[-half_width, half_width]``.
    half_width : float
        ``L``; the neglected Gaussian mass is ``erfc(L/sqrt 2)``.

    Returns
    -------
    z, w : ndarray
        Read-only arrays with ``sum(w) == 1`` (to rounding).

    Examples
    --------
    >>> from dmftools.numeric.quadrature import trapezoid_rule
    >>> z, w = trapezoid_rule(201)
    >>> round(float(w @ z**2), 12)
    1.0
    """
    if isinstance(nodes, bool) or not isinstance(nodes, (int, np.integer)) or nodes < 3 or nodes % 2 == 0:
        raise ValueError(f"nodes: must be an odd integer >= 3, got {nodes!r}")
    if not half_width > 0:
        raise ValueError(f"half_width: must be > 0, got {half_width!r}")
    z = np.linspace(-half_width, half_width, int(nodes))
    w = np.exp(-0.5 * z**2)
    w /= w.sum()  # normalising absorbs h/sqrt(2 pi) and the tiny truncated mass
    z.setflags(write=False)
    w.setflags(write=False)
    return z, w


def _check_variance(name: str, value: np.ndarray) -> None:
    if np.any(value < 0):
        bad = np.asarray(value)[np.asarray(value) < 0]
        raise ValueError(f"{name}: variances must be >= 0, got {bad.size} negative value(s), e.g. {bad.flat[0]:.3g}")
    if np.any(~np.isfinite(value)):
        raise ValueError(f"{name}: must be finite")


def gauss_average(f, mu, delta, nodes: int = DEFAULT_NODES, *, error: bool = False):
    """``[f](mu, delta)`` for arrays ``mu``, ``delta`` of any broadcastable shape.

    Parameters
    ----------
    f : callable
        Vectorised ``f(x)`` (numpy ufunc-like).
    mu, delta : array_like
        Mean and variance (>= 0).
    nodes : int
        Odd number of trapezoid nodes.
    error : bool
        Also return ``|I_K - I_(K+1)/2|``, a conservative error estimate (the coarse rule
        uses every second node).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import erf
    >>> from dmftools.numeric.quadrature import gauss_average
    >>> val = gauss_average(erf, 0.5, 2.0)
    >>> bool(abs(val - erf(0.5 / np.sqrt(1 + 2 * 2.0))) < 1e-14)
    True
    """
    mu, delta = np.broadcast_arrays(np.asarray(mu, dtype=float), np.asarray(delta, dtype=float))
    _check_variance("delta", delta)
    z, w = trapezoid_rule(nodes)
    values = f(mu[..., None] + np.sqrt(delta)[..., None] * z)
    values = np.broadcast_to(values, mu.shape + z.shape)
    result = values @ w
    if not error:
        return result
    coarse = values[..., ::2] @ _coarse_weights(nodes)
    return result, np.abs(result - coarse)


@lru_cache(maxsize=32)
def _coarse_weights(nodes: int) -> np.ndarray:
    z, _ = trapezoid_rule(nodes)
    w = np.exp(-0.5 * z[::2] ** 2)
    return w / w.sum()


def nested_average(f, h, mu, delta0, delta_inf, nodes: int = DEFAULT_NESTED_NODES):
    """``[[f, h]](mu, delta0, delta_inf)`` as a K x K tensor contraction.

    ``x = mu + sqrt(delta_inf) z + sqrt(delta0 - delta_inf) y`` on the product rule;
    the inner averages over ``y`` are contracted first, then their product over ``z``.
    Large batches are processed in chunks to bound memory.

    Examples
    --------
    >>> import numpy as np
    >>> from dmftools.numeric.quadrature import nested_average, gauss_average
    >>> a = nested_average(np.tanh, np.tanh, 0.3, 2.0, 0.0)
    >>> bool(abs(a - gauss_average(np.tanh, 0.3, 2.0) ** 2) < 1e-12)
    True
    """
    mu, delta0, delta_inf = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (mu, delta0, delta_inf)))
    _check_variance("delta0", delta0)
    _check_variance("delta_inf", delta_inf)
    _check_variance("delta0 - delta_inf", delta0 - delta_inf)
    z, w = trapezoid_rule(nodes)
    shape = mu.shape
    flat = [a.reshape(-1) for a in (mu, delta0, delta_inf)]
    out = np.empty(flat[0].size)
    step = max(1, _CHUNK_ELEMENTS // z.size**2)
    for start in range(0, out.size, step):
        m, d0, di = (a[start : start + step, None, None] for a in flat)
        x = m + np.sqrt(di) * z[:, None] + np.sqrt(d0 - di) * z[None, :]
        inner_f = np.broadcast_to(f(x), x.shape) @ w
        inner_h = inner_f if h is f else np.broadcast_to(h(x), x.shape) @ w
        out[start : start + step] = (inner_f * inner_h) @ w
    return out.reshape(shape)


# -- mpmath references -------------------------------------------------------------

def _breakpoints(mu, delta, fine=True):
    """Split points in z: the Gaussian bulk and the region where x = mu + sqrt(delta) z ~ 0.

    ``fine=False`` uses fewer panels (for the inner integral of nested averages)."""
    s = mpmath.sqrt(delta)
    pts = {mpmath.mpf(k) for k in ((-8, -4, -2, 0, 2, 4, 8) if fine else (-4, 0, 4))}
    z0 = -mu / s
    for k in ((-16, -8, -4, -2, -1, 0, 1, 2, 4, 8, 16) if fine else (-4, 0, 4)):
        p = z0 + k / s
        if abs(p) < 12:
            pts.add(p)
    return [mpmath.ninf] + sorted(pts) + [mpmath.inf]


def mp_gauss_average(f, mu, delta, *, fine=True):
    """``[f](mu, delta)`` with mpmath at the current working precision.

    Tanh-sinh quadrature split at the Gaussian bulk and around ``x = 0``, where
    sigmoid-like transfer functions vary on the scale 1 (i.e. ``1/sqrt(delta)`` in z).

    Examples
    --------
    >>> import mpmath
    >>> from dmftools.numeric.quadrature import mp_gauss_average
    >>> mpmath.mp.dps = 30
    >>> v = mp_gauss_average(mpmath.erf, mpmath.mpf(1), mpmath.mpf(3))
    >>> mpmath.nstr(v - mpmath.erf(1 / mpmath.sqrt(7)), 3)
    '0.0'
    """
    mu, delta = mpmath.mpf(mu), mpmath.mpf(delta)
    if delta < 0:
        raise ValueError(f"delta: variances must be >= 0, got {delta}")
    if delta == 0:
        return f(mu)
    s = mpmath.sqrt(delta)
    norm = 1 / mpmath.sqrt(2 * mpmath.pi)
    return norm * mpmath.quad(lambda z: f(mu + s * z) * mpmath.exp(-z * z / 2), _breakpoints(mu, delta, fine))


def mp_nested_average(f, h, mu, delta0, delta_inf):
    """``[[f, h]](mu, delta0, delta_inf)`` with nested mpmath quadrature (slow; references)."""
    mu, delta0, delta_inf = (mpmath.mpf(a) for a in (mu, delta0, delta_inf))
    if delta_inf < 0 or delta0 < delta_inf:
        raise ValueError(f"delta_inf: need 0 <= delta_inf <= delta0, got {delta_inf} and {delta0}")
    inner_var = delta0 - delta_inf
    if delta_inf == 0:
        return mp_gauss_average(f, mu, delta0) * mp_gauss_average(h, mu, delta0)
    s = mpmath.sqrt(delta_inf)

    def outer(z):
        shift = mu + s * z
        a = mp_gauss_average(f, shift, inner_var, fine=False)
        b = a if h is f else mp_gauss_average(h, shift, inner_var, fine=False)
        return a * b * mpmath.exp(-z * z / 2)

    return mpmath.quad(outer, _breakpoints(mu, delta_inf, fine=False)) / mpmath.sqrt(2 * mpmath.pi)
