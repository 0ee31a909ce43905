"""All stationary and chaotic mean-field solutions at one or many parameter points."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..model import GaussianLowRank
from ..numeric import _jit
from ..simulate._grid import usable_cores
from ..symbolic.derive import derive
from ._checks import STATES, check_int, check_net, check_regime, check_states
from ._newton import NewtonBatch, _solve_linear, newton, newton_compiled
from ._results import KAPPA_ZERO, SolveResult, StateSolutions

__all__ = ["solve", "prepare_parameters", "compiled"]

#: Solutions closer than this (relative, max-norm) are the same solution.
_DUPLICATE_TOL = 1e-7
#: Chaotic solutions with delta0 - delta_inf below this (relative) coincide with a fixed point.
_DEGENERATE_TOL = 1e-9
#: Reported solutions have max |residual| below this times (1 + max |u|).
REPORT_TOL = 1e-10
#: A Newton run that stalls within REPORT_TOL with its correction below this times
#: (1 + max |u|) has reached a root at the equations' round-off floor (a quarter of the
#: duplicate tolerance: such a root still merges with itself and is told apart from others).
_FLOOR_CORRECTION = _DUPLICATE_TOL / 4
#: Largest number of parameter points x starts handled in one vectorised call.
MAX_BATCH = 2_000_000
#: Largest grid one solve handles (a call of :func:`solve`, a band of :func:`solve_parallel`).
_MAX_POINTS = MAX_BATCH // (22 * 2)


_COMPILED: dict = {}


@functools.lru_cache(maxsize=256)
def _printed(expr) -> str:
    return str(expr)  # SymPy printing costs ~40 us; models are looked up many times per solve


def _model_key(net):
    return (net.rank, net.means.tobytes(), net.cov.tobytes(), net.phi.name, _printed(net.phi.expr))


def compiled(net, state, regime="current", spacing=None):
    """The compiled equations of ``net`` (cached per model, state, regime and spacing)."""
    key = (_model_key(net), state, regime, spacing)
    cf = _COMPILED.get(key)  # (solve's states may look models up from two threads)
    if cf is None:
        if len(_COMPILED) > 64:
            _COMPILED.clear()
        cf = _COMPILED[key] = derive(net, state, regime).compile(spacing=spacing)
    return cf


def prepare_parameters(cf, g, params: dict):
    """Validate and broadcast ``g`` and keyword parameters; returns (shape, {name: flat array})."""
    names = cf.equations.parameters
    defaults = cf.equations.parameter_values
    values = {}
    for key in params:
        if key not in names:
            allowed = ", ".join(names)
            raise TypeError(f"{key}: not a parameter of this model (parameters: {allowed}); "
                            "a loading statistic that is exactly zero in the model is a structural zero - "
                            "build the model with a non-zero value to vary it")
    for key, sym in names.items():
        raw = g if key == "g" else params.get(key, defaults[sym])
        if raw is None:
            raise TypeError("g: required (the random connectivity strength)")
        try:
            a = np.asarray(raw, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"{key}: expected a number or an array of numbers, got {type(raw).__name__}") from None
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{key}: must be finite (got NaN or inf)")
        values[key] = a
    if np.any(values["g"] < 0):
        raise ValueError("g: must be >= 0")
    for key in names:
        if key.startswith("S") and len(key) <= 3 and key[1:] in ("m", "n", "I", "m1", "m2", "n1", "n2", "m3", "n3"):
            if np.any(values[key] < 0):
                raise ValueError(f"{key}: standard deviations must be >= 0")
    try:
        arrays = np.broadcast_arrays(*values.values())
    except ValueError:
        shapes = {k: np.shape(v) for k, v in values.items()}
        raise ValueError(f"parameters: shapes do not broadcast: {shapes}") from None
    shape = arrays[0].shape
    return shape, {k: a.reshape(-1) for k, a in zip(values, arrays)}


#: Variances above this are outside the solvers' domain (sqrt: 1e4, a lattice of ~1e5 nodes
#: per point): a Newton step from a near-singular Jacobian can propose 1e18, whose quadrature
#: alone would need gigabytes; such columns get an infinite residual, so Newton backtracks.
VARIANCE_MAX = 1e8


def _system(cf):
    module = cf.newton_kernel()  # the same evaluation in one compiled call, when numba is there
    n = len(cf.unknowns)

    def evaluate(u, params):
        if module is not None:
            A = np.empty((n + len(params), u.shape[1]))
            A[:n] = u
            for i, p in enumerate(params):
                A[n + i] = p
            out = np.empty((n + n * n, u.shape[1]))
            if module.system(A, out) == 0:
                return out[:n], out[n:].reshape((n, n, -1))
            # invalid input for the kernels: the numpy rules below raise the error that says which
        # iterates may leave the domain (e.g. delta_inf -> delta0); non-finite values are
        # handled by the Newton iteration, so floating-point warnings are expected here
        with np.errstate(all="ignore"):
            return cf.system(list(u) + list(params))

    def system(u, params):
        inside = u[1] <= VARIANCE_MAX  # NaN too is outside
        if np.all(inside):
            return evaluate(u, params)
        n, B = u.shape
        F = np.full((n, B), np.inf)
        J = np.full((n, n, B), np.nan)
        if np.any(inside):
            F[:, inside], J[..., inside] = evaluate(u[:, inside], [np.broadcast_to(p, (B,))[inside] for p in params])
        return F, J
    return system


def _kappa_scale(cf, flat):
    """A bound on |kappa| used to place starts: |E[n]| sup|phi| + |Cov(n, x)| sup|phi'| ~ |Mn| + ..."""
    net = cf.equations.model
    R = net.rank
    scale = np.ones(next(iter(flat.values())).size)
    for k in range(R):
        mn = flat.get(f"Mn{k + 1}" if R > 1 else "Mn", net.means[R + k])
        scale = np.maximum(scale, np.abs(mn) + np.sqrt(np.abs(net.cov[R + k, R + k])) * 0.5)
    return scale


