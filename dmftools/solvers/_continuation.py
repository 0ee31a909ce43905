"""Solution branches in one parameter by pseudo-arclength continuation.

Seeds come from :func:`dmftools.solve` on a few samples of the span; every seed not yet on
a traced branch is continued in both directions (:mod:`._arclength`) with the compiled
symbolic Jacobian ``[dF/du | dF/dp]`` until the branch leaves the span, collapses onto a
fixed point (chaotic branches, ``Delta_inf -> Delta_0``) or the step size underflows.
Along each branch three test functions are monitored and their zeros located on the
branch to the corrector tolerance:

* ``"fold"``: the parameter component of the tangent, ``dp/ds = 0`` (a turning point);
* ``"branch-point"``: the determinant of the bordered Jacobian ``[dF/du, dF/dp; t^T]``,
  which changes sign where another branch crosses (e.g. the pitchfork where the
  structured branches meet ``kappa = 0``); by Cramer's rule ``dp/ds`` is proportional to
  ``det dF/du`` over this determinant, so folds and branch points are told apart;
* ``"chaos-onset"`` (stationary branches): the bulk radius ``g sqrt([phi'^2])`` of
  :func:`dmftools.derive_stability` crosses 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import GaussianLowRank
from ._arclength import Curve, CurvePoint, trace
from ._checks import STATES, check_int, check_net, check_param, check_regime, check_span, check_states
from ._solve import compiled, prepare_parameters, solve
from ._transitions import RESOLVED_GAP, locate

__all__ = ["Event", "Branch", "ContinuationResult", "continuation", "EVENT_KINDS"]

EVENT_KINDS = ("fold", "branch-point", "chaos-onset")
#: Chaotic branches end when ``Delta_0 - Delta_inf`` falls below this (relative).
COLLAPSE_GAP = 1e-6
COLLAPSE = "collapses onto a fixed point (Delta_inf -> Delta_0)"
DELTA0_ZERO = "reaches delta0 = 0"
#: Branches whose overlaps stay below this are the symmetric ``kappa = 0`` branch (the
#: continuation keeps them there to about the corrector tolerance times the conditioning).
CENTRAL_KAPPA = 1e-6


@dataclass(frozen=True)
class Event:
    """A special point located on a branch.

    Attributes
    ----------
    kind : {"fold", "branch-point", "chaos-onset"}
    param : str
    value : float
        The parameter at the event.
    state : {"stationary", "chaotic"}
    branches : tuple of str
        Labels of the branches it lies on.
    solution : dict
        The unknowns there.
    residual : float
        ``max |F|`` of the mean-field equations at the event.
    """

    kind: str
    param: str
    value: float
    state: str
    branches: tuple
    solution: dict
    residual: float

    def __str__(self) -> str:
        sol = ", ".join(f"{k}={v:.10g}" for k, v in self.solution.items())
        return (f"{self.kind:<13s} {self.param}={self.value:.12g} on {self.state} "
                f"{'/'.join(self.branches)} ({sol}) residual={self.residual:.1e}")

    def as_dict(self) -> dict:
        return {"kind": self.kind, "param": self.param, "value": self.value, "state": self.state,
                "branches": list(self.branches), "solution": {k: float(v) for k, v in self.solution.items()},
                "residual": self.residual}


@dataclass
class Branch:
    """One continued solution branch, points in arclength order.

    Attributes
    ----------
    state : {"stationary", "chaotic"}
    label : str
        Unit rank: ``"central"`` (``kappa = 0`` throughout), ``"positive"``,
        ``"negative"``, or ``"positive/negative"`` (a structured branch through a
        pitchfork); higher rank: ``"branch k"``.
    param : str
    values : dict
        ``param`` and every unknown -> array along the branch.
    stable : ndarray of bool or None
        Stationary branches: bulk radius < 1 and every outlier has real part < 1.
    radius : ndarray or None
        Stationary branches: bulk radius.
    admissible : ndarray of bool or None
        Chaotic branches: a maximum of the potential (``V''(Delta_inf) < 0``).
    residual : ndarray
        ``max |F|`` at each point.
    events : tuple of Event
    ends : (str, str)
        Why the branch ends at its first and at its last point.
    """

    state: str
    label: str
    param: str
    values: dict
    stable: np.ndarray | None
    radius: np.ndarray | None
    admissible: np.ndarray | None
    residual: np.ndarray
    events: tuple
    ends: tuple

    def __len__(self) -> int:
        return int(self.values[self.param].size)

    def as_dict(self) -> dict:
        """JSON-serialisable view (arrays as lists)."""
        d = {"state": self.state, "label": self.label, "param": self.param, "ends": list(self.ends),
             "values": {k: v.tolist() for k, v in self.values.items()}, "residual": self.residual.tolist(),
             "events": [e.as_dict() for e in self.events]}
        for key in ("stable", "radius", "admissible"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value.tolist()
        return d

    def __repr__(self) -> str:
        p = self.values[self.param]
        return (f"Branch({self.state} {self.label}: {len(self)} points, {self.param} in "
                f"[{p.min():.6g}, {p.max():.6g}], {len(self.events)} events, ends: {self.ends[0]} | {self.ends[1]})")


class ContinuationResult:
    """Branches and located events of :func:`continuation`.

    Iterating yields the :class:`Branch` objects; ``events`` lists every located
    :class:`Event` once, sorted by parameter value.
    """

    def __init__(self, net, regime, param, span, parameters, branches, events):
        self.net = net
        self.regime = regime
        self.param = param
        self.span = span
        self.parameters = parameters
        self.branches = branches
        self.events = events

    def __iter__(self):
        return iter(self.branches)

    def __len__(self) -> int:
        return len(self.branches)

    def __getitem__(self, i) -> Branch:
        return self.branches[i]

    def __repr__(self) -> str:
        lines = [f"ContinuationResult({self.param} in [{self.span[0]:g}, {self.span[1]:g}], "
                 f"{len(self.branches)} branches, {len(self.events)} events)"]
        lines += ["  " + repr(b) for b in self.branches]
        lines += ["  " + str(e) for e in self.events]
        return "\n".join(lines)

    def plot(self, var: str = "kappa", ax=None, *, events: bool = True):
        """Bifurcation diagram: ``var`` against the parameter; returns ``(fig, ax)``.

        Stationary-stable branches are solid, stationary-unstable dashed, chaotic
        (admissible) branches in a second colour; events are marked. Never calls
        ``plt.show()``.

        Examples
        --------
        >>> import dmftools as dmf
        >>> res = dmf.continuation(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0), "g", (0.5, 1.5),
        ...                        states=("stationary",), seeds=3)
        >>> fig, ax = res.plot("kappa")
        >>> ax.get_xlabel()
        'g'
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(5.5, 4.0))
        else:
            fig = ax.figure
        for b in self.branches:
            if var not in b.values:
                raise ValueError(f"var: must be one of {tuple(b.values)}, got {var!r}")
            x, y = b.values[self.param], b.values[var]
            if b.state == "stationary":
                for mask, style in ((b.stable, "-"), (~b.stable, "--")):
                    ax.plot(x, np.where(mask, y, np.nan), style, color="C0", lw=1.5)
            else:
                for mask, style in ((b.admissible, "-"), (~b.admissible, ":")):
                    ax.plot(x, np.where(mask, y, np.nan), style, color="C3", lw=1.5)
        markers = {"fold": "s", "branch-point": "o", "chaos-onset": "*"}
        if events:
            for kind in EVENT_KINDS:
                es = [e for e in self.events if e.kind == kind]
                if es and var in es[0].solution:
                    ax.plot([e.value for e in es], [e.solution[var] for e in es], markers[kind], color="k",
                            ms=5, label=kind)
        ax.plot([], [], "-", color="C0", label="stationary, stable")
        ax.plot([], [], "--", color="C0", label="stationary, unstable")
        ax.plot([], [], "-", color="C3", label="chaotic")
        ax.set_xlabel(self.param)
        ax.set_ylabel(var)
        ax.legend(fontsize=7)
        return fig, ax


