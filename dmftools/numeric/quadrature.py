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

The mpmath functions (:func:`mp_gauss_average`, :func:`mp_nested_average`, used by the
``mpmath`` backend) use the same idea at the working precision: trapezoid sums on a
lattice in ``x`` whose spacing follows from the strip of analyticity (:data:`MP_STRIP`)
and the number of digits, inner averages of nested ones evaluated per outer node from
cached integrand values (Mehler's series or Gauss-Hermite when one variance is tiny), each
result checked against the rules on every 2nd and 4th node, with tanh-sinh quadrature
(:func:`mpmath.quad`) as the fallback. At 30 digits they agree with closed forms to
~1e-30 and take tens of milliseconds per nested average (nested ``mpmath.quad`` took
minutes); see the mpmath section of ``docs/accuracy.md``.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from functools import lru_cache
from operator import mul

import mpmath
import numpy as np
from mpmath import libmp

__all__ = [
    "DEFAULT_NODES", "DEFAULT_NESTED_NODES", "HALF_WIDTH",
    "trapezoid_rule", "gauss_average", "nested_average",
    "mp_gauss_average", "mp_nested_average", "MP_STRIP",
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
#
# Lattice rules at the working precision (accuracy study: docs/accuracy.md, "mpmath").
# A Gaussian average is a trapezoid sum on a lattice ``x_k = mu + k h`` in activation
# space. For an integrand analytic and bounded (by M) in the strip |Im x| < d, with the
# Gaussian of variance v, the error is below M exp(Lambda(h)), Lambda = -2 pi d/h +
# d^2/(2v) (shift the contour to Im x = d); at small v the Gaussian is the sharpest
# feature and d = 2 pi v/h gives Lambda = -2 pi^2 v/h^2. The lattice is truncated at
# T = sqrt(2L) + 1 standard deviations, L = (dps + 3) ln 10 + ln 1e3.
#
# Nested averages [[f, h]] = E_z A_f A_h with A_f(u) = [f](u, D0 - Dinf): the inner
# averages are lattice sums at every outer node u_j = mu + j H (one shared lattice, or
# one lattice per node when a variance is tiny), each integrand value computed once.
# A_f is entire: shifting its inner contour by b costs exp(b^2/(2 (D0 - Dinf))), so the
# outer sum converges like exp(-pi^2/(H^2 (1/(D0-Dinf) + 1/(2 Dinf)))) even where f has
# poles, and H can be much larger than h. The inner sums are exact integer dot products
# (fixed point, 30 guard bits) done in float64 limbs of 20 bits (products < 2^40, sums
# of < 2^13 of them exact). For small Dinf/D0 Mehler's series is cheaper (one lattice).
#
# Every rule is checked a posteriori with the rules on every 2nd and every 4th node:
# with e2 = |I_h - I_2h|, e4 = |I_h - I_4h| the error of I_h is about e2^3/e4^2 when it
# falls like exp(-c/h) (poles; exact for M exp(-c/h)) and below that when it falls
# faster (exp(-c/h^2), entire integrands), independent of M. The spacing is the largest
# for which the model predicts e2^3/e4^2 <= exp(-L); the result is accepted when the
# measured e2^3/e4^2 <= 10^-(dps-2) [|f|] (room for M up to 1e8: sech^4 has M ~ 2e3,
# (tanh'')^2 ~ 1e5). Otherwise (a closer singularity than assumed) the spacing is halved;
# after _MP_REFINE halvings (kinks: algebraic convergence) mpmath.quad is used instead.

#: Assumed half-width of the strip ``|Im x| < d`` where integrands are analytic and
#: bounded: tanh, log cosh and their derivatives have singularities at ``x = +-i pi/2``
#: (the margin 0.15 bounds ``M``); the sigmoid (poles at ``+-i pi``) and erf (entire) are
#: covered a fortiori. Pass ``strip=`` for transfer functions with closer singularities.
MP_STRIP = math.pi / 2 - 0.15
_MP_GUARD_DIGITS = 3
_MP_LOG_PREFACTOR = math.log(1e3)
#: Accepted predicted error: 10^-(dps - _MP_ACCEPT_DIGITS) relative to [|f|].
_MP_ACCEPT_DIGITS = 2
#: Spacing halvings before falling back to mpmath.quad.
_MP_REFINE = 3
#: Fixed-point guard bits.
_MP_GUARD_BITS = 30
#: Bits per float64 limb of the exact dot products.
_LIMB_BITS = 20
_LIMB_MASK = (1 << _LIMB_BITS) - 1
_LIMB_TERMS = 1 << (53 - 2 * _LIMB_BITS)  # terms per exact float64 sum
#: Lattices (integrand values) kept between calls.
_MP_CACHE_LATTICES = 32

_cache_lock = threading.Lock()
_lattices: OrderedDict = OrderedDict()


def _mp_budget():
    """``(L, T)``: minus the log of the target error, and the truncation in standard deviations."""
    L = (mpmath.mp.dps + _MP_GUARD_DIGITS) * math.log(10.0) + _MP_LOG_PREFACTOR
    return L, math.sqrt(2.0 * L) + 1.0


def _mp_log_error(h, v, strip):
    """``Lambda(h)``: log of the error bound (without M) of the lattice rule with spacing
    ``h`` for variance ``v``. Variances above 1 count as 1 (conservative: the contour term
    ``d^2/(2v)`` only shrinks), so that averages over different variances share lattices."""
    v = min(v, 1.0)
    d = min(strip, 2.0 * math.pi * v / h)
    return -2.0 * math.pi * d / h + d * d / (2.0 * v)


def _mp_outer_log_error(H, v_in, v_out, strip):
    """Outer rule of a nested average: the strip bound, or the entire-function bound of
    the inner averages (contour shift b: growth exp(b^2/v_in) of A_f A_h)."""
    c = 1.0 / v_in + 0.5 / v_out
    return min(_mp_log_error(H, v_out, strip), -math.pi**2 / (H * H * c))


def _largest_step(log_error, L, upper):
    """Largest ``h <= upper`` whose predicted ``e2^3/e4^2 = exp(3 Lambda(2h) - 2 Lambda(4h))``
    is below ``exp(-L)`` (bisection in ``log h``)."""
    def ok(h):
        return 3.0 * log_error(2.0 * h) - 2.0 * log_error(4.0 * h) <= -L

    hi = upper
    if ok(hi):
        return hi
    lo = hi / 2.0
    while not ok(lo):
        hi, lo = lo, lo / 2.0
    for _ in range(30):  # to 2^-30 relative
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _mp_step(v, L, strip):
    """Spacing of a single average (or the inner one of a nested average) of variance ``v``."""
    return _cached_step(min(v, 1.0), L, strip)  # the error model depends on min(v, 1) only


@lru_cache(maxsize=1024)
def _cached_step(v, L, strip):
    return _largest_step(lambda h: _mp_log_error(h, v, strip), L, 2.0 * math.pi * strip / L)


@lru_cache(maxsize=1024)
def _mp_outer_step(v_in, v_out, L, strip):
    """Outer node spacing of a nested average."""
    upper = max(2.0 * math.pi * strip / L, math.pi / math.sqrt(L * (1.0 / v_in + 0.5 / v_out)))
    return _largest_step(lambda H: _mp_outer_log_error(H, v_in, v_out, strip), L, upper)


def _targets():
    """The accepted error ``10^-(dps-2)`` at the caller's precision (call it outside any
    ``extraprec`` block)."""
    return mpmath.mpf(10) ** -(mpmath.mp.dps - _MP_ACCEPT_DIGITS)


def _converged(e2, e4, scale, tol):
    """Accept the rule on every node given its differences ``e2``, ``e4`` from the rules on
    every 2nd and 4th node: the half rule agrees to ``tol`` already, or the error predicted
    from the three, ``e2^3/e4^2``, is below ``tol`` (relative to ``scale``)."""
    tol = tol * scale
    return e2 <= tol or (e2 <= e4 and e2**3 <= tol * e4**2)


@lru_cache(maxsize=64)
def _mp_weights(h_mpf, v_mpf, K, wp):
    """Integers ``floor(exp(-(k h)^2/(2v)) 2^wp)`` for ``k = -K..K`` (``h``, ``v`` as ``_mpf_``)."""
    with mpmath.workprec(wp + 20):
        h, v = mpmath.mpf(h_mpf), mpmath.mpf(v_mpf)
        q = mpmath.exp(-h * h / (2 * v))
        q2 = q * q
        e, r, half = mpmath.mpf(1), q, []
        for _ in range(K + 1):
            half.append(libmp.to_fixed(e._mpf_, wp))
            e *= r
            r *= q2
    return tuple(half[:0:-1] + half)


def _offset(mu, k, h):
    """``mu + k h`` exactly, as an mpf (``mu``, ``h`` as ``_mpf_``)."""
    return _points(mu, h, k, k)[0]


def _points(mu, h, lo, hi):
    """``mu + k h`` for ``k = lo..hi`` as mpf (``mu``, ``h`` as ``_mpf_``), computed exactly
    in integers and rounded to 20 bits beyond the working precision."""
    make, prec = mpmath.mp.make_mpf, mpmath.mp.prec + 20
    if not h[1]:
        return [make(mu)] * (hi - lo + 1)
    hs, hm, he = h[0], h[1], h[2]
    hm = -hm if hs else hm
    if not mu[1]:
        base, step, e = 0, hm, he
    else:
        ms, mm, me = mu[0], mu[1], mu[2]
        mm = -mm if ms else mm
        e = min(me, he)
        base, step = mm << (me - e), hm << (he - e)
    return [make(libmp.from_man_exp(base + k * step, e, prec, "n")) for k in range(lo, hi + 1)]


def _evaluate(f, x):
    v = f(x)
    v = v if isinstance(v, mpmath.mpf) else mpmath.mpf(v)
    if not mpmath.isfinite(v):
        raise _NotFinite
    return v


class _NotFinite(ArithmeticError):
    pass


def _lattice_values(f, mu, h, lo, hi):
    """``f(mu + k h)`` for ``k = lo..hi`` (mpf list), cached per (f, precision, mu, h)."""
    try:
        hash(f)
    except TypeError:  # not cacheable
        return [_evaluate(f, x) for x in _points(mu, h, lo, hi)]
    key = (f, mpmath.mp.prec, mu, h)
    with _cache_lock:
        store = _lattices.get(key)
        if store is None:
            store = _lattices[key] = {}
            coarse = _lattices.get((f, mpmath.mp.prec, mu, libmp.mpf_mul(h, libmp.from_int(2))))
            if coarse is not None:  # refinement: every second point is known
                store.update({2 * k: v for k, v in coarse.items()})
            while len(_lattices) > _MP_CACHE_LATTICES:
                _lattices.popitem(last=False)
        else:
            _lattices.move_to_end(key)
    missing = [k for k in range(lo, hi + 1) if k not in store]
    if missing:
        first = missing[0]
        xs = _points(mu, h, first, missing[-1])
        for k in missing:
            store[k] = _evaluate(f, xs[k - first])
    return [store[k] for k in range(lo, hi + 1)]


def _to_fixed(values, wp):
    """Integers ``values * 2^shift`` with ``|int| < 2^wp``, and ``shift``."""
    mags = [m[2] + m[3] for m in (v._mpf_ for v in values) if m[1]]
    shift = wp - (max(mags) if mags else 0)
    return [libmp.to_fixed(v._mpf_, shift) for v in values], shift


def _limbs(ints, n):
    """Signed float64 limbs ``(n, len)`` of integers with ``|int| < 2^(n LIMB_BITS)``."""
    a = np.array(ints, dtype=object)
    sign = np.where(a < 0, -1.0, 1.0)
    mag = np.abs(a)
    out = np.empty((n, len(ints)))
    for k in range(n):
        out[k] = ((mag >> (_LIMB_BITS * k)) & _LIMB_MASK).astype(float) * sign
    return out


def _n_limbs(wp):
    return -(-(wp + 1) // _LIMB_BITS)  # weights reach 2^wp


def _thinned(W, center):
    """``W`` with the entries of odd, and of non-multiple-of-4, offsets from ``center`` zeroed:
    the weights of the rules on every 2nd and every 4th node."""
    return tuple(tuple(w if (k - center) % stride == 0 else 0 for k, w in enumerate(W)) for stride in (2, 4))


@lru_cache(maxsize=64)
def _mp_inner_weights(h_mpf, v_mpf, K, wp):
    """Inner weights (rules on every, every 2nd, every 4th node) and their limbs ``(n, 2K+1, 3)``."""
    W = _mp_weights(h_mpf, v_mpf, K, wp)
    rules = (W,) + _thinned(W, K)
    n = _n_limbs(wp)
    limbs = np.stack([_limbs(r, n) for r in rules], axis=-1)
    limbs.setflags(write=False)
    return rules, limbs


def _inner_sums(R, C, with_abs=True):
    """Exact integer sums ``sum_k R[j, k] C[k, c]`` and (``with_abs``) ``sum_k |R[j, k]| C[k, 0]``.

    ``R``: signed limbs ``(n_limbs, n, m)`` of the integrand values (one row per outer
    node), ``C``: limbs ``(n_limbs, m, c)`` of non-negative weights. Every limb product is
    below 2^40, so float64 sums of up to 2^13 of them are exact. Returns object arrays
    ``(n, c)`` and ``(n,)`` (or None) of Python ints."""
    nl, n, m = R.shape
    c = C.shape[2]
    acc = np.zeros((2 * nl - 1, n, c + 1), dtype=np.int64)  # last column: |R| with C[..., 0]
    for start in range(0, m, _LIMB_TERMS):
        stop = min(m, start + _LIMB_TERMS)
        Cc = np.ascontiguousarray(C[:, start:stop, :].transpose(1, 0, 2))  # (m, nl, c)
        Rc = np.ascontiguousarray(R[:, :, start:stop]).reshape(nl * n, stop - start)
        P = (Rc @ Cc.reshape(stop - start, nl * c)).reshape(nl, n, nl, c).astype(np.int64)
        for a in range(nl):
            acc[a : a + nl, :, :c] += P[a].transpose(1, 0, 2)
        if with_abs:
            P = (np.abs(Rc) @ Cc[:, :, 0]).reshape(nl, n, nl).astype(np.int64)
            for a in range(nl):
                acc[a : a + nl, :, c] += P[a].T
    total = np.zeros((n, c + 1), dtype=object)
    for d in range(2 * nl - 1):
        total += acc[d].astype(object) << (_LIMB_BITS * d)
    return total[:, :c], (total[:, c] if with_abs else None)


def _ratio(num, den, shift=0):
    """``num / (den 2^shift)`` as an mpf."""
    return mpmath.mpf(libmp.from_man_exp(int(num), -shift)) / den


def _lattice_gauss(f, mu, v, strip):
    """``[f](mu, v)`` by the checked lattice rule, or None if it does not verify."""
    L, T = _mp_budget()
    targets = _targets()
    s = math.sqrt(float(v))
    wp = mpmath.mp.prec + _MP_GUARD_BITS
    h = _mp_step(float(v), L, strip)
    for _ in range(_MP_REFINE + 1):
        hm = mpmath.mpf(h)._mpf_
        K = math.ceil(T * s / h)
        F, shift = _to_fixed(_lattice_values(f, mu._mpf_, hm, -K, K), wp)
        W = _mp_weights(hm, v._mpf_, K, wp)
        with mpmath.extraprec(20):
            value, half, quarter = (_ratio(sum(map(mul, r, F)), sum(r), shift) for r in (W,) + _thinned(W, K))
            scale = _ratio(sum(map(mul, W, map(abs, F))), sum(W), shift)
            if _converged(abs(value - half), abs(value - quarter), scale, targets):
                return +value
        h /= 2
    return None


def _disc(J, H, s_out, h, s_in, T):
    """Inner half-widths ``K_j`` (in steps ``h``) at the outer nodes ``j = -J..J`` (spacing
    ``H``) within the disc ``z_out^2 + z_in^2 <= T^2``: outside it the joint Gaussian weight
    is below exp(-T^2/2), so integrand values there are not needed."""
    return [int(math.sqrt(max(T * T - (j * H / s_out) ** 2, 0.0)) * s_in / h) for j in range(-J, J + 1)]


def _nested_layout(s_in, s_out, h_in, H_out, T):
    """``(shared, h, m, K, J, evaluations)``: one lattice of spacing ``h`` with outer nodes
    every ``m``-th point, or (``shared=False``) ``2J+1`` outer nodes with a lattice of
    ``2K+1`` points each (fewer within the disc), whichever needs fewer integrand
    evaluations."""
    h = min(h_in, H_out)
    m = max(1, int(H_out / h))
    K, J = math.ceil(T * s_in / h), math.ceil(T * s_out / (m * h))
    K_sep, J_sep = math.ceil(T * s_in / h_in), math.ceil(T * s_out / H_out)
    n_shared = 2 * min(J * m + K, math.ceil(T * math.hypot(s_in, s_out) / h)) + 1
    n_sep = sum(2 * k + 1 for k in _disc(J_sep, H_out, s_out, h_in, s_in, T))
    if n_shared <= n_sep:
        return True, h, m, K, J, n_shared
    return False, h_in, m, K_sep, J_sep, n_sep


def _mehler_terms(rho, L):
    """Terms ``n = 0..N`` of Mehler's series with ``rho^(N+1) <= exp(-L)``."""
    return max(1, math.ceil(L / -math.log(rho)) - 1)


def _lattice_mehler(f, g, mu, d0, rho, strip):
    """``[[f, g]](mu, d0, rho d0)`` by Mehler's formula, or None if it does not verify.

    The pair ``(x, x')`` averaged over is bivariate normal with variances ``d0`` and
    correlation ``rho``, so ``[[f, g]] = sum_n rho^n/n! [f He_n][g He_n]`` (Hermite
    coefficients in ``z = (x - mu)/sqrt(d0)``); the tail after ``N`` terms is below
    ``rho^(N+1) sqrt([f^2][g^2])`` (Cauchy-Schwarz). Cheap when ``rho`` is small."""
    L, T = _mp_budget()
    targets = _targets()
    wp = mpmath.mp.prec + _MP_GUARD_BITS
    q = wp + 20
    fd0 = float(d0)
    s = math.sqrt(fd0)
    N = _mehler_terms(float(rho), L)
    funcs = (f,) if g is f else (f, g)
    h = _mp_step(fd0, L, strip)
    for _ in range(_MP_REFINE + 1):
        hm = mpmath.mpf(h)._mpf_
        K = math.ceil(T * s / h)
        W = _mp_weights(hm, d0._mpf_, K, wp)
        rules = (W,) + _thinned(W, K)
        with mpmath.workprec(q + 20):
            r = mpmath.mpf(hm) / mpmath.sqrt(d0)
            Z = [libmp.to_fixed((k * r)._mpf_, q) for k in range(-K, K + 1)]
        data = []  # per function: weighted values per rule, shift, [|f|]
        for fn in funcs:
            F, shift = _to_fixed(_lattice_values(fn, mu._mpf_, hm, -K, K), wp)
            data.append(([list(map(mul, rule, F)) for rule in rules], shift,
                         _ratio(sum(map(mul, W, map(abs, F))), sum(W), shift)))
        sums = [[[] for _ in rules] for _ in funcs]  # [function][rule][n]: sum_k G_k He_n(z_k)
        prev, cur = None, [1 << q] * len(Z)  # He_0, then He_n in fixed point (q bits)
        for n in range(N + 1):
            if n == 1:
                prev, cur = cur, Z
            elif n > 1:
                prev, cur = cur, [(z * c >> q) - (n - 1) * p for z, c, p in zip(Z, cur, prev)]
            for (G, _, _), per_rule in zip(data, sums):
                for Gr, out in zip(G, per_rule):
                    out.append(sum(map(mul, Gr, cur)))
        with mpmath.extraprec(20):
            results = []
            for i, rule in enumerate(rules):
                norm = sum(rule)
                cf = [_ratio(c, norm, data[0][1] + q) for c in sums[0][i]]
                cg = cf if g is f else [_ratio(c, norm, data[-1][1] + q) for c in sums[-1][i]]
                total, factor = mpmath.mpf(0), mpmath.mpf(1)
                for n in range(N + 1):
                    total += factor * cf[n] * cg[n]
                    factor = factor * rho / (n + 1)
                results.append(total)
            value, half, quarter = results
            if _converged(abs(value - half), abs(value - quarter), data[0][2] * data[-1][2], targets):
                return +results[0]
        h /= 2
    return None


@lru_cache(maxsize=16)
def _gauss_hermite(n, prec):
    """Nodes and weights (summing to 1) of the n-point Gauss-Hermite rule for the standard
    normal density, at ``prec`` bits: numpy's nodes polished by Newton's method on
    ``He_n`` (three-term recurrence), weights ``n!/(n He_(n-1)(x))^2``."""
    with mpmath.workprec(prec + 20):
        nodes, weights = [], []
        for x0 in np.polynomial.hermite_e.hermegauss(n)[0]:
            x = mpmath.mpf(float(x0))
            for _ in range(100):
                p0, p1 = mpmath.mpf(1), x
                for k in range(1, n):
                    p0, p1 = p1, x * p1 - k * p0
                step = p1 / (n * p0)  # He_n / He_n'
                x -= step
                if abs(step) <= mpmath.mpf(2) ** -(prec + 10) * (1 + abs(x)):
                    break
            p0, p1 = mpmath.mpf(1), x
            for k in range(1, n - 1):
                p0, p1 = p1, x * p1 - k * p0
            nodes.append(x)
            weights.append(mpmath.factorial(n) / (n * (p1 if n > 1 else 1)) ** 2)
        total = mpmath.fsum(weights)
        return tuple(+x for x in nodes), tuple(+(w / total) for w in weights)


def _gh_nodes(s_in, L, strip):
    """Gauss-Hermite nodes for the inner average of variance ``s_in^2``: the error of the
    n-point rule is below M n! (s_in/d)^(2n) for f analytic in the disc of radius d
    around each point (Cauchy's estimate of f^(2n)); None if more than 40 are needed."""
    r = math.log(s_in / strip)
    for n in range(2, 41):
        if math.lgamma(n + 1) + 2 * n * r <= -L:
            return n
    return None


def _lattice_nested(f, g, mu, v_in, v_out, strip):
    """``[[f, g]](mu, v_in + v_out, v_out)`` by the checked lattice rule, or None."""
    L, T = _mp_budget()
    targets = _targets()
    wp = mpmath.mp.prec + _MP_GUARD_BITS
    nl = _n_limbs(wp)
    fv_in, fv_out = float(v_in), float(v_out)
    s_in, s_out = math.sqrt(fv_in), math.sqrt(fv_out)
    h_in = _mp_step(fv_in, L, strip)
    H_out = _mp_outer_step(fv_in, fv_out, L, strip)
    funcs = (f,) if g is f else (f, g)
    n_gh = _gh_nodes(s_in, L, strip)
    for _ in range(_MP_REFINE + 1):
        # layout: one shared lattice (spacing h, outer nodes every m-th point), one lattice
        # per outer node, or Gauss-Hermite inner rules (tiny inner variance: near the onset
        # of chaos), whichever needs the fewest integrand evaluations
        shared, h, m, K, J, n_eval = _nested_layout(s_in, s_out, h_in, H_out, T)
        J_gh = math.ceil(T * s_out / H_out)
        hermite = n_gh is not None and (2 * J_gh + 1) * n_gh < 0.7 * n_eval
        if hermite:
            shared, J = False, J_gh
        rows = []  # per function: limbs (nl, 2J+1, inner nodes) of the values at each outer node, shift
        # values outside the disc z_out^2 + z_in^2 <= T^2 (|x - mu| <= T sqrt(delta0) on a
        # shared lattice) are left zero
        if shared:
            hm = mpmath.mpf(h)._mpf_
            Hm = libmp.mpf_mul(libmp.from_int(m), hm)
            span = J * m + K
            inside = min(span, math.ceil(T * math.hypot(s_in, s_out) / h))
            pad = [0] * (span - inside)
            abs_values = []
            for fn in funcs:
                F, shift = _to_fixed(_lattice_values(fn, mu._mpf_, hm, -inside, inside), wp)
                abs_values.append(F)
                windows = np.lib.stride_tricks.sliding_window_view(_limbs(pad + F + pad, nl), 2 * K + 1, axis=1)
                rows.append((windows[:, ::m][:, : 2 * J + 1], shift))
            abs_values *= 2 if len(funcs) == 1 else 1
            inner, C = _mp_inner_weights(hm, v_in._mpf_, K, wp)
        elif hermite:
            Hm = mpmath.mpf(H_out)._mpf_
            xi, omega = _gauss_hermite(n_gh, mpmath.mp.prec)
            offsets = [mpmath.sqrt(v_in) * x for x in xi]
            nodes = [_offset(mu._mpf_, j, Hm) for j in range(-J, J + 1)]
            gh_values = []
            for fn in funcs:
                vals = [[_evaluate(fn, u + o) for o in offsets] for u in nodes]
                gh_values.append(vals)
                F, shift = _to_fixed([v for row in vals for v in row], wp)
                rows.append((_limbs(F, nl).reshape(nl, 2 * J + 1, n_gh), shift))
            W = tuple(libmp.to_fixed(w._mpf_, wp) for w in omega)
            inner = (W, W, W)
            limbs = _limbs(W, nl)
            C = np.stack([limbs] * 3, axis=-1)
        else:
            hm, Hm = mpmath.mpf(h)._mpf_, mpmath.mpf(H_out)._mpf_
            half_widths = _disc(J, H_out, s_out, h, s_in, T)
            for fn in funcs:
                vals = []
                for j, k in zip(range(-J, J + 1), half_widths):
                    u = _offset(mu._mpf_, j, Hm)._mpf_
                    vals.append([_evaluate(fn, x) for x in _points(u, hm, -k, k)])
                F, shift = _to_fixed([v for row in vals for v in row], wp)
                padded, start = [], 0
                for row in vals:
                    pad = [0] * (K - len(row) // 2)
                    padded += pad + F[start : start + len(row)] + pad
                    start += len(row)
                rows.append((_limbs(padded, nl).reshape(nl, 2 * J + 1, 2 * K + 1), shift))
            inner, C = _mp_inner_weights(hm, v_in._mpf_, K, wp)
        E = _mp_weights(Hm, v_out._mpf_, J, wp)
        outer = (E,) + _thinned(E, J)
        sums = []  # per function: inner sums per outer node for each inner rule, and of |f|
        for R, shift in rows:
            signed, absolute = _inner_sums(R, C, with_abs=not shared)
            sums.append(([signed[:, i] for i in range(3)], absolute, shift))
        (a, a_abs, shift_a), (b, b_abs, shift_b) = sums[0], sums[-1]
        shift = shift_a + shift_b
        den = [sum(w) for w in inner]
        e_sum = [sum(e) for e in outer]
        if shared:
            # scale [|f|][|g|] (x ~ N(mu, delta0)) from the lattice values
            G = _mp_weights(hm, (v_in + v_out)._mpf_, inside, wp)
            a_abs, b_abs = (sum(map(mul, G, map(abs, F))) for F in abs_values)

        def combine(i, o, x=None, y=None):
            x = a[i] if x is None else x
            y = b[i] if y is None else y
            return _ratio(sum(map(mul, outer[o], x * y)), e_sum[o] * den[i] * den[i], shift)

        def inner_difference(i):
            # sum_j E_j |A_f A_g - A_f^(i) A_g^(i)|: node by node, so that errors of the
            # thinned inner rules cannot cancel between outer nodes (their phase can
            # alternate with j)
            d0, di = den[0] ** 2, den[i] ** 2
            terms = abs(a[0] * b[0] * di - a[i] * b[i] * d0)
            return _ratio(sum(map(mul, E, terms)), e_sum[0] * d0 * di, shift)

        with mpmath.extraprec(20):
            value = combine(0, 0)
            if shared:
                scale = _ratio(a_abs * b_abs, sum(G) ** 2, shift)
            else:
                scale = combine(0, 0, a_abs, b_abs)
            ok_in = _converged(inner_difference(1), inner_difference(2), scale, targets)
            ok_out = _converged(abs(value - combine(0, 1)), abs(value - combine(0, 2)), scale, targets)
        if hermite and ok_out:
            # the Gauss-Hermite inner averages are checked against the lattice rule at a
            # few outer nodes across the range
            for j in sorted({0, J // 3, 2 * J // 3, -(J // 3), -(2 * J // 3)}):
                for fn, vals in zip(funcs, gh_values):
                    row = vals[j + J]
                    reference = _lattice_gauss(fn, nodes[j + J], v_in, strip)
                    with mpmath.extraprec(20):
                        approx = mpmath.fdot(omega, row)
                        size = mpmath.fdot(omega, [abs(v) for v in row])
                    if reference is None or abs(approx - reference) > targets * size:
                        ok_in = False
            if not ok_in:
                n_gh = None  # use lattices instead
                continue
        if ok_in and ok_out:
            return +value
        if not ok_in:
            h_in /= 2
        if not ok_out:
            H_out /= 2
    return None


def _lattice_nested_dispatch(f, h, mu, delta0, delta_inf, strip):
    """Mehler's series when it needs fewer integrand evaluations (small ``delta_inf/delta0``,
    e.g. homogeneous chaos with ``delta_inf ~ 0``), else the nested lattice rule."""
    L, T = _mp_budget()
    v_in, v_out = float(delta0 - delta_inf), float(delta_inf)
    rho = delta_inf / delta0
    h_in = _mp_step(v_in, L, strip)
    nested_cost = _nested_layout(math.sqrt(v_in), math.sqrt(v_out), h_in,
                                 _mp_outer_step(v_in, v_out, L, strip), T)[5]
    if float(rho) < 0.5:
        n_terms = _mehler_terms(float(rho), L) + 1
        # each term costs about a tenth of an integrand evaluation per lattice point
        mehler_cost = (2 * math.ceil(T * math.sqrt(float(delta0)) / _mp_step(float(delta0), L, strip)) + 1) \
            * (1 + 0.1 * n_terms)
        if mehler_cost < nested_cost:
            return _lattice_mehler(f, h, mu, delta0, rho, strip)
    return _lattice_nested(f, h, mu, delta0 - delta_inf, delta_inf, strip)


def _check_strip(strip):
    if strip is None:
        return MP_STRIP
    try:
        value = float(strip)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(strip, bool) or not 0 < value < math.inf:
        raise ValueError(f"strip: must be a positive finite number, got {strip!r}")
    return value


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


def _quad_gauss(f, mu, delta, fine=True):
    s = mpmath.sqrt(delta)
    norm = 1 / mpmath.sqrt(2 * mpmath.pi)
    return norm * mpmath.quad(lambda z: f(mu + s * z) * mpmath.exp(-z * z / 2), _breakpoints(mu, delta, fine))


def _quad_nested(f, h, mu, delta0, delta_inf):
    inner_var = delta0 - delta_inf
    s = mpmath.sqrt(delta_inf)

    def outer(z):
        shift = mu + s * z
        a = _quad_gauss(f, shift, inner_var, fine=False)
        b = a if h is f else _quad_gauss(h, shift, inner_var, fine=False)
        return a * b * mpmath.exp(-z * z / 2)

    return mpmath.quad(outer, _breakpoints(mu, delta_inf, fine=False)) / mpmath.sqrt(2 * mpmath.pi)


_MP_METHODS = ("lattice", "quad")


def _check_method(method):
    if method not in _MP_METHODS:
        raise ValueError(f"method: must be one of {_MP_METHODS}, got {method!r}")


def mp_gauss_average(f, mu, delta, *, fine=True, strip=None, method="lattice"):
    """``[f](mu, delta)`` with mpmath at the current working precision.

    Parameters
    ----------
    f : callable
        ``f(x)`` for an mpf ``x`` (pure: values are cached per lattice).
    mu, delta : number
        Mean and variance (>= 0).
    fine : bool
        Panels of the tanh-sinh rule (``method="quad"`` and the fallback).
    strip : float, optional
        Half-width of the strip ``|Im x| < strip`` where ``f`` is analytic and bounded
        (default :data:`MP_STRIP`, for tanh-like transfer functions).
    method : {"lattice", "quad"}
        ``"lattice"``: trapezoid rule on a lattice in ``x`` with the spacing chosen from
        ``strip`` and the precision, accurate to about ``10^-(dps+3)`` relative to
        ``[|f|]``; checked against the rule on every second node and refined, or
        replaced by ``"quad"`` when the check fails (integrands with kinks or closer
        singularities). ``"quad"``: tanh-sinh (:func:`mpmath.quad`) split at the
        Gaussian bulk and around ``x = 0``.

    Examples
    --------
    >>> import mpmath
    >>> from dmftools.numeric.quadrature import mp_gauss_average
    >>> mpmath.mp.dps = 30
    >>> v = mp_gauss_average(mpmath.erf, mpmath.mpf(1), mpmath.mpf(3))
    >>> abs(v - mpmath.erf(1 / mpmath.sqrt(7))) < mpmath.mpf(10) ** -28
    True
    """
    _check_method(method)
    strip = _check_strip(strip)
    mu, delta = mpmath.mpf(mu), mpmath.mpf(delta)
    if not (mpmath.isfinite(mu) and mpmath.isfinite(delta)):
        raise ValueError("mu, delta: must be finite")
    if delta < 0:
        raise ValueError(f"delta: variances must be >= 0, got {delta}")
    if delta == 0:
        return f(mu)
    if method == "lattice" and float(delta) > 0:
        try:
            value = _lattice_gauss(f, mu, delta, strip)
        except _NotFinite:
            value = None
        if value is not None:
            return value
    return _quad_gauss(f, mu, delta, fine)


def mp_nested_average(f, h, mu, delta0, delta_inf, *, strip=None, method="lattice"):
    """``[[f, h]](mu, delta0, delta_inf)`` with mpmath at the current working precision.

    ``method="lattice"`` (default): inner averages on a lattice in ``x``, one per outer
    node of a trapezoid rule whose spacing uses that the inner averages are entire
    functions; about ``(2 T)(sigma_in + sigma_out)/h`` integrand evaluations (``h ~ 0.1``
    at 30 digits), accurate to about ``10^-(dps+3)`` relative to ``[[|f|, |h|]]`` and
    checked a posteriori (see :func:`mp_gauss_average` for ``strip`` and the fallback).
    ``method="quad"``: nested :func:`mpmath.quad` (slow: minutes at 30 digits).

    Examples
    --------
    >>> import mpmath
    >>> from dmftools.numeric.quadrature import mp_nested_average
    >>> mpmath.mp.dps = 30
    >>> a = mpmath.sqrt(mpmath.pi) / 2
    >>> erf_a = lambda x: mpmath.erf(a * x)
    >>> v = mp_nested_average(erf_a, erf_a, 0, 2, 1)
    >>> exact = 2 / mpmath.pi * mpmath.asin(2 * a**2 * 1 / (1 + 2 * a**2 * 2))
    >>> abs(v - exact) < mpmath.mpf(10) ** -28
    True
    """
    _check_method(method)
    strip = _check_strip(strip)
    mu, delta0, delta_inf = (mpmath.mpf(a) for a in (mu, delta0, delta_inf))
    if not all(mpmath.isfinite(a) for a in (mu, delta0, delta_inf)):
        raise ValueError("mu, delta0, delta_inf: must be finite")
    if delta_inf < 0 or delta0 < delta_inf:
        raise ValueError(f"delta_inf: need 0 <= delta_inf <= delta0, got {delta_inf} and {delta0}")
    inner_var = delta0 - delta_inf
    if delta_inf == 0:
        a = mp_gauss_average(f, mu, delta0, strip=strip, method=method)
        return a * (a if h is f else mp_gauss_average(h, mu, delta0, strip=strip, method=method))
    if inner_var == 0:
        return mp_gauss_average(_Product(f, h), mu, delta0, strip=strip, method=method)
    if method == "lattice" and float(inner_var) > 0 and float(delta_inf) > 0:
        try:
            value = _lattice_nested_dispatch(f, h, mu, delta0, delta_inf, strip)
        except _NotFinite:
            value = None
        if value is not None:
            return value
    return _quad_nested(f, h, mu, delta0, delta_inf)


class _Product:
    """``x -> f(x) h(x)``, hashable by its factors (lattice values are cached by function)."""

    __slots__ = ("f", "h")

    def __init__(self, f, h):
        self.f, self.h = f, h

    def __call__(self, x):
        a = self.f(x)
        return a * a if self.h is self.f else a * self.h(x)

    def __eq__(self, other):
        return isinstance(other, _Product) and other.f is self.f and other.h is self.h

    def __hash__(self):
        return hash((id(self.f), id(self.h)))