def _starts(cf, state, flat, P, half=False):
    """Starting points (n, P * S): a grid of overlaps, statistics relaxed to them.

    ``half``: only the overlaps that are 0 or whose first non-zero component is positive
    (for equations symmetric under ``kappa -> -kappa``, see :func:`_mirror_symmetric`).
    """
    R = cf.equations.model.rank
    scale = _kappa_scale(cf, flat)
    fractions = np.array([0.0, 0.05, -0.05, 0.25, -0.25, 0.6, -0.6, 1.0, -1.0, 1.5, -1.5])
    if state == "chaotic":
        fractions = np.array([0.0, 0.25, -0.25, 0.6, -0.6, 1.0, -1.0])
    if R > 1:
        grid1 = np.array([0.0, 0.3, -0.3, 1.0, -1.0])
        combos = np.array(np.meshgrid(*([grid1] * R), indexing="ij")).reshape(R, -1)
    else:
        combos = fractions[None, :]
    if half:
        nonzero = combos != 0
        leading = np.where(np.any(nonzero, axis=0), combos[np.argmax(nonzero, axis=0), np.arange(combos.shape[1])], 0.0)
        combos = combos[:, leading >= 0]
    if state == "chaotic":
        ratios = np.array([0.3, 0.7])
    else:
        ratios = np.array([1.0])
    S = combos.shape[1] * ratios.size
    kap = np.repeat(combos[:, :, None], ratios.size, axis=2).reshape(R, -1)  # (R, S)
    rat = np.tile(ratios, combos.shape[1])
    kap = kap[:, None, :] * scale[None, :, None]  # (R, P, S)
    par = [np.repeat(flat[k], S) for k in cf.equations.parameters]
    kap = kap.reshape(R, -1)
    # relax mu and delta0 to the overlaps with a few fixed-point sweeps of the stationary map
    st = compiled(cf.equations.model, "stationary", cf.equations.regime, cf.spacing)
    mu = np.zeros(P * S)
    d0 = np.ones(P * S)
    for _ in range(6):
        res = st._residual_fn(mu, d0, *kap, *par)
        mu = mu - np.asarray(res[0])
        d0 = np.maximum(d0 - np.asarray(res[1]), 1e-3)
    if state == "stationary":
        # the first start (kappa = 0) also starts from a zero variance: the trivial fixed
        # point is unstable under the relaxation above when g > 1
        u = np.vstack([mu, d0, kap]).reshape(-1, P, S)
        trivial = u[:, :, :1].copy()
        trivial[1] = 0.0
        u = np.concatenate([u, trivial], axis=2)
        par = [np.asarray(p).reshape(P, S)[:, :1].repeat(S + 1, axis=1).reshape(-1) for p in par]
        return u.reshape(u.shape[0], -1), par, S + 1
    d0c = 1.2 * d0 + 0.1
    dinf = np.repeat(rat[None, :], P, axis=0).reshape(-1) * d0c
    return np.vstack([mu, d0c, dinf, kap]), par, S


def _sort_key(u, state):
    """Per-solution ordering keys (lexsort order: last key first): the overlaps with values
    below :data:`KAPPA_ZERO` read as 0, then delta0, then mu. ``u`` has shape (..., n + 1)
    (the unknowns, then the residual)."""
    first = 3 if state == "chaotic" else 2
    kap = u[..., first:-1]
    kap = np.where(np.abs(kap) <= KAPPA_ZERO, 0.0, kap)
    return [u[..., 0], u[..., 1]] + [kap[..., k] for k in range(kap.shape[-1] - 1, -1, -1)]


@functools.lru_cache(maxsize=1)
def _compiled_filter():
    return _jit.unique_filter()


def _keep_unique(dense, valid, compiled=True):
    """``keep (O, G)``: ``valid`` entries of ``dense (O, G, n + 1)`` not within
    :data:`_DUPLICATE_TOL` (relative, max-norm, the last entry not compared) of an earlier
    kept entry of the same row: greedy, in column order. Compiled when numba is there."""
    keep = np.zeros_like(valid)
    fast = _compiled_filter() if compiled else None
    if fast is not None:
        fast(np.ascontiguousarray(dense), np.ascontiguousarray(valid), _DUPLICATE_TOL, keep)
        return keep
    for j in range(dense.shape[1]):
        dup = np.zeros(dense.shape[0], dtype=bool)
        if j:
            prev = dense[:, :j, :-1]
            d = np.max(np.abs(prev - dense[:, j : j + 1, :-1]), axis=2)
            tol = _DUPLICATE_TOL * (1 + np.max(np.abs(prev), axis=2))
            dup = np.any(keep[:, :j] & (d <= tol), axis=1)
        keep[:, j] = valid[:, j] & ~dup
    return keep


def _deduplicate(u, ok, owner, n_owners, state):
    """Unique converged columns per owner, sorted; returns (sols (n_owners, G, n), counts).

    ``u`` (n + 1, B) columns (the unknowns, then the residual, which is carried along but
    not compared), ``ok`` (B,) converged, ``owner`` (B,) in ``range(n_owners)``.
    Vectorised over owners: the work is quadratic in the largest group only.
    """
    n = u.shape[0]
    cols = np.flatnonzero(ok)
    o = owner[cols]
    order = np.argsort(o, kind="stable")
    cols, o = cols[order], o[order]
    sizes = np.bincount(o, minlength=n_owners)
    G = int(sizes.max()) if sizes.size else 0
    dense = np.full((n_owners, max(G, 1), n), np.nan)
    valid = np.zeros((n_owners, max(G, 1)), dtype=bool)
    if cols.size:
        starts = np.cumsum(sizes) - sizes
        rank = np.arange(cols.size) - starts[o]
        dense[o, rank] = u[:, cols].T
        valid[o, rank] = True
    keep = _keep_unique(dense, valid)
    dense[~keep] = np.inf
    idx = np.lexsort(_sort_key(dense, state), axis=-1)
    dense = np.take_along_axis(dense, idx[..., None], axis=1)
    counts = keep.sum(axis=1)
    dense[np.arange(dense.shape[1])[None, :] >= counts[:, None]] = np.nan
    return dense, counts


def _run(cf, state, u0, par, maxiter):
    """Newton from the columns ``u0`` (n, B); returns (n + 1, B) roots with their residual
    ``max |F|`` as the last row, and which columns converged to a reportable root."""
    chaotic = state == "chaotic"
    kernel = cf.newton_kernel()
    result = None
    if kernel is not None:  # the compiled iteration (numba); None where the numpy path must say what failed
        result = newton_compiled(kernel, u0, par, chaotic=chaotic, maxiter=maxiter, variance_max=VARIANCE_MAX)
    if result is None:
        result = newton(_system(cf), u0, par, chaotic=chaotic, maxiter=maxiter)
    return _accept(cf, state, result, par)