class _Equations:
    """``H(z) = F(u; p)`` with ``z = (u, p)`` for one state, other parameters fixed."""

    def __init__(self, cf, param, base):
        self.cf = cf
        self.n = len(cf.unknowns)
        self.names = list(cf.equations.parameters)
        self.j = self.names.index(param)
        self.param = param
        self.base = base
        self.chaotic = cf.equations.state == "chaotic"
        self._last = (None, None)

    def ordered(self, z):
        z = np.atleast_2d(np.asarray(z, dtype=float).T).T  # (n+1, B)
        pars = [z[self.n] if k == self.param else np.full(z.shape[1], self.base[k]) for k in self.names]
        return list(z[: self.n]) + pars

    def _eval(self, z):
        key = z.tobytes()
        if self._last[0] != key:
            if self.chaotic and not z[1] - z[2] > 0:
                # outside the domain of the divided energy equation (corrector iterate)
                nan = np.full(self.n, np.nan)
                self._last = (key, (nan, np.full((self.n, self.n + 1), np.nan)))
                return self._last[1]
            with np.errstate(all="ignore"):
                o = self.ordered(z)
                F, J = self.cf.system(o)
                P = self.cf.parameter_jacobian(o)
            self._last = (key, (F[:, 0], np.c_[J[:, :, 0], P[:, self.j, 0]]))
        return self._last[1]

    def H(self, z):
        return self._eval(z)[0]

    def jacobian(self, z):
        return self._eval(z)[1]

    def project(self, z):
        z = z.copy()
        z[1] = max(z[1], 0.0)
        if self.chaotic:
            z[2] = max(z[2], 0.0)
        if self.param == "g":
            z[self.n] = max(z[self.n], 0.0)
        return z

    def valid(self, z):
        return (not self.chaotic) or z[1] - z[2] > 0


