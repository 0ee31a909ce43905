"""Phase boundaries as curves: two-parameter continuation of the transition conditions.

A boundary in the ``(g, Mn)`` plane is the zero set of the mean-field equations augmented
by one condition (bulk radius = 1, or a singular Jacobian; :class:`Augmented` of
:mod:`dmftools.solvers._transitions`), with the unknowns and both parameters free: ``n + 1``
equations in ``n + 2`` unknowns, a curve. Seeds are transitions located along a few grid
rows and columns; each seed not on a curve already traced is followed both ways by
pseudo-arclength continuation (:mod:`dmftools.solvers._arclength`) until it leaves the
diagram or ends (e.g. where a branch ceases to exist). Every point of a traced curve
solves the augmented system to the corrector tolerance, so the curves are exact up to
the quadrature, independent of the grid resolution.
"""

from __future__ import annotations

import numpy as np

from ..solvers._arclength import Curve, CurvePoint, trace
from ..solvers._solve import compiled
from ..solvers._transitions import RESOLVED_GAP, Augmented, located_transitions, symmetric_start

__all__ = ["trace_boundaries", "BOUNDARY_NAMES", "boundary_name"]

#: Boundary names per transition kind and the state it lives on.
BOUNDARY_NAMES = {
    ("chaos-onset", "stationary"): "stationary -> chaotic (g^2 [phi'^2] = 1)",
    ("stationary-bifurcation", "stationary"): "stationary bifurcation (outlier = 1)",
    ("chaotic-bifurcation", "chaotic"): "chaotic bifurcation (structured chaos ends)",
}

#: Seeds closer than this to a traced curve of the same name (in units of the axes' spans)
#: are on it; traced points are exact and chord errors are far below this.
_SAME_CURVE = 2e-3


def boundary_name(t) -> str:
    """Name of the boundary a located :class:`Transition` lies on: its kind, and for chaos
    onsets the branch (a bifurcation joins the kappa = 0 and the structured branches)."""
    name = BOUNDARY_NAMES.get((t.kind, t.state), t.kind)
    if t.kind != "chaos-onset":
        return name
    branches = set("/".join(t.branches).split("/"))
    return name + (", kappa = 0 branch" if branches <= {"central", "central_2"} else ", structured branch")


def line_indices(size, lines):
    """Evenly spaced grid lines (both ends included) that seed the boundary curves."""
    return np.unique(np.linspace(0, size - 1, min(lines, size)).round().astype(int))


def _distance(curves, point, scale):
    best = np.inf
    for c in curves:
        a, b = c[:-1] / scale, c[1:] / scale
        q = point / scale
        d = b - a
        L = np.einsum("ij,ij->i", d, d)
        s = np.clip(np.einsum("ij,ij->i", q - a, d) / np.where(L > 0, L, 1), 0, 1)
        best = min(best, float(np.min(np.linalg.norm(a + s[:, None] * d - q, axis=1))) if len(c) > 1 else
                   float(np.linalg.norm(c[0] / scale - q)))
    return best


def trace_boundaries(net, result, g, mn, flat, *, mm, cov_mn, regime, spacing, lines: int = 9, bar=None) -> dict:
    """Boundary curves of a solved ``(g, Mn)`` grid; ``{name: [array (k, 2) of (g, overlap)]}``.

    Seeds are located along ``lines`` rows and ``lines`` columns of the grid (evenly
    spaced, both ends included); a boundary that crosses none of them is not found.
    ``bar`` (a :class:`dmftools._progress.ProgressBar`) advances once per grid line and
    once when the curves are traced.
    """
    from ..solvers._results import SolveResult, StateSolutions

    shape = (g.size, mn.size)

    def sub(index):
        states = {}
        for st, ss in result.states.items():
            vals = {k: v[(slice(None),) + index] for k, v in ss.values.items()}
            outl = None if ss.outliers is None else ss.outliers[(slice(None),) + index]
            states[st] = StateSolutions(ss.state, ss.unknowns, ss.branches, vals, ss.found[(slice(None),) + index], outl)
        sub_flat = {k: v.reshape(shape)[index] for k, v in flat.items()}
        return SolveResult(net, regime, sub_flat["g"].shape, sub_flat, states), sub_flat

    seeds = []
    for j in line_indices(mn.size, lines):
        res, sub_flat = sub((slice(None), j))
        for t in located_transitions(net, res, "g", g, sub_flat, regime=regime, spacing=spacing):
            seeds.append((t, t.value, mn[j]))
        if bar is not None:
            bar.update(1, f"transitions along g at overlap {mn[j] * mm + cov_mn:.3g}")
    for i in line_indices(g.size, lines):
        res, sub_flat = sub((i, slice(None)))
        for t in located_transitions(net, res, "Mn", mn, sub_flat, regime=regime, spacing=spacing):
            seeds.append((t, g[i], t.value))
        if bar is not None:
            bar.update(1, f"transitions along the overlap at g {g[i]:.3g}")

    box = (g[0], g[-1], mn.min(), mn.max())
    scale = np.array([g[-1] - g[0], (mn.max() - mn.min()) * abs(mm)])
    curves: dict = {}
    done: dict = {}
    for t, g0, mn0 in seeds:
        name = boundary_name(t)
        point = np.array([g0, mn0 * mm + cov_mn])
        if _distance(done.get(name, []), point, scale) <= _SAME_CURVE:
            continue
        traced = _trace_one(net, t, g0, mn0, regime, spacing, box)
        if traced is None:
            continue
        full, pieces = traced
        # the whole traced curve counts as done, also its stretches that are not drawn
        full[:, 1] = full[:, 1] * mm + cov_mn
        done.setdefault(name, []).extend([full, point[None, :]])
        for piece in pieces:
            piece[:, 1] = piece[:, 1] * mm + cov_mn
            curves.setdefault(name, []).append(piece)
    if bar is not None:
        bar.update(1, f"traced {sum(len(v) for v in curves.values())} boundary curves")
    return curves