def _accept(cf, state, result, par):
    """:func:`_run`'s output for a finished :class:`NewtonResult` (parameters ``par``)."""
    u = result.u
    residual = result.residual
    converged = result.converged
    # singular roots, and columns that stalled within the report tolerance (near a triple
    # root Newton crawls, and round-off decides whether a start gets below ftol)
    candidates = result.singular | (~converged & (residual <= REPORT_TOL * (1 + np.max(np.abs(u), axis=0))))
    if np.any(candidates):
        u, residual, polished = _polish_singular(cf, state, result, par, candidates)
        converged = converged | polished
    scale = 1 + np.max(np.abs(u), axis=0)
    # roots at the noise floor of the equations: Newton stalls within the report tolerance,
    # its correction there tiny but not below xtol (near the onset of chaos the energy
    # equation divided by Delta_0 - Delta_inf amplifies round-off: at a gap of 1.4e-3 the
    # residual jitters about 1e-11 and the correction about 5e-8, and whether a start meets
    # ftol = 1e-12 was luck). The root is then known to its correction.
    floor = ~converged & (residual <= REPORT_TOL * scale) & \
        (result.correction <= _FLOOR_CORRECTION * scale)
    converged = converged | floor
    ok = converged & (residual <= REPORT_TOL * scale)
    if state == "chaotic":
        ok &= (u[2] >= 0) & (u[1] - u[2] > _DEGENERATE_TOL * (1 + u[1]))
    return np.vstack([u, residual]), ok


#: A singular root's overlaps within this many Newton corrections of 0 (or within the
#: cube root of its residual) are tried at 0.
_SINGULAR_KAPPA = 10.0


def _polish_singular(cf, state, result, par, candidates):
    """Singular roots (exactly at a bifurcation from a ``kappa = 0`` branch) on the
    invariant subspace: for the ``candidates`` columns, overlaps within a few Newton
    corrections of 0 are held at 0 and the other unknowns solved by Newton there, where the
    root is regular (the pitchfork's degeneracy is along ``kappa``). Kept only if the full
    system (the ``kappa`` equations included) is then solved to the report tolerance;
    returns ``(u, residual, polished)`` with ``polished`` marking the columns replaced."""
    u, residual = result.u.copy(), result.residual.copy()
    polished = np.zeros(u.shape[1], dtype=bool)
    first = 3 if state == "chaotic" else 2
    cols = np.flatnonzero(candidates)
    # a root of multiplicity k is determined to ~ residual^(1/k) (k = 3 at a pitchfork);
    # projections and backtracking can make the last correction underestimate that
    near = np.maximum(_SINGULAR_KAPPA * result.correction[cols], np.cbrt(result.residual[cols]))
    near = np.maximum(near, KAPPA_ZERO)
    held = np.abs(u[first:, cols]) <= near[None, :]
    cols, held = cols[np.any(held, axis=0)], held[:, np.any(held, axis=0)]
    if cols.size == 0:
        return u, residual, polished
    system = _system(cf)
    w = u[:, cols].copy()
    w[first:][held] = 0.0
    p = [np.asarray(a)[cols] for a in par]
    n = w.shape[0]
    for _ in range(20):
        F, J = system(w, p)
        for k in range(first, n):
            # a held overlap's equation is replaced by kappa_k = 0
            h = held[k - first]
            F[k, h] = 0.0
            J[k, :, h] = 0.0
            J[k, k, h] = 1.0
        du = np.nan_to_num(_solve_linear(J, F))
        w = w + du
        w[1] = np.maximum(w[1], 0.0)
        if state == "chaotic":
            w[2] = np.clip(w[2], 0.0, w[1])
        if np.all(np.max(np.abs(du), axis=0) <= 1e-14 * (1 + np.max(np.abs(w), axis=0))):
            break
    F, _ = system(w, p)
    full = np.max(np.abs(F), axis=0)
    good = np.isfinite(full) & (full <= REPORT_TOL * (1 + np.max(np.abs(w), axis=0)))
    u[:, cols[good]] = w[:, good]
    residual[cols[good]] = full[good]
    polished[cols[good]] = True
    return u, residual, polished


def _multistart(cf, state, flat, points, maxiter, half=False):
    """Full multi-start at the given flat point indices; returns (sols, counts) per point."""
    points = np.asarray(points, dtype=int)
    sub = {k: v[points] for k, v in flat.items()}
    u0, par, S = _starts(cf, state, sub, len(points), half)
    u, ok = _run(cf, state, u0, par, maxiter)
    return _deduplicate(u, ok, np.repeat(np.arange(len(points)), S), len(points), state)


#: Grids with more points than this are solved coarse-to-fine.
_COARSE_ABOVE = 24
#: Coarse subgrid stride target: about this many coarse points per axis.
_COARSE_PER_AXIS = 9
#: Newton iterations from interpolated predictors before falling back to the neighbours' roots.
_REFINE_MAXITER = 12
#: Newton iterations from a neighbour's root (a root one grid step away converges in a few;
#: columns whose root does not exist there stop early).
_NEIGHBOUR_MAXITER = 20


def _is_grid(flat, shape):
    """Every parameter is constant or strictly monotone along every axis (a grid on which
    solutions vary smoothly from point to point, so neighbours' roots are good starts)."""
    for v in flat.values():
        a = v.reshape(shape)
        for d in range(len(shape)):
            if shape[d] < 2:
                continue
            diff = np.diff(a, axis=d)
            if not (np.all(diff == 0) or np.all(diff > 0) or np.all(diff < 0)):
                return False
    return True


class _Store:
    """Solutions per flat grid point: (P, capacity, n) sorted per point, counts, known mask."""

    def __init__(self, P, n):
        self.sols = np.full((P, 4, n), np.nan)
        self.count = np.zeros(P, dtype=int)
        self.known = np.zeros(P, dtype=bool)

    def put(self, points, sols, counts):
        G = sols.shape[1]
        if G > self.sols.shape[1]:
            grown = np.full((self.sols.shape[0], G, self.sols.shape[2]), np.nan)
            grown[:, : self.sols.shape[1]] = self.sols
            self.sols = grown
        self.sols[points] = np.nan
        self.sols[points, :G] = sols
        self.count[points] = counts
        self.known[points] = True