def _label(rank, kappa):
    if rank > 1:
        return None
    if np.all(np.abs(kappa) <= CENTRAL_KAPPA):
        return "central"
    pos, neg = np.any(kappa > CENTRAL_KAPPA), np.any(kappa < -CENTRAL_KAPPA)
    return "positive/negative" if pos and neg else ("positive" if pos else "negative")


def _covered(eq, branches, z_seed, tol=1e-7):
    """Whether the seed lies on an already traced branch of the same state (Newton at fixed
    parameter from the branch's interpolated point converges to the seed)."""
    n = eq.n
    p_seed = z_seed[n]
    for pts in branches:
        Z = np.array([q.z for q in pts])
        p = Z[:, n]
        for i in range(len(pts) - 1):
            a, b = p[i], p[i + 1]
            slack = 1e-9 * (1 + abs(p_seed))  # branch ends are located on the span ends to ~1e-15
            if not (min(a, b) - slack <= p_seed <= max(a, b) + slack):
                continue
            w = 0.0 if a == b else min(max((p_seed - a) / (b - a), 0.0), 1.0)
            z = (1 - w) * Z[i] + w * Z[i + 1]
            z[n] = p_seed
            for _ in range(8):
                F = eq.H(z)
                A = eq.jacobian(z)[:, :n]
                if not (np.all(np.isfinite(F)) and np.all(np.isfinite(A))):
                    break
                try:
                    z[:n] = eq.project(np.r_[z[:n] - np.linalg.solve(A, F), p_seed])[:n]
                except np.linalg.LinAlgError:
                    break
            if np.max(np.abs(z[:n] - z_seed[:n])) <= tol * (1 + np.max(np.abs(z_seed[:n]))):
                return True
    return False


