"""All stationary and chaotic mean-field solutions at one or many parameter points."""

from __future__ import annotations

import numpy as np

from ..model import GaussianLowRank
from ..symbolic.derive import REGIMES, derive
from ._newton import newton
from ._results import SolveResult, StateSolutions

__all__ = ["solve", "prepare_parameters", "compiled"]

STATES = ("stationary", "chaotic")
#: Solutions closer than this (relative, max-norm) are the same solution.
_DUPLICATE_TOL = 1e-7
#: Chaotic solutions with delta0 - delta_inf below this (relative) coincide with a fixed point.
_DEGENERATE_TOL = 1e-9
#: Reported solutions have max |residual| below this times (1 + max |u|).
REPORT_TOL = 1e-10
#: Largest number of parameter points x starts handled in one vectorised call.
MAX_BATCH = 2_000_000


_COMPILED: dict = {}


def _model_key(net):
    return (net.rank, net.means.tobytes(), net.cov.tobytes(), net.phi.name, str(net.phi.expr))


def compiled(net, state, regime="current", spacing=None):
    """The compiled equations of ``net`` (cached per model, state, regime and spacing)."""
    key = (_model_key(net), state, regime, spacing)
    if key not in _COMPILED:
        if len(_COMPILED) > 64:
            _COMPILED.clear()
        _COMPILED[key] = derive(net, state, regime).compile(spacing=spacing)
    return _COMPILED[key]


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


def _system(cf):
    def system(u, params):
        # iterates may leave the domain (e.g. delta_inf -> delta0); non-finite values are
        # handled by the Newton iteration, so floating-point warnings are expected here
        with np.errstate(all="ignore"):
            return cf.system(list(u) + list(params))
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


def _starts(cf, state, flat, P):
    """Starting points (n, P * S): a grid of overlaps, statistics relaxed to them."""
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


def _deduplicate(u, ok, P, S):
    """Per point, unique solutions among the S columns (converged ones only)."""
    n = u.shape[0]
    u = u.reshape(n, P, S)
    ok = ok.reshape(P, S)
    found = []
    for p in range(P):
        sols = []
        for s in np.flatnonzero(ok[p]):
            v = u[:, p, s]
            if all(np.max(np.abs(v - w)) > _DUPLICATE_TOL * (1 + np.max(np.abs(w))) for w in sols):
                sols.append(v)
        found.append(sols)
    return found


def _run(cf, state, u0, par, maxiter):
    result = newton(_system(cf), u0, par, chaotic=state == "chaotic", maxiter=maxiter)
    u = result.u
    scale = 1 + np.max(np.abs(u), axis=0)
    ok = result.converged & (result.residual <= REPORT_TOL * scale)
    if state == "chaotic":
        ok &= (u[2] >= 0) & (u[1] - u[2] > _DEGENERATE_TOL * (1 + u[1]))
    return u, ok


def _multistart(cf, state, flat, points, maxiter):
    """Full multi-start at the given flat point indices; returns {point: [solutions]}."""
    if len(points) == 0:
        return {}
    sub = {k: v[points] for k, v in flat.items()}
    u0, par, S = _starts(cf, state, sub, len(points))
    u, ok = _run(cf, state, u0, par, maxiter)
    return dict(zip(points, _deduplicate(u, ok, len(points), S)))


#: Grids with more points than this are solved coarse-to-fine.
_COARSE_ABOVE = 24
#: Coarse subgrid stride target: about this many coarse points per axis.
_COARSE_PER_AXIS = 9


