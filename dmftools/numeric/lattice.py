r"""Adaptive quadrature for Gaussian averages: one lattice in activation space per point.

The fixed rules of :mod:`dmftools.numeric.quadrature` use the same number of nodes for
every variance, which is wasteful at small ``Delta`` and, for nested averages, costs
``K^2`` evaluations of the transfer function per point. The rules here choose the nodes
per point from two length scales:

- the transfer function's own scale: the trapezoid rule for a function analytic in the
  strip ``|Im x| < d`` has error ``~ exp(-2 pi d / h)`` for spacing ``h`` in ``x``; for
  ``tanh``, ``log cosh`` and their derivatives ``d = pi/2``, so ``h = 0.3`` would give
  ``~5e-15``; the default :data:`SPACING` ``= 0.2`` leaves room for the larger prefactors
  of higher derivatives (poles of higher order);
- the Gaussian's scale: spacing ``<= 0.5`` standard deviations (:data:`Z_SPACING`)
  resolves the weight itself to ``exp(-2 pi^2 / 0.5^2) ~ 1e-34``.

A single average ``[f](mu, Delta)`` therefore uses ``2 ceil(L / h_z) + 1`` nodes with
``h_z = min(0.5, h / sqrt(Delta))`` and ``L = 9`` (37 nodes at small ``Delta``, ~451 at
``Delta = 25``).

For a nested average ``[[f, h]](mu, Delta_0, Delta_inf) = int Dz A_f(z) A_h(z)`` with
``A_f(z) = [f](mu + r z, s^2)``, ``r = sqrt(Delta_inf)``, ``s = sqrt(Delta_0 - Delta_inf)``,
the inner and outer rules are put on *one* lattice ``u_k = mu + k h`` in activation space:
every integrand is evaluated once per lattice point (``O(K)`` transcendental calls instead
of ``O(K^2)``) and the inner averages are a discrete Gaussian convolution. The inner
averages are Gaussian-smoothed (entire) functions of ``z``, so the outer sum needs them
only at every ``m``-th lattice point (:data:`OUTER_Z`): at large variances most of the
convolution is skipped.

Two limits get their own rules. ``Delta_inf -> 0`` (e.g. the homogeneous chaotic state,
``Delta_inf = 0`` exactly): Mehler's series ``sum_k rho^k c_k(f) c_k(h)`` in
``rho = Delta_inf / Delta_0`` with Hermite coefficients from one single-average rule
(:data:`MEHLER_RHO`); at ``rho = 0`` the product of two single averages. Otherwise, when
one standard deviation is below ``THIN_FRACTION * h`` (near the onset of chaos ``Delta_0 -
Delta_inf -> 0``), that dimension is integrated by 13-point Gauss-Hermite (exact to
``O(s^26)``).

All integrands of one group of averages are passed as one multi-output callable, so
shared subexpressions (``tanh(x)`` in ``tanh``, ``tanh'``, ``tanh''``) are computed once.
The accuracy of these rules against mpmath (30 digits) and closed forms is tested in
``tests/test_lattice.py`` (every path) and tabulated in ``docs/accuracy.md``. With numba
installed, the compiled equations evaluate the same rules in compiled kernels
(``kernels=``, :mod:`dmftools.numeric._jit`); this module's numpy implementation is their
reference (``tests/test_jit.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .quadrature import HALF_WIDTH

__all__ = ["SPACING", "Z_SPACING", "single_averages", "nested_averages", "check_spacing"]

#: Default lattice spacing in activation space (tanh-like transfer functions: ~5e-15).
SPACING = 0.2
#: Largest spacing in units of a standard deviation (resolves the Gaussian weight).
Z_SPACING = 0.5
#: Standard deviations below ``THIN_FRACTION * spacing`` are integrated by Gauss-Hermite.
THIN_FRACTION = 0.5
#: Gauss-Hermite nodes for a thin dimension.
GH_NODES = 13
#: Largest outer spacing in z is ``OUTER_Z / sqrt(1 + 2 r^2 / s^2)`` (outer standard
#: deviation ``r = sqrt(Delta_inf)``, inner ``s = sqrt(Delta_0 - Delta_inf)``). The outer
#: integrand ``phi(z) A(z) B(z)`` grows at most like ``exp(y^2 (1/2 + r^2/s^2))`` at
#: ``Im z = y`` (the inner averages are Gaussian-smoothed, hence entire), so the trapezoid
#: error is ``~ exp(-2 pi^2 / (h_z^2 (1 + 2 r^2 / s^2)))``: ``exp(-2 pi^2 / 0.7^2) ~ 3e-18``.
#: The inner convolutions are then evaluated only at every ``m``-th lattice point.
OUTER_Z = 0.7
#: Points with ``sqrt(Delta_inf)`` below the thin threshold and ``Delta_inf / Delta_0``
#: at most this use Mehler's series (at most 14 terms for 1e-17).
MEHLER_RHO = 0.05
#: Largest outer stride ``m``.
MAX_STRIDE = 16
#: Elements of the largest intermediate array built at once.
_CHUNK_ELEMENTS = 1 << 21
#: Padding (elements) a wider row may add to a chunk before it starts a new one instead.
_PAD_ELEMENTS = 1 << 14
#: Most lattice nodes one point may need (standard deviations up to ~4.6e4 at spacing 0.2).
MAX_NODES = 1 << 22


def check_spacing(spacing) -> float:
    """Validate a lattice spacing (``0 < spacing <= 1``)."""
    if isinstance(spacing, bool) or not isinstance(spacing, (int, float, np.floating, np.integer)):
        raise TypeError(f"spacing: expected a number, got {type(spacing).__name__}")
    if not (0 < float(spacing) <= 1.0):
        raise ValueError(f"spacing: must be in (0, 1], got {spacing!r}")
    return float(spacing)


@lru_cache(maxsize=4)
def _gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / w.sum()


@lru_cache(maxsize=64)
def _pair_arrays(pairs: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``pairs`` as an (P, 2) integer array for the compiled kernels, and the integrands used."""
    p = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return p, np.unique(p)