def continuation(net: GaussianLowRank, param: str = "g", span=(0.01, 4.0), *, g=None, states=STATES,
                 regime: str = "current", seeds: int = 9, h_max: float | None = None, max_steps: int = 5000,
                 spacing: float | None = None, **params) -> ContinuationResult:
    r"""Every solution branch along one parameter by pseudo-arclength continuation.

    Seeds are all solutions found by :func:`dmftools.solve` at ``seeds`` equally spaced
    values of the span; each seed not on a branch already traced is continued both ways
    through folds and branch points. Folds, branch points and chaos onsets are located on
    the branches (see the module notes). A branch that is only connected to the others
    outside the span, and does not pass a seed value, is not found.

    Parameters
    ----------
    net : GaussianLowRank
    param : str
        ``"g"`` or a model parameter keyword (``"Mn"``, ``"MI"``, ...).
    span : (float, float)
        Increasing interval of ``param``.
    g : float, optional
        Required when ``param`` is not ``"g"``.
    states : sequence of {"stationary", "chaotic"}
    regime : {"current", "rate"}
    seeds : int
        Number of seed values (>= 2).
    h_max : float, optional
        Largest continuation step (arclength in ``(unknowns, param)``); default
        ``(span[1] - span[0]) / 40``.
    max_steps : int
        Steps per direction per branch.
    spacing : float, optional
        Quadrature lattice spacing.
    **params
        Other model parameters (scalars).

    Returns
    -------
    ContinuationResult

    Examples
    --------
    >>> import dmftools as dmf
    >>> net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    >>> res = dmf.continuation(net, "g", (1.5, 2.5), states=("stationary",), seeds=3)
    >>> for e in res.events:
    ...     print(f"{e.kind:<13} g = {e.value:.10f}  |kappa| = {abs(e.solution['kappa']):.6f}")
    chaos-onset   g = 1.7958993004  |kappa| = 0.586609
    chaos-onset   g = 1.7958993004  |kappa| = 0.586609
    branch-point  g = 2.0593186190  |kappa| = 0.000000
    >>> res.branches[0]
    Branch(stationary positive/negative: ...)
    """
    check_net(net)
    lo, hi = check_span(span, param)
    states = check_states(states)
    check_regime(regime)
    seeds = check_int("seeds", seeds, 2)
    max_steps = check_int("max_steps", max_steps, 1)
    if h_max is None:
        h_max = (hi - lo) / 40
    elif not (np.isfinite(h_max) and h_max > 0):
        raise ValueError(f"h_max: must be a positive number, got {h_max!r}")
    cf_stat = compiled(net, "stationary", regime, spacing)
    check_param(param, g, cf_stat.equations.parameters)
    if param in params:
        raise TypeError(f"{param}: it is the continued parameter; give its range as span")
    _, fixed = prepare_parameters(cf_stat, g if param != "g" else lo, {**params, **({param: lo} if param != "g" else {})})
    base = {k: float(v[0]) for k, v in fixed.items()}
    grid = np.linspace(lo, hi, int(seeds))
    sweep = dict(params)
    if param == "g":
        found = solve(net, g=grid, states=states, regime=regime, spacing=spacing, **sweep)
    else:
        sweep[param] = grid
        found = solve(net, g=g, states=states, regime=regime, spacing=spacing, **sweep)
    branches, events = [], []
    for state in states:
        cf = compiled(net, state, regime, spacing)
        eq = _Equations(cf, param, base)
        n = eq.n
        curve = Curve(eq.H, eq.jacobian, project=eq.project, valid=eq.valid)
        ss = found[state]
        seed_z = []
        for i in range(grid.size):
            for j in range(len(ss.branches)):
                if ss.found[j, i]:
                    seed_z.append(np.r_[[ss.values[k][j, i] for k in cf.unknowns], grid[i]])
        traced = []
        tests = {"fold": lambda pt: pt.t[n],
                 "branch-point": lambda pt: np.linalg.det(np.vstack([pt.A, pt.t]))}
        if state == "stationary":
            def radius_test(pt):
                with np.errstate(all="ignore"):
                    r, _ = cf_stat.stability(eq.ordered(pt.z))
                return float(r[0]) - 1.0
            tests["chaos-onset"] = radius_test
        stops = {"span-start": lambda pt: pt.z[n] - lo, "span-end": lambda pt: hi - pt.z[n]}

        def collapse(pt):
            if eq.chaotic and pt.z[1] - pt.z[2] <= COLLAPSE_GAP * (1 + pt.z[1]):
                return COLLAPSE
            return None

        for z0 in seed_z:
            if _covered(eq, traced, z0):
                continue
            A = eq.jacobian(z0)
            start = CurvePoint(z0, Curve.tangent(A), A, float(np.max(np.abs(eq.H(z0)))))
            seed_stops = dict(stops)
            if not eq.chaotic and z0[1] > 1e-10:
                # a branch with Delta_0 > 0 that reaches the Delta_0 = 0 branch would continue
                # into Delta_0 < 0, which is not a solution: it ends there
                seed_stops[DELTA0_ZERO] = lambda pt: pt.z[1] - 1e-13
            halves = []
            for sign in (1.0, -1.0):
                s0 = CurvePoint(start.z, sign * start.t, start.A, start.residual)
                halves.append(trace(curve, s0, h0=h_max / 4, h_min=1e-9 * h_max, h_max=h_max, max_steps=max_steps,
                                    tests=tests, stops=seed_stops, stop_point=collapse))
            fwd, bwd = halves
            for half in halves:
                end = half.points[-1].z
                if half.end.startswith("step size") and _unresolved(eq, end):
                    half.end = COLLAPSE
            pts = bwd.points[::-1] + fwd.points[1:]
            traced.append(pts)
            located = [(name, pt) for name, pt, _ in bwd.events + fwd.events]
            located = [(name, _refine(net, name, state, pt, eq, regime, spacing)) for name, pt in located]
            located = [(name, z) for name, z in located if not _unresolved(eq, z)]
            branches.append(_make_branch(cf, cf_stat, eq, state, param, pts, located, (bwd.end, fwd.end)))
            events.extend(branches[-1].events)
    return ContinuationResult(net, regime, param, (lo, hi), {k: v for k, v in base.items() if k != param},
                              branches, _merge_events(events))