def _solve_state(cf, state, flat, shape, *, maxiter):
    """Solutions at every grid point: multi-start on a coarse subgrid, then Newton from
    the coarse cell's solutions at every other point; cells whose corners disagree on the
    number of solutions (a branch is born or dies inside) get a full multi-start."""
    P = int(np.prod(shape, dtype=np.int64))
    if P <= _COARSE_ABOVE or len(shape) == 0:
        found = _multistart(cf, state, flat, np.arange(P), maxiter)
        return [found[p] for p in range(P)]
    axes = []
    for n in shape:
        stride = max(1, int(np.ceil((n - 1) / (_COARSE_PER_AXIS - 1)))) if n > 1 else 1
        axes.append(np.unique(np.r_[np.arange(0, n, stride), n - 1]))
    coarse_nd = np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(shape), -1)
    coarse = np.ravel_multi_index(tuple(coarse_nd), shape)
    found = _multistart(cf, state, flat, coarse, maxiter)
    index = np.array(np.unravel_index(np.arange(P), shape))  # (ndim, P)
    lower = [np.searchsorted(ax, index[d], side="right") - 1 for d, ax in enumerate(axes)]
    corners_of = {}
    for p in range(P):
        if p in found:
            continue
        corner_sets = []
        for bits in np.ndindex(*([2] * len(shape))):
            c = []
            for d, b in enumerate(bits):
                j = min(lower[d][p] + b, len(axes[d]) - 1)
                c.append(axes[d][j])
            corner_sets.append(int(np.ravel_multi_index(tuple(c), shape)))
        corners_of[p] = sorted(set(corner_sets))
    # Newton from the corners' solutions
    fine = [p for p in corners_of if len({len(found[c]) for c in corners_of[p]}) == 1]
    columns, owners = [], []
    for p in fine:
        for c in corners_of[p]:
            for v in found[c]:
                columns.append(v)
                owners.append(p)
    if columns:
        u0 = np.array(columns).T
        owners = np.array(owners)
        par = [flat[k][owners] for k in cf.equations.parameters]
        u, ok = _run(cf, state, u0, par, maxiter)
        for p in fine:
            found[p] = []
        for col in np.flatnonzero(ok):
            p = int(owners[col])
            v = u[:, col]
            if all(np.max(np.abs(v - w)) > _DUPLICATE_TOL * (1 + np.max(np.abs(w))) for w in found[p]):
                found[p].append(v)
    for p in fine:
        found.setdefault(p, [])
    # cells with a birth or death inside: full multi-start
    rest = np.array([p for p in corners_of if p not in found], dtype=int)
    found.update(_multistart(cf, state, flat, rest, maxiter))
    return [found[p] for p in range(P)]


def solve(net: GaussianLowRank, g, *, states=STATES, regime: str = "current", spacing: float | None = None,
          maxiter: int = 50, admissible_only: bool = True, **params) -> SolveResult:
    r"""Every stationary and chaotic mean-field solution at one or many parameter points.

    Newton's method with the compiled symbolic Jacobian runs from a grid of starts
    (overlaps ``kappa`` from negative to positive, the field statistics relaxed to each),
    all points and starts in one vectorised batch; converged roots are deduplicated per
    point. The chaotic equations use the energy equation divided by
    ``Delta_0 - Delta_inf`` and keep ``0 <= Delta_inf < Delta_0``. Stationary solutions get
    the bulk radius and outliers of ``J diag(phi')`` (:func:`dmftools.derive_stability`).

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
    if not isinstance(net, GaussianLowRank):
        raise TypeError(f"net: expected a GaussianLowRank (e.g. dmftools.RankOne(...)), got {type(net).__name__}")
    if isinstance(states, str):
        states = (states,)
    for s in states:
        if s not in STATES:
            raise ValueError(f"states: each must be one of {STATES}, got {s!r}")
    if regime not in REGIMES:
        raise ValueError(f"regime: must be one of {REGIMES}, got {regime!r}")
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        raise ValueError(f"maxiter: must be a positive integer, got {maxiter!r}")
    cf_stat = compiled(net, "stationary", regime, spacing)
    shape, flat = prepare_parameters(cf_stat, g, params)
    P = int(np.prod(shape, dtype=np.int64))
    if P * 22 * 2 > MAX_BATCH:
        raise ValueError(f"g/params: the grid has {P} points, more than this solver batches at once "
                         f"({MAX_BATCH // 44}); split the grid or use phase_diagram with an executor")
    out = {}
    for state in states:
        cf = compiled(net, state, regime, spacing)
        per_point = _solve_state(cf, state, flat, shape, maxiter=maxiter)
        out[state] = StateSolutions.from_points(cf, state, per_point, flat, shape, admissible_only=admissible_only,
                                                stability=compiled(net, "stationary", regime, spacing))
    return SolveResult(net, regime, shape, flat, out)