def _trace_one(net, t, g0, mn0, regime, spacing, box):
    names = compiled(net, t.state, regime, spacing).unknowns
    u0 = np.array([t.solution[k] for k in names])
    base = {k: v for k, v in t.parameters.items() if k not in ("g", "Mn")}
    aug = Augmented(net, t.kind, t.state, base, ["g", "Mn"], regime=regime, spacing=spacing)
    symmetric = symmetric_start(aug, u0, [g0, mn0])
    if symmetric is not None:
        aug, w0, _ = symmetric
    else:
        w0 = np.r_[u0, g0, mn0]
    curve = Curve(aug.H, aug.jacobian, project=aug.project, tol=1e-13)
    F0 = aug.H(w0)
    if not np.all(np.isfinite(F0)):
        return None
    A = aug.jacobian(w0)
    start = CurvePoint(w0, Curve.tangent(A), A, float(np.max(np.abs(F0))))
    gi, mi = len(w0) - 2, len(w0) - 1
    g_lo, g_hi, m_lo, m_hi = box
    span = max(g_hi - g_lo, m_hi - m_lo)
    stops = {"g-start": lambda p: p.z[gi] - g_lo, "g-end": lambda p: g_hi - p.z[gi],
             "Mn-start": lambda p: p.z[mi] - m_lo, "Mn-end": lambda p: m_hi - p.z[mi]}
    halves = []
    for sign in (1.0, -1.0):
        s0 = CurvePoint(start.z, sign * start.t, start.A, start.residual)
        halves.append(trace(curve, s0, h0=span / 200, h_min=1e-7 * span, h_max=span / 50, max_steps=2000,
                            stops=stops))
    pts = halves[1].points[::-1] + halves[0].points[1:]
    W = np.array([p.z for p in pts]).T
    keep = _separates_phases(aug, aug.full(W))
    # contiguous runs of points where the transition separates phases; where a run
    # starts or ends between two points, the end is found by bisection on the curve
    pieces, run = [], []
    for k in range(len(pts)):
        if keep[k]:
            if not run and k > 0:
                # orient the bisection from the point before (outside) to this one
                edge = _boundary_point(curve, aug, pts[k - 1], pts[k], inside_first=False)
                run.append(edge.z[[gi, mi]])
            run.append(W[[gi, mi], k])
        elif run:
            edge = _boundary_point(curve, aug, pts[k - 1], pts[k], inside_first=True)
            run.append(edge.z[[gi, mi]])
            pieces.append(np.array(run))
            run = []
    if run:
        pieces.append(np.array(run))
    return W[[gi, mi]].T, [p for p in pieces if len(p) >= 2]


def _separates_phases(aug, Z):
    """Which points ``Z`` (columns ``(u, g, Mn)``) of a transition curve are phase boundaries.

    * chaos onset: the stationary solution is stable up to it, i.e. no outlier of
      ``J diag(phi')`` (eigenvalue outside the bulk disc) has real part >= 1; e.g. the
      homogeneous onset at ``g = 1`` only below overlap 1;
    * stationary bifurcation: the bulk is stable (radius < 1); pitchforks of solutions
      that are already unstable (inside the chaotic region) are not drawn;
    * chaotic bifurcation: away from a collapse onto a fixed point, where the divided
      energy equation is singular (:data:`RESOLVED_GAP`).
    """
    if aug.chaotic:
        return Z[1] - Z[2] > RESOLVED_GAP * (1 + Z[1])
    with np.errstate(all="ignore"):
        radius, M = aug.cf_stat.stability(aug.ordered(Z)[0])
    if aug.kind == "chaos-onset":
        eig = np.linalg.eigvals(np.moveaxis(M, -1, 0))
        outside = np.abs(eig) > radius[:, None] * (1 + 1e-9)
        return ~np.any(outside & (eig.real >= 1 - 1e-12), axis=1)
    return radius < 1 - 1e-9


def _boundary_point(curve, aug, a, b, inside_first, steps=45):
    """Bisection on the arclength between curve points ``a`` and ``b`` (one a phase
    boundary, the other not) for where the curve stops being one; returns the last
    point of the curve that is (to ~1e-13 of the step)."""
    h = float(a.t @ (b.z - a.z))
    lo, hi = (0.0, h)
    best = a if inside_first else b
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        pt, _ = curve.correct(a.z + mid * a.t, a.t, t_orient=a.t, patient=True)
        if pt is None:
            break
        inside = bool(_separates_phases(aug, aug.full(pt.z))[0])
        if inside == inside_first:
            lo = mid
        else:
            hi = mid
        if inside:
            best = pt
    return best