def _columns(store, points, sources):
    """Newton columns: every stored root of ``sources[i]`` as a start for ``points[i]``."""
    c = store.count[sources]
    owner = np.repeat(np.arange(points.size), c)
    src = np.repeat(sources, c)
    rank = np.arange(owner.size) - np.repeat(np.cumsum(c) - c, c)
    return store.sols[src, rank].T, owner


def _solve_new(cf, state, flat, store, new, nb, pos, xm, maxiter, half=False):
    """Solve the new points ``new`` from their known neighbours along one axis.

    ``nb`` (4, m): flat indices of the neighbours at positions ``pos`` (4, m) (outer left,
    left, right, outer right; -1 where absent); ``xm`` (m,) the new points' positions.
    Matching root counts on both sides: Newton from the interpolated roots (cubic when the
    outer neighbours agree too). Otherwise, or where that loses a root: Newton from every
    neighbouring root; a point that then has fewer roots than either side gets a full
    multi-start.
    """
    names = cf.equations.parameters
    a2, a, b, b2 = nb
    ca, cb = store.count[a], store.count[b]
    same = ca == cb
    sols = np.full((new.size, max(store.sols.shape[1], 1), store.sols.shape[2]), np.nan)
    counts = np.zeros(new.size, dtype=int)
    todo = same & (ca > 0)
    good = same & (ca == 0)
    if np.any(todo):
        i = np.flatnonzero(todo)
        c = ca[i]
        cubic = (a2[i] >= 0) & (b2[i] >= 0)
        cubic[cubic] &= (store.count[a2[i][cubic]] == c[cubic]) & (store.count[b2[i][cubic]] == c[cubic])
        # Lagrange weights at xm from the four (or the two inner) positions
        w = np.zeros((4, i.size))
        x = pos[:, i]
        t = xm[i]
        for k in range(4):
            others = [l for l in range(4) if l != k]
            w[k] = np.prod([(t - x[l]) / (x[k] - x[l]) for l in others], axis=0)
        wl = np.zeros((4, i.size))
        wl[1] = (x[2] - t) / (x[2] - x[1])
        wl[2] = (t - x[1]) / (x[2] - x[1])
        w = np.where(cubic[None, :], w, wl)
        owner = np.repeat(np.arange(i.size), c)
        rank = np.arange(owner.size) - np.repeat(np.cumsum(c) - c, c)
        u0 = np.zeros((store.sols.shape[2] - 1, owner.size))
        for k in range(4):
            src = np.where(nb[k, i] >= 0, nb[k, i], 0)[owner]
            wk = w[k, owner]
            use = wk != 0
            u0[:, use] += wk[use] * store.sols[src[use], rank[use], :-1].T
        # interpolation may step just outside the variances' domain (e.g. delta_inf = 0)
        u0[1] = np.maximum(u0[1], 0.0)
        if state == "chaotic":
            u0[2] = np.clip(u0[2], 0.0, None)
        par = [flat[k][new[i][owner]] for k in names]
        u, ok = _run(cf, state, u0, par, min(maxiter, _REFINE_MAXITER))
        s_i, c_i = _deduplicate(u, ok, owner, i.size, state)
        hit = c_i == c
        G = s_i.shape[1]
        if G > sols.shape[1]:
            sols = np.concatenate([sols, np.full((new.size, G - sols.shape[1], sols.shape[2]), np.nan)], axis=1)
        sols[i[hit], :G] = s_i[hit]
        counts[i[hit]] = c[hit]
        good[i[hit]] = True
    rest = np.flatnonzero(~good)
    if rest.size:
        ua, oa = _columns(store, new[rest], a[rest])
        ub, ob = _columns(store, new[rest], b[rest])
        u0 = np.concatenate([ua, ub], axis=1)[:-1]
        owner = np.concatenate([oa, ob])
        par = [flat[k][new[rest][owner]] for k in names]
        u, ok = _run(cf, state, u0, par, min(maxiter, 2 * _NEIGHBOUR_MAXITER))
        s_r, c_r = _deduplicate(u, ok, owner, rest.size, state)
        lost = c_r < np.minimum(ca[rest], cb[rest])
        if np.any(lost):
            s_m, _ = _multistart(cf, state, flat, new[rest[lost]], maxiter, half)
            s_u, c_u = _union(s_r[lost], s_m, state)  # the neighbours' roots and the multi-start's
            if s_u.shape[1] > s_r.shape[1]:
                s_r = np.concatenate([s_r, np.full((rest.size, s_u.shape[1] - s_r.shape[1], s_r.shape[2]), np.nan)],
                                     axis=1)
            s_r[lost] = np.nan
            s_r[lost, : s_u.shape[1]] = s_u
            c_r[lost] = c_u
        G = s_r.shape[1]
        if G > sols.shape[1]:
            sols = np.concatenate([sols, np.full((new.size, G - sols.shape[1], sols.shape[2]), np.nan)], axis=1)
        sols[rest] = np.nan
        sols[rest, :G] = s_r
        counts[rest] = c_r
    store.put(new, sols, counts)


def _union(a, b, state):
    """Per point the union of two sets of roots ``(m, G, n + 1)`` (NaN rows beyond each
    point's count), deduplicated: ``(sols, counts)``."""
    m = a.shape[0]
    both = np.concatenate([a.reshape(-1, a.shape[2]), b.reshape(-1, b.shape[2])]).T
    owner = np.concatenate([np.repeat(np.arange(m), a.shape[1]), np.repeat(np.arange(m), b.shape[1])])
    return _deduplicate(both, np.all(np.isfinite(both), axis=0), owner, m, state)