def _as_outputs(values, n_out, shape):
    out = []
    for v in (values if n_out > 1 else [values]):
        if not (isinstance(v, np.ndarray) and v.shape == shape and v.dtype == np.float64):
            v = np.broadcast_to(np.asarray(v, dtype=float), shape)  # constants, other dtypes
        out.append(v)
    return out


def _flat(*arrays):
    """Broadcast shape and the arrays as contiguous 1-D float arrays of that size."""
    first = arrays[0]
    if all(type(a) is np.ndarray and a.ndim == 1 and a.dtype == np.float64 and a.shape == first.shape
           and a.flags.c_contiguous for a in arrays):
        return first.shape, list(arrays)  # the solvers' case: no copies, no broadcasting
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in arrays))
    return arrays[0].shape, [np.ascontiguousarray(a.reshape(-1)) for a in arrays]


def _check(name, value):
    if value.size == 0:
        return
    lo, hi = value.min(), value.max()  # NaN propagates: one cheap pass each in the common case
    if np.isfinite(lo) and np.isfinite(hi) and lo >= 0:
        return
    if np.any(~np.isfinite(value)):
        raise ValueError(f"{name}: must be finite (got NaN or inf)")
    if np.any(value < 0):
        bad = value[value < 0]
        raise ValueError(f"{name}: variances must be >= 0, got {bad.size} negative value(s), e.g. {bad[0]:.3g}")


def _check_nodes(name, std, spacing):
    """A clear error instead of an allocation that cannot succeed: ``std`` needs about
    ``2 HALF_WIDTH std / spacing`` nodes."""
    if std.size == 0:
        return
    widest = float(std.max())
    nodes = 2 * HALF_WIDTH * widest / spacing + 1
    if nodes > MAX_NODES:
        limit = ((MAX_NODES - 1) * spacing / (2 * HALF_WIDTH)) ** 2
        raise ValueError(f"{name}: a variance of {widest**2:.3g} needs {nodes:.3g} lattice nodes per point at "
                         f"spacing {spacing:g}; at most {MAX_NODES} are allowed (variances up to {limit:.3g})")


