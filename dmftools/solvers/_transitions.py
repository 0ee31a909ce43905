"""Transitions along one parameter: detected on a sampled sweep, located by augmented systems.

Each transition is the root of the mean-field equations augmented by one condition and
the parameter as an extra unknown:

* ``"chaos-onset"``: a stationary solution whose bulk radius reaches 1,
  ``g^2 [phi'^2](mu, Delta_0) = 1`` (the radius is :func:`dmftools.derive_stability`'s);
* ``"stationary-bifurcation"``: the Jacobian of the stationary equations is singular (a
  fold, or a pitchfork where the overlap kappa bifurcates; equivalently an outlier of
  ``J diag(phi')`` crosses 1);
* ``"chaotic-bifurcation"``: the Jacobian of the chaotic equations is singular (a chaotic
  branch is born or ends, e.g. where the structured chaotic solutions shrink to kappa = 0).

The condition functions use the compiled symbolic Jacobian and radius; the augmented
system is solved with MINPACK's ``hybr`` (:func:`scipy.optimize.root`) to ``xtol = 1e-14``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import root

from ._checks import check_int, check_param, check_span
from ._solve import compiled, prepare_parameters, solve

__all__ = ["Transition", "transitions", "locate"]

KINDS = ("chaos-onset", "stationary-bifurcation", "chaotic-bifurcation")
#: Chaotic transitions closer than this (relative gap Delta_0 - Delta_inf) to a collapse onto
#: a fixed point are not resolved: the energy equation divided by the gap is singular there
#: and the determinant of its Jacobian changes sign spuriously.
RESOLVED_GAP = 1e-3


@dataclass(frozen=True)
class Transition:
    """A located transition.

    Attributes
    ----------
    kind : {"chaos-onset", "stationary-bifurcation", "chaotic-bifurcation"}
    param : str
        The parameter that was varied.
    value : float
        Where the transition is.
    state : {"stationary", "chaotic"}
        Which equations the branch solves.
    branches : tuple of str
        Branch slots (see :class:`dmftools.Solution`) on which it was detected.
    solution : dict
        The unknowns at the transition.
    residual : float
        ``max |.|`` of the augmented system at the root.
    success : bool
    message : str
    parameters : dict
        The other parameters.
    """

    kind: str
    param: str
    value: float
    state: str
    branches: tuple
    solution: dict
    residual: float
    success: bool
    message: str
    parameters: dict = field(repr=False)

    def __str__(self) -> str:
        sol = ", ".join(f"{k}={v:.10g}" for k, v in self.solution.items())
        return (f"{self.kind:<23s} {self.param}={self.value:.12g} on {self.state} "
                f"{'/'.join(self.branches)} ({sol}) residual={self.residual:.1e}")

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("kind", "param", "value", "state", "residual", "success", "message")}
        d["branches"] = list(self.branches)
        d["solution"] = {k: float(v) for k, v in self.solution.items()}
        d["parameters"] = {k: float(v) for k, v in self.parameters.items()}
        return d


def _condition(kind, cf, cf_stat, ordered):
    if kind == "chaos-onset":
        radius, _ = cf_stat.stability(ordered)
        return radius - 1.0
    _, J = cf.system(ordered)
    return np.linalg.det(np.moveaxis(J, -1, 0))


class Augmented:
    """The mean-field equations of ``state`` augmented by the condition of ``kind``, batched.

    Variables ``w`` are the unknowns (without the ``frozen`` rows, held at 0) followed by
    the parameters named in ``free`` (one for a transition point, two for a boundary
    curve); the other parameters are fixed at ``base``. Calling it on ``(m, B)`` columns
    gives the ``(m - len(free) + 1, B)`` values of the equations and the condition, NaN
    outside the domain (negative variance, ``Delta_inf >= Delta_0``, ``g < 0``).
    """

    def __init__(self, net, kind, state, base, free, frozen=(), *, regime="current", spacing=None):
        if kind not in KINDS:
            raise ValueError(f"kind: must be one of {KINDS}, got {kind!r}")
        self.cf = compiled(net, state, regime, spacing)
        self.cf_stat = compiled(net, "stationary", regime, spacing)
        self.kind = kind
        self.chaotic = state == "chaotic"
        self.n = len(self.cf.unknowns)
        self.names = list(self.cf.equations.parameters)
        self.base = dict(base)
        self.params = list(free)
        self.frozen = list(frozen)
        self.rows = [i for i in range(self.n) if i not in self.frozen]
        self.kappa_rows = list(range(self.n - self.cf.equations.model.rank, self.n))

    @property
    def variables(self):
        return self.rows + [self.n + k for k in range(len(self.params))]

    def full(self, w):
        """``(n + len(free), B)``: unknowns (frozen rows 0) then the free parameters."""
        w = np.atleast_2d(np.asarray(w, dtype=float).T).T
        z = np.zeros((self.n + len(self.params), w.shape[1]))
        z[self.variables] = w
        return z

    def ordered(self, z):
        B = z.shape[1]
        values = {k: np.full(B, float(v)) for k, v in self.base.items()}
        for k, name in enumerate(self.params):
            values[name] = z[self.n + k]
        return list(z[: self.n]) + [values[k] for k in self.names], values

    def __call__(self, w):
        z = self.full(w)
        o, values = self.ordered(z)
        bad = (z[1] < 0) | (values["g"] < 0) | ~np.all(np.isfinite(z), axis=0)
        if self.chaotic:
            bad |= (z[2] < 0) | ~(z[1] - z[2] > 0)
        out = np.full((len(self.rows) + 1, z.shape[1]), np.nan)
        ok = ~bad
        if np.any(ok):
            with np.errstate(all="ignore"):
                o = [a[ok] for a in o]
                F, _ = self.cf.system(o)
                c = _condition(self.kind, self.cf, self.cf_stat, o)
            out[:, ok] = np.vstack([F[self.rows], c])
        return out

    def H(self, w):
        return self(w)[:, 0]

    def jacobian(self, w):
        """Central differences, all columns in one batched evaluation; one-sided where a
        variable sits on its bound (e.g. ``Delta_inf = 0``)."""
        w = np.asarray(w, dtype=float)
        m1 = w.size
        h = 1e-7 * (1 + np.abs(w))
        cols = np.repeat(w[:, None], 2 * m1 + 1, axis=1)
        idx = np.arange(m1)
        cols[idx, 2 * idx] += h
        cols[idx, 2 * idx + 1] -= h
        vals = self(cols)
        plus, minus, centre = vals[:, 0:-1:2], vals[:, 1:-1:2], vals[:, -1:]
        return np.where(np.isfinite(minus), (plus - minus) / (2 * h), (plus - centre) / h)

    def project(self, w):
        z = self.full(w)[:, 0]
        z[1] = max(z[1], 0.0)
        if self.chaotic:
            z[2] = max(z[2], 0.0)
        for k, name in enumerate(self.params):
            if name == "g":
                z[self.n + k] = max(z[self.n + k], 0.0)
        return z[self.variables]

    def freeze(self, rows):
        """The same system with ``rows`` of the unknowns held at 0 (their equations dropped)."""
        out = Augmented.__new__(Augmented)
        out.__dict__.update(self.__dict__)
        out.frozen = list(rows)
        out.rows = [i for i in range(self.n) if i not in out.frozen]
        return out


#: |kappa| below this at a bifurcation's start: try the kappa = 0 subspace first.
_SYMMETRIC_KAPPA = 1e-6


def symmetric_start(aug, u0, p0):
    """For a bifurcation from a branch with kappa ~ 0: if kappa = 0 is an exact solution
    (an invariant subspace, as for the kappa -> -kappa symmetry without inputs along m),
    the pitchfork is regular only within it (the determinant is even in kappa). Solve the
    system with kappa held at 0; returns ``(frozen system, w, residual)`` if the solution
    also solves the kappa equations, else ``None``."""
    u0 = np.asarray(u0, dtype=float)
    if aug.kind == "chaos-onset" or np.any(np.abs(u0[aug.kappa_rows]) > _SYMMETRIC_KAPPA):
        return None
    fro = aug.freeze(aug.kappa_rows)
    w, residual = _newton(fro, fro.project(np.r_[np.delete(u0, aug.kappa_rows), np.atleast_1d(p0)]))
    if not residual < 1e-12:
        return None
    F = aug(fro.full(w)[:, 0])[: aug.n, 0]
    if not np.all(np.abs(F[aug.kappa_rows]) <= 1e-12):
        return None
    return fro, w, residual


def _newton(aug, w, maxiter=30):
    """Newton on a square augmented system with the batched finite-difference Jacobian.

    Steps are capped at half the size of the iterate (a start from a sampled bracket can
    be far from the root, and huge variances make every evaluation expensive); it gives
    up when the residual has not halved in 6 iterations.
    """
    best, best_norm = w, np.inf
    since = 0
    for _ in range(maxiter):
        F = aug.H(w)
        norm = float(np.max(np.abs(F))) if np.all(np.isfinite(F)) else np.inf
        if norm < 0.5 * best_norm:
            since = 0
        else:
            since += 1
        if norm < best_norm:
            best, best_norm = w, norm
        if norm <= 1e-15 or not np.isfinite(norm) or since > 6:
            break
        try:
            dw = np.linalg.solve(aug.jacobian(w), -F)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(dw)):
            break
        dw /= max(1.0, float(np.max(np.abs(dw) / (0.5 * (1 + np.abs(w))))))
        w = aug.project(w + dw)
        if np.max(np.abs(dw)) <= 1e-15 * (1 + np.max(np.abs(w))):
            F = aug.H(w)
            norm = float(np.max(np.abs(F))) if np.all(np.isfinite(F)) else np.inf
            if norm < best_norm:
                best, best_norm = w, norm
            break
    return best, best_norm


def locate(net, kind, state, u0, param, p0, params, *, regime="current", spacing=None, xtol=1e-14):
    """Solve the augmented system of ``kind`` from ``(u0, p0)``; returns (u, p, residual, ok, message).

    ``params`` holds every parameter (scalars) by name, including ``g``. Newton's method
    with a batched finite-difference Jacobian; MINPACK's ``hybr`` if it does not converge.
    """
    base = {k: float(v) for k, v in params.items() if k != param}
    aug = Augmented(net, kind, state, base, [param], regime=regime, spacing=spacing)
    message = "Newton converged"
    symmetric = symmetric_start(aug, u0, p0)
    if symmetric is not None:
        aug, w, residual = symmetric
        w0 = w
    else:
        w0 = np.r_[np.asarray(u0, dtype=float), float(p0)]
        w, residual = _newton(aug, aug.project(w0))
    if not residual < 1e-12:

        def fun(y):
            v = aug.H(aug.project(y))
            return np.where(np.isfinite(v), v, 1e6)

        sol = root(fun, w0, method="hybr", options=dict(xtol=xtol))
        w = aug.project(sol.x)
        value = aug.H(w)
        residual = float(np.max(np.abs(value))) if np.all(np.isfinite(value)) else np.inf
        message = sol.message
    z = aug.full(w)[:, 0]
    # a regular root is solved to rounding (~1e-15); near-degenerate augmented systems
    # (two conditions nearly the same, as radius = 1 and the variance equation at
    # Delta_0 -> 0) stall at larger residuals and are not roots
    ok = residual < 1e-12
    return z[: aug.n], float(z[aug.n]), residual, ok, message


def transitions(net, param: str = "g", span=(0.01, 4.0), *, g=None, regime: str = "current",
                samples: int = 41, spacing: float | None = None, **params) -> list[Transition]:
    r"""Locate the transitions along one parameter.

    The sweep ``linspace(*span, samples)`` is solved with :func:`dmftools.solve`; sign
    changes of the conditions (bulk radius - 1, determinant of the Jacobian) and branches
    that appear or vanish between samples bracket transitions, each then located by
    solving the augmented system (see the module notes) to about 1e-12.

    Parameters
    ----------
    net : GaussianLowRank
    param : str
        ``"g"`` or a model parameter keyword (``"Mn"``, ``"MI"``, ...).
    span : (float, float)
        Increasing interval of ``param``.
    g : float, optional
        Required when ``param`` is not ``"g"``.
    regime : {"current", "rate"}
    samples : int
        Sweep resolution (transitions closer than a step apart may be missed).
    spacing : float, optional
        Quadrature lattice spacing.
    **params
        Other model parameters (scalars).

    Returns
    -------
    list of Transition
        Sorted by value; transitions found on several branches at the same value are
        reported once.

    Examples
    --------
    >>> import dmftools as dmf
    >>> net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    >>> ts = dmf.transitions(net, "g", (1.5, 2.5), samples=21)
    >>> [(t.kind, round(t.value, 6)) for t in ts]
    [('chaos-onset', 1.795899), ('stationary-bifurcation', 2.059319), ('chaotic-bifurcation', 2.135792)]
    """
    lo, hi = check_span(span, param)
    samples = check_int("samples", samples, 3)
    cf_stat = compiled(net, "stationary", regime, spacing)
    check_param(param, g, cf_stat.equations.parameters)
    grid = np.linspace(lo, hi, int(samples))
    sweep_kw = dict(params)
    if param == "g":
        result = solve(net, g=grid, regime=regime, spacing=spacing, **sweep_kw)
    else:
        sweep_kw[param] = grid
        result = solve(net, g=g, regime=regime, spacing=spacing, **sweep_kw)
    _, flat = prepare_parameters(cf_stat, g if param != "g" else grid, sweep_kw)
    return located_transitions(net, result, param, grid, flat, regime=regime, spacing=spacing)


def located_transitions(net, result, param, grid, flat, *, regime="current", spacing=None) -> list[Transition]:
    """Transitions along a 1-D :class:`SolveResult` sweep of ``param`` over ``grid``.

    ``flat`` holds every parameter as a flat array along the sweep.
    """
    cf_stat = compiled(net, "stationary", regime, spacing)
    candidates = []
    for state, ss in result.states.items():
        cf = compiled(net, state, regime, spacing)
        names = cf.unknowns
        for j, branch in enumerate(ss.branches):
            found = ss.found[j]
            u = np.array([ss.values[k][j] for k in names])
            cond = {}
            idx = np.flatnonzero(found)
            if idx.size:
                o = [u[i][idx] for i in range(len(names))] + [flat[k][idx] for k in cf.equations.parameters]
                with np.errstate(all="ignore"):
                    if state == "stationary":
                        cond["chaos-onset"] = np.full(grid.size, np.nan)
                        cond["chaos-onset"][idx] = _condition("chaos-onset", cf, cf_stat, o)
                    kind = f"{state}-bifurcation"
                    cond[kind] = np.full(grid.size, np.nan)
                    cond[kind][idx] = _condition(kind, cf, cf_stat, o)
            for i in range(grid.size - 1):
                a, b = found[i], found[i + 1]
                if a and b:
                    for kind, c in cond.items():
                        if np.sign(c[i]) != np.sign(c[i + 1]) and c[i] != 0:
                            w = abs(c[i]) / (abs(c[i]) + abs(c[i + 1]))
                            p_lin = grid[i] + w * (grid[i + 1] - grid[i])
                            # chaos onsets are located from both ends: a slot may hold
                            # different solutions on the two sides (e.g. the trivial fixed
                            # point below g = 1, the heterogeneous one above)
                            ends = (i, i + 1) if kind == "chaos-onset" else ((i,) if w < 0.5 else (i + 1,))
                            for k in ends:
                                candidates.append((kind, state, branch, u[:, k], p_lin, (grid[i], grid[i + 1]),
                                                   i, k))
                elif a != b:
                    k = i if a else i + 1
                    candidates.append((f"{state}-bifurcation", state, branch, u[:, k], grid[k],
                                       (grid[i], grid[i + 1]), i, k))
    # one root per kind and bracket: prefer the central branch (a pitchfork is a regular
    # root of the augmented system there, a singular one on the bifurcating branches)
    # (chaos onsets of different branches, or from the two ends of a bracket, may be
    # different points)
    def key_of(c):
        return (c[0], c[6]) + ((c[2], c[7]) if c[0] == "chaos-onset" else ())

    chosen = {}
    for c in candidates:
        key = key_of(c)
        if key not in chosen or (c[2] == "central" and chosen[key][2] != "central"):
            chosen[key] = c
    branches_of = {}
    for c in candidates:
        branches_of.setdefault(key_of(c), []).append(c[2])
    step = grid[1] - grid[0]
    out: list[Transition] = []
    for key, (kind, state, branch, u0, p0, (left, right), i, _) in chosen.items():
        branch = "/".join(dict.fromkeys(branches_of[key]))
        base = {k: float(v[i]) for k, v in flat.items() if k != param}
        u, p, residual, ok, message = locate(net, kind, state, u0, param, p0, {**base, param: p0},
                                             regime=regime, spacing=spacing)
        if ok and not (left - step <= p <= right + step):
            ok = False
        if state == "chaotic" and u[1] - u[2] < RESOLVED_GAP * (1 + u[1]):
            ok = False  # next to a collapse onto a fixed point: not resolved (see RESOLVED_GAP)
        if not ok:
            continue
        names = compiled(net, state, regime, spacing).unknowns
        new = Transition(kind, param, p, state, (branch,), dict(zip(names, (float(x) for x in u))),
                         residual, True, str(message), {**base})
        for n_, t in enumerate(out):
            # the same transition seen from several branches: keep the best-conditioned root
            if t.kind == kind and abs(t.value - p) <= 1e-5 * (1 + abs(p)):
                def rank(x):
                    return ("central" not in x.branches[0].split("/"), x.residual)
                best = t if rank(t) <= rank(new) else new
                out[n_] = Transition(best.kind, best.param, best.value, best.state, tuple(dict.fromkeys(t.branches + (branch,))),
                                     best.solution, best.residual, True, best.message, best.parameters)
                break
        else:
            out.append(new)
    return sorted(out, key=lambda t: t.value)