def _refine_axis(cf, state, flat, store, shape, d, other_sets, coarse_d, maxiter, half=False):
    """Fill every line along axis ``d`` (other axes at ``other_sets``) from the known
    indices ``coarse_d`` by repeated bisection; each new point is solved from its
    neighbours along ``d``."""
    n = shape[d]
    known = np.array(sorted(set(int(k) for k in coarse_d)))
    others = [np.asarray(s) for s in other_sets]
    grids = np.meshgrid(*others, indexing="ij") if others else []
    other_idx = [g.reshape(-1) for g in grids]
    L = other_idx[0].size if other_idx else 1

    def flat_index(along):
        # along: (m,) indices along d -> (L * m,) flat indices (lines major)
        idx = []
        k = 0
        for e in range(len(shape)):
            if e == d:
                idx.append(np.tile(along, L))
            else:
                idx.append(np.repeat(other_idx[k], along.size))
                k += 1
        return np.ravel_multi_index(tuple(idx), shape)

    while known.size < n:
        gaps = np.flatnonzero(np.diff(known) > 1)
        if gaps.size == 0:
            break
        lo, hi = known[gaps], known[gaps + 1]
        mid = (lo + hi) // 2
        lo2 = np.where(gaps > 0, known[np.maximum(gaps - 1, 0)], -1)
        hi2 = np.where(gaps + 2 < known.size, known[np.minimum(gaps + 2, known.size - 1)], -1)
        new = flat_index(mid)
        nb = np.stack([np.where(np.tile(j, L) >= 0, flat_index(np.maximum(j, 0)), -1) for j in (lo2, lo, hi, hi2)])
        pos = np.stack([np.tile(j, L) for j in (lo2, lo, hi, hi2)]).astype(float)
        _solve_new(cf, state, flat, store, new, nb, pos, np.tile(mid, L).astype(float), maxiter, half)
        known = np.union1d(known, mid)


def _propagate(cf, state, flat, store, shape, maxiter, start=None):
    """Flood roots across the grid: wherever a point has fewer roots than a neighbour
    (along any axis), Newton from the neighbour's roots runs there and every new root is
    kept; repeated until nothing changes. A branch found anywhere in its region of
    existence (e.g. between coarse lines of the other axis) so reaches all of it.

    ``start``: boolean mask of points; only edges touching them are tried first (the rest
    of the grid already propagated), and the flood goes on from every point that gains a
    root. Default: every edge.

    The flood is one stream of Newton iterations (:class:`NewtonBatch`): as soon as a point
    gains a root, Newton starts from it at its neighbours, in the same calls as the
    columns still iterating elsewhere. A branch in a long diagonal sliver moves one grid
    step per few iterations (about 80 steps on the 200 x 200 Fig. 1 diagram), not one step
    per wave of starts that waits for its slowest column. A point is not started again
    while starts there are still iterating. There is no cap: an edge is tried again only
    after one of its ends gained a root, so the flood ends after at most one round per
    root on the grid."""
    P = store.count.size
    names = cf.equations.parameters
    strides = np.array([int(np.prod(shape[d + 1 :], dtype=np.int64)) for d in range(len(shape))])
    index = np.unravel_index(np.arange(P), shape)
    edges = []
    for d in range(len(shape)):
        if shape[d] > 1:
            lo = np.flatnonzero(index[d] < shape[d] - 1)
            edges.append((lo, lo + strides[d]))
    if not edges:
        return
    lo = np.concatenate([e[0] for e in edges])
    hi = np.concatenate([e[1] for e in edges])
    # directed edges target <- source; each tried once until one of its ends changes
    tgt = np.concatenate([lo, hi])
    src = np.concatenate([hi, lo])
    tried = np.zeros(tgt.size, dtype=bool) if start is None else ~(start[tgt] | start[src])
    batch = NewtonBatch(_system(cf), len(cf.unknowns), len(names), chaotic=state == "chaotic",
                        maxiter=min(maxiter, _NEIGHBOUR_MAXITER), compiled=cf.newton_kernel(),
                        variance_max=VARIANCE_MAX)
    owner = np.zeros(0, dtype=int)  # the target point of every column of the batch
    busy = np.zeros(P, dtype=int)  # columns still iterating per target point
    while True:
        todo = np.flatnonzero(~tried & (store.count[tgt] < store.count[src]) & (busy[tgt] == 0))
        if todo.size:
            tried[todo] = True
            u_s, o_s = _columns(store, tgt[todo], src[todo])
            targets = tgt[todo][o_s]
            batch.add(u_s[:-1], [flat[k][targets] for k in names])
            owner = np.concatenate([owner, targets])
            np.add.at(busy, targets, 1)
        if not batch.running:
            return
        done = batch.step()
        if done.size == 0:
            continue
        np.add.at(busy, owner[done], -1)
        roots, ok = _accept(cf, state, batch.result(done), [p[done] for p in batch.params])
        if not np.any(ok):
            continue
        targets, inverse = np.unique(owner[done][ok], return_inverse=True)
        u_t, o_t = _columns(store, targets, targets)
        both = np.concatenate([u_t, roots[:, ok]], axis=1)
        sols, counts = _deduplicate(both, np.ones(both.shape[1], dtype=bool), np.concatenate([o_t, inverse]),
                                    targets.size, state)
        grew = counts > store.count[targets]
        if not np.any(grew):
            continue
        changed = targets[grew]
        store.put(changed, sols[grew], counts[grew])
        mark = np.zeros(P, dtype=bool)
        mark[changed] = True
        tried &= ~(mark[tgt] | mark[src])


def _solve_state(cf, state, flat, shape, *, maxiter):
    """Solutions at every grid point as (sols (P, G, n + 1), counts (P,)); the last entry
    of a solution is its residual ``max |F|``.

    Multi-start on a coarse subgrid; then, axis by axis, every line is filled by bisection:
    a new point starts Newton from its two neighbours' roots interpolated (cubic when four
    neighbours agree on the number of roots), and where the neighbours disagree (a branch is
    born or dies between them) or a root is lost, from every neighbouring root; a point with
    fewer roots than either neighbour gets a full multi-start. Parameter arrays that are not
    grids (not monotone along an axis) get a full multi-start at every point.

    Equations symmetric under ``(mu, kappa) -> (-mu, -kappa)`` (odd ``phi`` and no input
    that breaks the symmetry, see :func:`_mirror_symmetric`) are solved from the starts
    with ``kappa >= 0`` only and every root with ``kappa != 0`` is mirrored: the start set
    is symmetric and Newton's iteration equivariant, so this finds the same roots for about
    half the work. The mirrored roots' residuals are evaluated; should any fail, the
    equations are solved again from every start.
    """
    if _mirror_symmetric(cf, state, flat):
        sols, counts = _solve_grid(cf, state, flat, shape, maxiter, half=True)
        mirrored = _add_mirrors(cf, state, flat, sols, counts)
        if mirrored is not None:
            return mirrored
    return _solve_grid(cf, state, flat, shape, maxiter)