def _mirrored(half):
    """Rows ``[h_K, ..., h_1, h_0, h_1, ..., h_K]`` from their right halves ``h_0 .. h_K``."""
    return np.concatenate([half[:, :0:-1], half], axis=1)


def _gaussian_rows(offsets, scale, limit):
    """Normalised weights exp(-(offset/scale)^2/2) for |offset index| <= limit (per row).

    ``offsets`` are symmetric about the centre column (``k * step`` for ``k = -K .. K``),
    so the exponentials are computed for ``k >= 0`` only and mirrored: the same values,
    bit for bit (``(-x)^2 == x^2``), for half the work."""
    centre = (offsets.shape[1] - 1) // 2
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.exp(-0.5 * (offsets[:, centre:] / scale[:, None]) ** 2)
    half = np.where(np.arange(half.shape[1])[None, :] <= limit[:, None], half, 0.0)
    w = _mirrored(half)
    return w / w.sum(axis=1, keepdims=True)


def _trapezoid_nodes(std, spacing):
    """Nodes of the per-row trapezoid rule in z (``2 ceil(L / h_z) + 1``, ``h_z = min(Z_SPACING, spacing / std)``)."""
    with np.errstate(divide="ignore"):
        return 2 * np.ceil(HALF_WIDTH / np.minimum(Z_SPACING, spacing / std)) + 1


def _trapezoid_rows(std, spacing):
    """Per-row trapezoid rule in z: nodes (rows, 2K+1) and weights; zero-padded."""
    with np.errstate(divide="ignore"):
        hz = np.minimum(Z_SPACING, spacing / std)
    k_row = np.ceil(HALF_WIDTH / hz).astype(int)
    kmax = int(k_row.max()) if k_row.size else 0
    k = np.arange(-kmax, kmax + 1)
    z = k[None, :] * hz[:, None]
    half = z[:, kmax:]  # z >= 0; the weights are symmetric (see _gaussian_rows)
    w = _mirrored(np.exp(-0.5 * half**2) * (k[None, kmax:] <= k_row[:, None]))
    return z, w / w.sum(axis=1, keepdims=True)


def single_averages(fn, n_out: int, mu, delta, *, spacing: float = SPACING, kernels=None):
    """``[f_i](mu, delta)`` for every output ``f_i`` of a vectorised ``fn``.

    Parameters
    ----------
    fn : callable
        ``fn(x)`` returning one array (``n_out == 1``) or a sequence of ``n_out`` arrays.
    n_out : int
        Number of integrands returned by ``fn``.
    mu, delta : array_like
        Means and variances (>= 0), broadcast together.
    spacing : float
        Lattice spacing in activation space (see the module notes).
    kernels : module, optional
        Compiled kernels for the same integrands (:func:`dmftools.numeric._jit.kernels`):
        the same rule, evaluated point by point in compiled code (``fn`` is then unused).

    Returns
    -------
    list of ndarray
        One array of the broadcast shape per integrand.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import erf
    >>> from dmftools.numeric.lattice import single_averages
    >>> [v] = single_averages(erf, 1, [0.5, 1.0], [2.0, 30.0])
    >>> exact = erf(np.array([0.5, 1.0]) / np.sqrt(1 + 2 * np.array([2.0, 30.0])))
    >>> bool(np.max(np.abs(v - exact)) < 1e-14)
    True
    """
    shape, (mu, delta) = _flat(mu, delta)
    if kernels is not None:
        values = np.empty((n_out, mu.size))
        if kernels.single(mu, delta, float(spacing), values) == 0:
            return [v.reshape(shape) for v in values]
        # invalid input: the checks below say which
    _check("mu", np.abs(mu))
    _check("delta", delta)
    out = [np.empty(mu.size) for _ in range(n_out)]
    std = np.sqrt(delta)
    _check_nodes("delta", std, spacing)
    for idx in _chunks(_trapezoid_nodes(std, spacing)):
        z, w = _trapezoid_rows(std[idx], spacing)
        x = mu[idx, None] + std[idx, None] * z
        for i, v in enumerate(_as_outputs(fn(x), n_out, x.shape)):
            out[i][idx] = np.einsum("bk,bk->b", v, w)
    return [o.reshape(shape) for o in out]


