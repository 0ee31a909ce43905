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


def locate(net, kind, state, u0, param, p0, params, *, regime="current", spacing=None, xtol=1e-14):
    """Solve the augmented system of ``kind`` from ``(u0, p0)``; returns (u, p, residual, ok, message).

    ``params`` holds every parameter (scalars) by name, including ``g``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {KINDS}, got {kind!r}")
    cf = compiled(net, state, regime, spacing)
    cf_stat = compiled(net, "stationary", regime, spacing)
    names = list(cf.equations.parameters)
    n = len(cf.unknowns)

    def ordered(z):
        values = dict(params)
        values[param] = z[n]
        return [np.array([v]) for v in z[:n]] + [np.array([float(values[k])]) for k in names]

    def augmented(z):
        # variances are clipped to the domain (a zero delta_inf is a legitimate solution,
        # and the finite-difference steps of hybr must not leave the domain)
        z = np.array(z, dtype=float)
        z[1] = max(z[1], 0.0)
        if state == "chaotic":
            z[2] = max(z[2], 0.0)
            if z[2] >= z[1]:
                return np.full(n + 1, 1e6)
        if param == "g":
            z[n] = max(z[n], 0.0)
        with np.errstate(all="ignore"):
            o = ordered(z)
            F, _ = cf.system(o)
            c = _condition(kind, cf, cf_stat, o)
        return np.r_[F[:, 0], c[0]]

    z0 = np.r_[np.asarray(u0, dtype=float), float(p0)]
    kappa_rows = list(range(n - cf.equations.model.rank, n))
    frozen = []
    if kind != "chaos-onset" and np.all(np.abs(z0[kappa_rows]) <= 1e-8):
        # a bifurcation from a kappa = 0 branch: where kappa = 0 is a solution for all
        # parameters, the pitchfork is regular only within that subspace (the
        # determinant is even in kappa), so kappa is held at 0 and its equations dropped
        z_test = z0.copy()
        z_test[kappa_rows] = 0.0
        if np.max(np.abs(augmented(z_test)[kappa_rows])) <= 1e-12:
            frozen = kappa_rows
    free = [i for i in range(n + 1) if i not in frozen]

    def reduced(y):
        z = z0.copy()
        z[frozen] = 0.0
        z[free] = y
        return np.delete(augmented(z), frozen)

    sol = root(reduced, z0[free], method="hybr", options=dict(xtol=xtol))
    z = z0.copy()
    z[frozen] = 0.0
    z[free] = sol.x
    value = augmented(z)
    residual = float(np.max(np.abs(value))) if np.all(np.isfinite(value)) else np.inf
    ok = bool(sol.success or residual < 1e-11) and residual < 1e-9
    return z[:n], float(z[n]), residual, ok, sol.message


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
                            k = i if w < 0.5 else i + 1
                            candidates.append((kind, state, branch, u[:, k], grid[i] + w * (grid[i + 1] - grid[i]),
                                               (grid[i], grid[i + 1]), i))
                elif a != b:
                    k = i if a else i + 1
                    candidates.append((f"{state}-bifurcation", state, branch, u[:, k], grid[k],
                                       (grid[i], grid[i + 1]), i))
    # one root per kind and bracket: prefer the central branch (a pitchfork is a regular
    # root of the augmented system there, a singular one on the bifurcating branches)
    chosen = {}
    for c in candidates:
        key = (c[0], c[6])
        if key not in chosen or (c[2] == "central" and chosen[key][2] != "central"):
            chosen[key] = c
    branches_of = {}
    for c in candidates:
        branches_of.setdefault((c[0], c[6]), []).append(c[2])
    step = grid[1] - grid[0]
    out: list[Transition] = []
    for key, (kind, state, branch, u0, p0, (left, right), i) in chosen.items():
        branch = "/".join(dict.fromkeys(branches_of[key]))
        base = {k: float(v[i]) for k, v in flat.items() if k != param}
        u, p, residual, ok, message = locate(net, kind, state, u0, param, p0, {**base, param: p0},
                                             regime=regime, spacing=spacing)
        if ok and not (left - step <= p <= right + step):
            ok = False
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