def _solve_grid(cf, state, flat, shape, maxiter, half=False):
    P = int(np.prod(shape, dtype=np.int64))
    n = len(cf.unknowns)
    if P <= _COARSE_ABOVE or len(shape) == 0 or not _is_grid(flat, shape):
        return _multistart(cf, state, flat, np.arange(P), maxiter, half)
    axes = []
    for size in shape:
        stride = max(1, int(np.ceil((size - 1) / (_COARSE_PER_AXIS - 1)))) if size > 1 else 1
        axes.append(np.unique(np.r_[np.arange(0, size, stride), size - 1]))
    coarse = np.ravel_multi_index(tuple(g.reshape(-1) for g in np.meshgrid(*axes, indexing="ij")), shape)
    store = _Store(P, n + 1)
    store.put(coarse, *_multistart(cf, state, flat, coarse, maxiter, half))
    for d in range(len(shape)):
        other_sets = [np.arange(shape[e]) if e < d else axes[e] for e in range(len(shape)) if e != d]
        _refine_axis(cf, state, flat, store, shape, d, other_sets, axes[d], maxiter, half)
    _propagate(cf, state, flat, store, shape, maxiter)
    return store.sols, store.count


#: Points of a grid at which the mirror symmetry of the equations is tested.
_SYMMETRY_POINTS = 3
#: Relative tolerance of that test (round-off of the compiled equations: ~1e-15).
_SYMMETRY_TOL = 1e-12


def _mirror_signs(cf):
    """+1/-1 per unknown (and per equation, in the same order): -1 for ``mu`` and the overlaps."""
    return np.array([-1.0 if name == "mu" or name.startswith("kappa") else 1.0 for name in cf.unknowns])


def _mirror_symmetric(cf, state, flat) -> bool:
    """Whether ``F(S u) = S F(u)`` with ``S`` flipping ``mu`` and every ``kappa``, tested at
    two random ``u`` at the first, middle and last point of the grid (an odd ``phi`` and
    no input mean or input-loading covariance make the equations symmetric). A heuristic:
    :func:`_add_mirrors` checks every mirrored root."""
    P = next(iter(flat.values())).size
    points = np.unique(np.linspace(0, P - 1, min(P, _SYMMETRY_POINTS)).astype(int))
    rng = np.random.default_rng(12345)
    n = len(cf.unknowns)
    m = 2 * points.size
    u = np.empty((n, m))
    u[0] = rng.uniform(-1.5, 1.5, m)
    u[1] = rng.uniform(0.5, 2.0, m)
    first = 2
    if state == "chaotic":
        u[2] = rng.uniform(0.1, 0.8, m) * u[1]
        first = 3
    u[first:] = rng.uniform(-1.5, 1.5, (n - first, m))
    signs = _mirror_signs(cf)[:, None]
    par = [np.repeat(flat[k][points], 2) for k in cf.equations.parameters]
    system = _system(cf)
    F, _ = system(np.concatenate([u, signs * u], axis=1), [np.concatenate([p, p]) for p in par])
    direct, mirrored = F[:, :m], F[:, m:]
    if not (np.all(np.isfinite(direct)) and np.all(np.isfinite(mirrored))):
        return False
    scale = 1 + np.max(np.abs(direct), axis=0)
    return bool(np.all(np.max(np.abs(mirrored - signs * direct), axis=0) <= _SYMMETRY_TOL * scale))


def _add_mirrors(cf, state, flat, sols, counts):
    """Every root with ``kappa != 0`` and its mirror image; None if a mirrored root's
    residual fails the report tolerance (the equations are not symmetric there)."""
    P, G, width = sols.shape
    n = width - 1
    first = 3 if state == "chaotic" else 2
    valid = np.arange(G)[None, :] < counts[:, None]
    structured = valid & (np.max(np.abs(np.nan_to_num(sols[..., first:n])), axis=2) > KAPPA_ZERO)
    point, slot = np.nonzero(structured)
    if point.size == 0:
        return sols, counts
    signs = _mirror_signs(cf)
    u = (sols[point, slot, :n] * signs).T
    par = [flat[k][point] for k in cf.equations.parameters]
    F, _ = _system(cf)(u, par)
    residual = np.max(np.abs(F), axis=0)
    if not np.all(np.isfinite(residual) & (residual <= REPORT_TOL * (1 + np.max(np.abs(u), axis=0)))):
        return None
    rows, owners = np.nonzero(valid)
    both = np.concatenate([sols[rows, owners].T, np.vstack([u, residual])], axis=1)
    owner = np.concatenate([rows, point])
    return _deduplicate(both, np.ones(owner.size, dtype=bool), owner, P, state)