def nested_averages(fn, n_out: int, pairs, mu, delta0, delta_inf, *, spacing: float = SPACING, kernels=None):
    """``[[f_a, f_b]](mu, delta0, delta_inf)`` for every pair ``(a, b)`` of ``fn``'s outputs.

    Parameters
    ----------
    fn : callable
        ``fn(x)`` returning ``n_out`` arrays (one array if ``n_out == 1``).
    n_out : int
        Number of integrands.
    pairs : sequence of (int, int)
        Which products to average.
    mu, delta0, delta_inf : array_like
        Broadcast together; ``0 <= delta_inf <= delta0``.
    spacing : float
        Lattice spacing in activation space.
    kernels : module, optional
        Compiled kernels for the same integrands (:func:`dmftools.numeric._jit.kernels`):
        the same rules, evaluated point by point in compiled code (``fn`` is then unused).

    Returns
    -------
    list of ndarray
        One array of the broadcast shape per pair.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import erf
    >>> from dmftools.numeric.lattice import nested_averages
    >>> a = np.sqrt(np.pi) / 2
    >>> [v] = nested_averages(lambda x: erf(a * x), 1, [(0, 0)], 0.0, [2.0, 40.0], [1.0, 3.0])
    >>> d0, di = np.array([2.0, 40.0]), np.array([1.0, 3.0])
    >>> exact = 2 / np.pi * np.arcsin(2 * a**2 * di / (1 + 2 * a**2 * d0))
    >>> bool(np.max(np.abs(v - exact)) < 1e-13)
    True
    """
    shape, (mu, delta0, delta_inf) = _flat(mu, delta0, delta_inf)
    pairs = pairs if type(pairs) is tuple else tuple(tuple(int(i) for i in p) for p in pairs)
    if kernels is not None:
        p, used = _pair_arrays(pairs)
        values = np.empty((p.shape[0], mu.size))
        if kernels.nested(mu, delta0, delta_inf, float(spacing), *_gauss_hermite(GH_NODES), p, used, values) == 0:
            return [v.reshape(shape) for v in values]
        # invalid input: the checks below say which
    _check("mu", np.abs(mu))
    _check("delta0", delta0)
    _check("delta_inf", delta_inf)
    _check("delta0 - delta_inf", delta0 - delta_inf)
    out = [np.empty(mu.size) for _ in pairs]
    s = np.sqrt(delta0 - delta_inf)
    r = np.sqrt(delta_inf)
    _check_nodes("delta0", np.sqrt(delta0), spacing)
    thin = THIN_FRACTION * spacing
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(delta0 > 0, delta_inf / delta0, 0.0)
    mehler = (r < thin) & (rho <= MEHLER_RHO)
    lattice = (s >= thin) & (r >= thin)
    if np.any(mehler):
        idx = np.flatnonzero(mehler)
        for i, v in enumerate(_nested_mehler(fn, n_out, pairs, mu[idx], delta0[idx], rho[idx], spacing)):
            out[i][idx] = v
    if np.any(lattice):
        stride = _outer_stride(s, r, spacing)
        for m in np.unique(stride[lattice]):
            idx = np.flatnonzero(lattice & (stride == m))
            for i, v in enumerate(_nested_lattice(fn, n_out, pairs, mu[idx], s[idx], r[idx], spacing, int(m))):
                out[i][idx] = v
    # thin outer dimension (delta_inf -> 0) and thin inner dimension (delta_inf -> delta0)
    # separately, so that no chunk pads both dimensions to full width
    for mode in ((r < thin) & ~mehler, (s < thin) & (r >= thin)):
        if np.any(mode):
            idx = np.flatnonzero(mode)
            for i, v in enumerate(_nested_product(fn, n_out, pairs, mu[idx], s[idx], r[idx], spacing, thin)):
                out[i][idx] = v
    return [o.reshape(shape) for o in out]