def _unresolved(eq, z):
    return eq.chaotic and z[1] - z[2] < RESOLVED_GAP * (1 + z[1])


def _refine(net, name, state, pt, eq, regime, spacing):
    """Polish an event located on the branch by solving its augmented system (the
    equations plus the condition, the parameter free; see :func:`._transitions.locate`):
    at a branch point of a ``kappa = 0`` branch the arclength location is limited by the
    singular corrector, the augmented system restricted to ``kappa = 0`` is regular."""
    kind = "chaos-onset" if name == "chaos-onset" else f"{state}-bifurcation"
    n = eq.n
    params = dict(eq.base)
    params[eq.param] = float(pt.z[n])
    u0 = pt.z[:n].copy()
    u, p, residual, ok, _ = locate(net, kind, state, u0, eq.param, float(pt.z[n]), params,
                                   regime=regime, spacing=spacing)
    z = eq.project(np.r_[u, p])
    close = np.max(np.abs(z - pt.z)) <= 1e-5 * (1 + np.max(np.abs(pt.z)))
    return z if ok and close and eq.valid(z) else pt.z


def _make_branch(cf, cf_stat, eq, state, param, pts, located, ends):
    n = eq.n
    Z = np.array([q.z for q in pts]).T  # (n+1, B)
    o = eq.ordered(Z)
    with np.errstate(all="ignore"):
        F, _ = cf.system(o)
    residual = np.max(np.abs(F), axis=0)
    values = {param: Z[n]}
    values.update({k: Z[i] for i, k in enumerate(cf.unknowns)})
    rank = cf.equations.model.rank
    label = _label(rank, Z[n - rank]) or "branch"
    stable = radius = admissible = None
    if state == "stationary":
        with np.errstate(all="ignore"):
            radius, M = cf_stat.stability(o)
        eig = np.linalg.eigvals(np.moveaxis(M, -1, 0))
        outside = np.abs(eig) > radius[:, None] * (1 + 1e-12) + 1e-14
        stable = (radius < 1) & ~np.any(outside & (eig.real >= 1), axis=1)
    else:
        with np.errstate(all="ignore"):
            obs = dict(zip(cf.observable_names, cf._observable_fn(*o)))
        admissible = np.broadcast_to(obs["potential_curvature"], Z.shape[1:]) < 0
    evs = []
    for name, z in located:
        with np.errstate(all="ignore"):
            Fe, _ = cf.system(eq.ordered(z))
        evs.append(Event(name, param, float(z[n]), state, (label,),
                         {k: float(z[i]) for i, k in enumerate(cf.unknowns)}, float(np.max(np.abs(Fe)))))
    evs.sort(key=lambda e: e.value)
    return Branch(state, label, param, values, stable, radius, admissible, residual, tuple(evs), ends)


def _same_point(a, b, tol):
    if a.state != b.state or abs(a.value - b.value) > tol * (1 + abs(a.value)):
        return False
    return all(abs(a.solution[k] - b.solution[k]) <= tol * (1 + abs(a.solution[k])) for k in a.solution)


#: A fold and a branch point this close (relative, every variable) are one pitchfork: the
#: structured branch turns where it meets the kappa = 0 branch, and its own location of
#: the point is limited by the singular corrector there.
_PITCHFORK_TOL = 1e-4


def _merge_events(events):
    """One event per point and kind; a fold that coincides with a branch point (the
    structured branch turning at a pitchfork) is reported as the branch point. Of merged
    events the one located on a ``central`` branch (where the augmented system is
    regular) is kept."""
    def rank(e):
        return (e.kind != "branch-point", "central" not in e.branches, e.residual)

    out = []
    for e in sorted(events, key=lambda e: (e.kind != "branch-point", e.value)):
        for i, f in enumerate(out):
            pair = {e.kind, f.kind}
            if (e.kind == f.kind and _same_point(e, f, 1e-7)) or (
                    pair <= {"fold", "branch-point"} and _same_point(e, f, _PITCHFORK_TOL)):
                keep = min((f, e), key=rank)
                labels = tuple(dict.fromkeys(f.branches + e.branches))
                out[i] = Event(keep.kind, keep.param, keep.value, keep.state, labels, keep.solution, keep.residual)
                break
        else:
            out.append(e)
    return sorted(out, key=lambda e: e.value)