def solve(net: GaussianLowRank, g, *, states=STATES, regime: str = "current", spacing: float | None = None,
          maxiter: int = 50, admissible_only: bool = True, **params) -> SolveResult:
    r"""Every stationary and chaotic mean-field solution at one or many parameter points.

    Newton's method with the compiled symbolic Jacobian runs from a grid of starts
    (overlaps ``kappa`` from negative to positive, the field statistics relaxed to each),
    all points and starts in one vectorised batch; converged roots are deduplicated per
    point. The chaotic equations use the energy equation divided by
    ``Delta_0 - Delta_inf`` and keep ``0 <= Delta_inf < Delta_0``. Stationary solutions get
    the bulk radius and outliers of ``J diag(phi')`` (:func:`dmftools.derive_stability`).

    Exactly at a bifurcation the root is singular and Newton converges only linearly; a
    root accepted on its residual there is re-solved with the overlaps near 0 held at 0
    (the ``kappa = 0`` subspace is invariant without inputs along ``m``, and the root is
    regular within it), so e.g. at ``g = g_B`` one chaotic solution with ``kappa = 0`` is
    reported instead of several approximations of it. Near (not at) a bifurcation,
    neighbouring roots closer than the attainable accuracy ``~ residual^(1/3)`` may
    still be reported separately, and the roots are ill-conditioned: e.g. at
    ``g = g_C + 1e-4`` (Fig. 1 parameters) the structured chaotic solution's
    ``Delta_0 - Delta_inf = 2.7e-4`` carries a relative error of ~1e-3 (``Delta_inf``
    ~1e-7), because quadrature round-off (1e-15) enters the energy equation divided by
    that gap. Such a root may not reach Newton's ``ftol``; one where Newton stalls with a
    residual below ``REPORT_TOL * (1 + max |u|)`` (``REPORT_TOL = 1e-10``) and a correction
    below ``2.5e-8 * (1 + max |u|)`` is reported, with that residual: the root is known to
    its correction.

    Solutions are sought with ``delta0 <= VARIANCE_MAX`` (1e8, i.e. ``g`` up to ~1e4 for a
    bounded ``phi``); iterates beyond it are rejected, so larger solutions are not found.

    With the compiled Newton iteration (the ``jit`` extra, numba) the two states are solved
    on two threads, the same results as on one; ``DMFTOOLS_THREADS=1`` in the environment
    keeps one thread.

    On a grid (parameters monotone along every axis) the roots are continued from a coarse
    multi-start to every point through its neighbours; points next to a change in the
    number of roots of the other state get a full multi-start as well, so that branches in
    thin slivers between grid lines are not missed.

    When the equations are symmetric under ``(mu, kappa) -> (-mu, -kappa)`` (an odd
    ``phi`` and no input that breaks the symmetry; tested numerically) only the starts
    with ``kappa >= 0`` are run and every root with ``kappa != 0`` is mirrored, after its
    residual is checked; the roots are the same for about half the work.

    Parameters
    ----------
    net : GaussianLowRank
        The model (e.g. :func:`dmftools.RankOne`).
    g : float or array_like
        Random connectivity strength(s), >= 0.
    states : sequence of {"stationary", "chaotic"}
        Which kinds of solutions to look for.
    regime : {"current", "rate"}
        The rate model's unknowns are the statistics of ``y = J r + I``; its solutions
        and their stability coincide with the current model's (THEORY.md section 6).
    spacing : float, optional
        Quadrature lattice spacing (see :meth:`MeanFieldEquations.compile`).
    maxiter : int
        Newton iterations per start.
    admissible_only : bool
        Drop chaotic solutions that are not a maximum of the potential
        (``V''(Delta_inf) >= 0``), which are not reached by the dynamics.
    **params
        Model parameters by keyword (``Mm``, ``Mn``, ``MI``, ...), scalars or arrays; all
        arguments broadcast to one grid.

    Returns
    -------
    SolveResult
        Iterating yields :class:`Solution` objects; per-state arrays over the grid are in
        ``result["stationary"]`` / ``result["chaotic"]``.

    Examples
    --------
    >>> import dmftools as dmf
    >>> net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    >>> sols = dmf.solve(net, g=0.5)
    >>> [(s.branch, s.label, round(s.kappa, 6) + 0.0) for s in sols]
    [('negative', 'stationary-stable', -1.224509), ('central', 'stationary-unstable', 0.0), ('positive', 'stationary-stable', 1.224509)]
    """
    check_net(net)
    states = check_states(states)
    check_regime(regime)
    maxiter = check_int("maxiter", maxiter, 1)
    cf_stat = compiled(net, "stationary", regime, spacing)
    shape, flat = prepare_parameters(cf_stat, g, params)
    P = int(np.prod(shape, dtype=np.int64))
    if P > _MAX_POINTS:
        raise ValueError(f"g/params: the grid has {P} points, more than this solver batches at once "
                         f"({_MAX_POINTS}); split the grid or use phase_diagram with an executor")
    cfs = {state: compiled(net, state, regime, spacing) for state in states}
    raw = dict(zip(states, _each(lambda state: _solve_state(cfs[state], state, flat, shape, maxiter=maxiter),
                                 states, cfs)))
    search = _boundary_targets(raw, flat, shape)
    jobs = {state: _Job(net, state, regime, spacing, flat, shape, maxiter, admissible_only, raw[state], search[state])
            for state in states}
    return SolveResult(net, regime, shape, flat, dict(zip(states, _each(lambda state: _assemble(jobs[state]),
                                                                        states, cfs))))


#: Environment variable: how many threads :func:`solve` may use for its two states (default
#: 2, at most the usable cores; "1" solves them one after the other).
THREADS_ENV = "DMFTOOLS_THREADS"
_THREADS = None  # the pool of :func:`_each`; not inherited by forked children (they start their own)


def _forget_threads():
    global _THREADS
    _THREADS = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads)


def _thread_count() -> int:
    raw = os.environ.get(THREADS_ENV, "2").strip()
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{THREADS_ENV}: must be an integer >= 1, got {raw!r}")
    return min(value, usable_cores())


def _each(fn, states, cfs) -> list:
    """``[fn(state) for state in states]``, the states on concurrent threads when their
    Newton iterations are compiled (they run without the GIL) and there are cores for them
    (:data:`THREADS_ENV`); the states are independent, so the results are the same either
    way, in order."""
    global _THREADS
    if len(states) != 2 or _thread_count() < 2 or any(cfs[s].newton_kernel() is None for s in states):
        return [fn(state) for state in states]
    if _THREADS is None:
        _THREADS = ThreadPoolExecutor(1, thread_name_prefix="dmftools")  # the calling thread takes the other state
    second = _THREADS.submit(fn, states[1])
    first = fn(states[0])
    return [first, second.result()]


def _boundary_points(counts, shape) -> np.ndarray:
    """Mask of grid points whose number of roots (``counts``, flat) differs from a neighbour's."""
    mask = np.zeros(shape, dtype=bool)
    c = np.asarray(counts).reshape(shape)
    for d in range(len(shape)):
        if shape[d] < 2:
            continue
        differ = np.diff(c, axis=d) != 0
        lo = [slice(None)] * len(shape)
        hi = [slice(None)] * len(shape)
        lo[d], hi[d] = slice(0, -1), slice(1, None)
        mask[tuple(lo)] |= differ
        mask[tuple(hi)] |= differ
    return mask.reshape(-1)


def _boundary_targets(raw: dict, flat, shape) -> dict:
    """Per state, the grid points where :func:`_search_state` runs a multi-start: next to a
    change in the number of roots of *another* state, but not of its own.

    Neighbour continuation finds every branch that some point's multi-start found, and
    tries every root next to a change of a state's own root count. A branch that exists
    only in a thin (e.g. diagonal) sliver between the coarse lines would still be missed:
    near the triple point of M&O Fig. 1 structured chaos appears where the structured fixed
    points lose stability, next to changes of the *stationary* roots' count, while the
    chaotic roots' count does not change around it. With this search the grid solve finds
    every root that a multi-start at every point finds (checked on the 100 x 100 and
    200 x 200 grids of Fig. 1; tested on a 21 x 24 one)."""
    P = int(np.prod(shape, dtype=np.int64))
    none = np.array([], dtype=int)
    if P <= _COARSE_ABOVE or len(shape) == 0 or not _is_grid(flat, shape):
        return {state: none for state in raw}  # every point had a full multi-start
    own = {state: _boundary_points(raw[state][1], shape) for state in raw}
    out = {}
    for state in raw:
        others = [own[other] for other in raw if other != state]
        out[state] = np.flatnonzero(np.logical_or.reduce(others) & ~own[state]) if others else none
    return out