def _chunks(cost_per_row: np.ndarray):
    """Index sets of rows evaluated together, in order of increasing cost.

    A chunk is padded to its widest row, so rows are sorted by cost and a chunk is closed
    before its ``rows x widest row`` would exceed :data:`_CHUNK_ELEMENTS`, and before a wider
    row would make the padding both larger than :data:`_PAD_ELEMENTS` (about the fixed cost
    of one more chunk) and than a quarter of the useful elements.
    """
    if cost_per_row.size == 0:
        return
    widest, total = float(cost_per_row.max()), float(cost_per_row.sum())
    padded = cost_per_row.size * widest
    if padded <= _CHUNK_ELEMENTS and (padded - total <= _PAD_ELEMENTS or padded - total <= 0.25 * total):
        yield np.arange(cost_per_row.size)  # the common case: one chunk
        return
    order = np.argsort(cost_per_row, kind="stable")
    cost = cost_per_row[order]
    widths, firsts = np.unique(cost, return_index=True)
    ends = np.append(firsts[1:], cost.size)
    useful = np.concatenate(([0.0], np.cumsum(cost)))  # useful[i]: elements of rows < i
    start = 0
    for width, first, end in zip(widths.tolist(), firsts.tolist(), ends.tolist()):
        if first > start:
            padding = (end - start) * width - (useful[end] - useful[start])
            if (padding > _PAD_ELEMENTS and padding > 0.25 * (useful[end] - useful[start])) or \
                    (first - start) * width > _CHUNK_ELEMENTS:
                yield order[start:first]
                start = first
        rows = max(1, int(_CHUNK_ELEMENTS // width))
        if first > start and end - start > rows:  # this width fills chunks of its own
            yield order[start:first]
            start = first
        while end - start > rows:
            yield order[start:start + rows]
            start += rows
    yield order[start:]


def _lattice_step(s, r, spacing):
    """Lattice spacing in activation space: ``spacing``, or finer for a narrow Gaussian."""
    return np.minimum(spacing, Z_SPACING * np.minimum(s, r))


def _outer_stride(s, r, spacing):
    """Outer nodes every ``m``-th lattice point: the largest ``m`` with outer spacing in z
    at most ``OUTER_Z / sqrt(1 + 2 r^2 / s^2)`` (see :data:`OUTER_Z`), capped at
    :data:`MAX_STRIDE`."""
    step = _lattice_step(s, r, spacing)
    with np.errstate(divide="ignore", invalid="ignore"):
        hz = OUTER_Z / np.sqrt(1.0 + 2.0 * (r / s) ** 2)
        m = np.floor(r * hz / step)
    return np.clip(np.nan_to_num(m, nan=1.0), 1, MAX_STRIDE).astype(int)


def _nested_lattice(fn, n_out, pairs, mu, s, r, spacing, stride=1):
    step = _lattice_step(s, r, spacing)
    outer_step = stride * step
    J = np.ceil(HALF_WIDTH * r / outer_step).astype(int)  # outer nodes: every stride-th lattice point
    W = np.ceil(HALF_WIDTH * s / step).astype(int)
    out = [np.empty(mu.size) for _ in pairs]
    for idx in _chunks((2 * J + 1) * (2 * W + 1 + stride)):
        jm, wm = int(J[idx].max()), int(W[idx].max())
        k = np.arange(-(jm * stride + wm), jm * stride + wm + 1)
        u = mu[idx, None] + step[idx, None] * k[None, :]
        values = _as_outputs(fn(u), n_out, u.shape)
        o = np.arange(-wm, wm + 1) * step[idx, None]
        kernel = _gaussian_rows(o, s[idx], W[idx])
        j = np.arange(-jm, jm + 1) * outer_step[idx, None]
        outer = _gaussian_rows(j, r[idx], J[idx])
        inner = {}
        for a in sorted({p for pair in pairs for p in pair}):
            v = values[a]
            # windows of width 2 wm + 1 starting at every stride-th lattice point (a view)
            windows = np.lib.stride_tricks.as_strided(
                v, shape=(v.shape[0], 2 * jm + 1, 2 * wm + 1), strides=(v.strides[0], stride * v.strides[1], v.strides[1]),
                writeable=False)
            inner[a] = np.einsum("bjo,bo->bj", windows, kernel)
        for i, (a, b) in enumerate(pairs):
            out[i][idx] = np.einsum("bj,bj,bj->b", outer, inner[a], inner[b])
    return out


def _mehler_terms(rho_max: float) -> int:
    """Terms of the Mehler series with truncation error ``rho^K / (1 - rho)`` below 1e-17."""
    if rho_max <= 0:
        return 1
    return int(np.ceil(np.log(1e-17 * (1 - rho_max)) / np.log(rho_max)))


def _nested_mehler(fn, n_out, pairs, mu, delta0, rho, spacing):
    """Mehler's series for a small correlation ``rho = Delta_inf / Delta_0``.

    ``x, y`` jointly Gaussian with mean ``mu``, variance ``Delta_0`` and covariance
    ``Delta_inf``: ``E[f(x) h(y)] = sum_k rho^k c_k(f) c_k(h)`` with
    ``c_k(f) = E[f(mu + sqrt(Delta_0) z) He_k(z)] / sqrt(k!)`` (normalised Hermite
    polynomials). By Parseval ``|c_k(f) c_k(h)| <= ||f|| ||h||``, so ``K`` terms leave at
    most ``rho^K / (1 - rho)`` relative to ``||f|| ||h||``; the coefficients are one single
    trapezoid rule per point (``rho = 0``: the product of two single averages).
    """
    std = np.sqrt(delta0)
    used = sorted({p for pair in pairs for p in pair})
    out = [np.empty(mu.size) for _ in pairs]
    for idx in _chunks(_trapezoid_nodes(std, spacing)):
        z, w = _trapezoid_rows(std[idx], spacing)
        x = mu[idx, None] + std[idx, None] * z
        values = _as_outputs(fn(x), n_out, x.shape)
        weighted = {a: values[a] * w for a in used}
        terms = _mehler_terms(float(rho[idx].max()))
        sums = [np.zeros(idx.size) for _ in pairs]
        h_prev, h = np.zeros_like(z), np.ones_like(z)
        factor = np.ones(idx.size)
        for k in range(terms):
            c = {a: np.einsum("bk,bk->b", weighted[a], h) for a in used}
            for i, (a, b) in enumerate(pairs):
                sums[i] += factor * c[a] * c[b]
            h_prev, h = h, (z * h - np.sqrt(k) * h_prev) / np.sqrt(k + 1)
            factor = factor * rho[idx]
        for i in range(len(pairs)):
            out[i][idx] = sums[i]
    return out


def _nested_product(fn, n_out, pairs, mu, s, r, spacing, thin):
    """Product rule: Gauss-Hermite in a thin dimension, trapezoid in the other."""
    zg, wg = _gauss_hermite(GH_NODES)
    out = [np.empty(mu.size) for _ in pairs]

    def rule(std, is_thin):
        """Per-row nodes and weights: Gauss-Hermite on thin rows, trapezoid on the others."""
        width = GH_NODES
        if np.any(~is_thin):
            zt, wt = _trapezoid_rows(std[~is_thin], spacing)
            width = max(width, zt.shape[1])
        z = np.zeros((std.size, width))
        w = np.zeros((std.size, width))
        if np.any(~is_thin):
            z[~is_thin, : zt.shape[1]], w[~is_thin, : zt.shape[1]] = zt, wt
        z[is_thin, :GH_NODES], w[is_thin, :GH_NODES] = zg, wg
        return z, w

    outer_thin, inner_thin = r < thin, s < thin
    cost = np.where(outer_thin, GH_NODES, _trapezoid_nodes(r, spacing))
    cost = cost * np.where(inner_thin, GH_NODES, _trapezoid_nodes(s, spacing))
    for idx in _chunks(cost):
        zo, wo = rule(r[idx], outer_thin[idx])
        zi, wi = rule(s[idx], inner_thin[idx])
        x = mu[idx, None, None] + r[idx, None, None] * zo[:, :, None] + s[idx, None, None] * zi[:, None, :]
        values = _as_outputs(fn(x), n_out, x.shape)
        inner = {a: np.einsum("boi,bi->bo", values[a], wi) for a in sorted({p for pair in pairs for p in pair})}
        for i, (a, b) in enumerate(pairs):
            out[i][idx] = np.einsum("bo,bo,bo->b", wo, inner[a], inner[b])
    return out