def _search_state(cf, state, flat, shape, raw, points, maxiter) -> tuple:
    """Multi-start at ``points`` (:func:`_boundary_targets`), new roots flooded across the
    grid (:func:`_propagate`); returns the updated ``(sols, counts)``."""
    sols, counts = raw
    if points.size == 0:
        return raw
    P = counts.size
    sub = {k: v[points] for k, v in flat.items()}
    half = _mirror_symmetric(cf, state, sub)
    s_m, c_m = _multistart(cf, state, flat, points, maxiter, half)
    if half:
        mirrored = _add_mirrors(cf, state, sub, s_m, c_m)
        s_m, _ = mirrored if mirrored is not None else _multistart(cf, state, flat, points, maxiter)
    merged, c_u = _union(sols[points], s_m, state)
    grew = c_u > counts[points]
    if not np.any(grew):
        return raw
    store = _Store(P, sols.shape[2])
    store.put(np.arange(P), sols, counts)
    store.put(points[grew], merged[grew], c_u[grew])
    start = np.zeros(P, dtype=bool)
    start[points[grew]] = True
    _propagate(cf, state, flat, store, shape, maxiter, start=start)
    return store.sols, store.count


@dataclass(frozen=True)
class _Job:
    """One state on a grid or a band of it (parameter arrays flat, C order), for a worker:
    :func:`_solve_band` finds its raw roots, :func:`_assemble` searches more at the
    points ``search`` and turns ``raw`` into the result object."""

    net: GaussianLowRank
    state: str
    regime: str
    spacing: float | None
    flat: dict
    shape: tuple
    maxiter: int = 50
    admissible_only: bool = True
    raw: tuple | None = None
    search: np.ndarray | None = None


def _solve_band(job: _Job) -> tuple:
    """Raw roots ``(sols, counts)`` (:func:`_solve_state`)."""
    cf = compiled(job.net, job.state, job.regime, job.spacing)
    return _solve_state(cf, job.state, job.flat, job.shape, maxiter=job.maxiter)


def _assemble(job: _Job) -> StateSolutions:
    """:class:`StateSolutions` from raw roots, after the boundary search at ``job.search``
    (:func:`_search_state`): residuals, stability, branch slots."""
    cf = compiled(job.net, job.state, job.regime, job.spacing)
    sols, counts = job.raw
    if job.search is not None:
        sols, counts = _search_state(cf, job.state, job.flat, job.shape, job.raw, job.search, job.maxiter)
    return StateSolutions.from_roots(cf, job.state, sols, counts, job.flat, job.shape,
                                     admissible_only=job.admissible_only,
                                     stability=compiled(job.net, "stationary", job.regime, job.spacing))


def _map(executor, fn, tasks) -> list:
    out = []
    for value in executor.map(fn, tasks):
        if not isinstance(value, (tuple, StateSolutions)) and callable(getattr(value, "result", None)):
            value = value.result()  # dask.distributed Client.map returns futures
        out.append(value)
    return out


def solve_parallel(net, flat, shape, *, executor, bands: int = 1, states=STATES, regime="current", spacing=None,
                   maxiter=50, admissible_only=True) -> SolveResult:
    """:func:`solve` as tasks on ``executor`` (anything with ``.map``; futures, as from a
    ``dask.distributed.Client``, are resolved): one per state and band of the grid, then
    one per state for the boundary search (:func:`_boundary_targets`), stability and
    branch slots.

    With one band the result is identical to :func:`solve`'s. With ``bands > 1`` the grid
    is split into contiguous bands along its last axis; the bands' roots are joined and
    flooded across the seams (:func:`_propagate`), so a branch found in one band reaches
    its neighbours. Each band has its own coarse multi-start, so results may then differ
    from :func:`solve` where that finds different roots; they do not depend on the
    executor.

    ``flat``/``shape``: validated parameters (:func:`prepare_parameters`).
    """
    P = int(np.prod(shape, dtype=np.int64))
    axis = len(shape) - 1
    splits = [c for c in np.array_split(np.arange(shape[axis] if shape else 1), bands) if c.size]
    if len(splits) > 1:
        index = np.arange(P).reshape(shape)
        members = [np.take(index, c, axis=axis).reshape(-1) for c in splits]
        shapes = [tuple(shape[:axis]) + (c.size,) for c in splits]
    else:
        members, shapes = [np.arange(P)], [tuple(shape)]
    largest = max(m.size for m in members)
    if largest > _MAX_POINTS:
        raise ValueError(f"bands: a band of {largest} points is more than the solver batches at once "
                         f"({_MAX_POINTS}); use more bands")
    # the chaotic tasks first: they take about three times as long (nested averages), and
    # executors that hand out tasks in order then keep every worker busy to the end
    order = sorted(states, key=lambda state: state != "chaotic")
    tasks = [_Job(net, state, regime, spacing, {k: v[m] for k, v in flat.items()}, band_shape, maxiter)
             for state in order for m, band_shape in zip(members, shapes)]
    results = iter(_map(executor, _solve_band, tasks))
    seam = np.zeros(shape, dtype=bool)  # the columns on either side of each seam
    for c in splits[1:]:
        seam[(slice(None),) * axis + (slice(int(c[0]) - 1, int(c[0]) + 1),)] = True
    raw = {}
    for state in order:
        cf = compiled(net, state, regime, spacing)
        store = _Store(P, len(cf.unknowns) + 1)
        for m in members:
            store.put(m, *next(results))
        if len(members) > 1:
            _propagate(cf, state, flat, store, shape, maxiter, start=seam.reshape(-1))
        raw[state] = (store.sols, store.count)
    search = _boundary_targets(raw, flat, shape)
    jobs = [_Job(net, state, regime, spacing, flat, shape, maxiter, admissible_only, raw[state], search[state])
            for state in order]
    assembled = dict(zip(order, _map(executor, _assemble, jobs)))
    return SolveResult(net, regime, shape, flat, {state: assembled[state] for state in states})
