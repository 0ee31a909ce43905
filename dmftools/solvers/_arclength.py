"""Pseudo-arclength continuation of the zero set of ``H: R^(m+1) -> R^m``.

The curve ``H(z) = 0`` is followed by predictor-corrector steps: the predictor moves a
distance ``h`` along the unit tangent ``t`` (the null vector of ``dH/dz``, oriented
continuously), the corrector is Newton's method on ``H(z) = 0`` together with
``t . (z - z_pred) = 0`` (the hyperplane through the prediction orthogonal to ``t``).
Scalar test functions are monitored along the curve; a sign change between two accepted
points is located by regula falsi on the arclength between them, every evaluation a
corrected point of the curve, so located zeros are points of the curve to the corrector
tolerance (Keller 1977; Allgower & Georg, *Numerical Continuation Methods*, 1990, ch. 9).

This module knows nothing about mean-field theory; :mod:`._continuation` (branches in one
parameter) and :mod:`dmftools.phase` (boundary curves in two parameters) build on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Curve", "CurvePoint", "TraceResult", "trace"]


@dataclass
class CurvePoint:
    """A corrected point: ``z``, unit tangent ``t``, ``dH/dz`` there, ``max |H|``."""

    z: np.ndarray
    t: np.ndarray
    A: np.ndarray
    residual: float


class Curve:
    """The zero set of ``H`` with its Jacobian.

    Parameters
    ----------
    H : callable
        ``H(z) -> (m,)``, may return non-finite values outside its domain.
    jacobian : callable, optional
        ``jacobian(z) -> (m, m+1)``; central differences of ``H`` when omitted.
    project : callable, optional
        Maps an iterate back into the closed domain (e.g. clips variances at 0).
    valid : callable, optional
        ``valid(z) -> bool`` for corrected points (e.g. ``Delta_inf < Delta_0``).
    tol : float
        Corrector tolerance on ``max |H| / (1 + max |z|)``.
    """

    def __init__(self, H, jacobian=None, *, project=None, valid=None, tol: float = 1e-12, max_iter: int = 12):
        self.H = H
        self._jacobian = jacobian
        self.project = project or (lambda z: z)
        self.valid = valid or (lambda z: True)
        self.tol = tol
        self.max_iter = max_iter

    def jacobian(self, z):
        if self._jacobian is not None:
            return np.asarray(self._jacobian(z), dtype=float)
        cols = []
        for i in range(z.size):
            h = 1e-7 * (1 + abs(z[i]))
            zp, zm = z.copy(), z.copy()
            zp[i] += h
            zm[i] -= h
            cols.append((np.asarray(self.H(zp)) - np.asarray(self.H(zm))) / (2 * h))
        return np.array(cols).T

    @staticmethod
    def tangent(A, t_prev=None):
        """Unit null vector of ``A`` (m, m+1), oriented along ``t_prev`` when given."""
        if t_prev is None:
            v = np.linalg.svd(A)[2][-1]
        else:
            B = np.vstack([A, t_prev])
            rhs = np.zeros(A.shape[1])
            rhs[-1] = 1.0
            try:
                v = np.linalg.solve(B, rhs)
            except np.linalg.LinAlgError:
                v = np.linalg.svd(A)[2][-1]
            if not np.all(np.isfinite(v)):
                v = np.linalg.svd(A)[2][-1]
        v = v / np.linalg.norm(v)
        if t_prev is not None and v @ t_prev < 0:
            v = -v
        return v

    def correct(self, z_pred, t, t_orient=None, patient=False):
        """Newton on ``H(z) = 0, t.(z - z_pred) = 0``; returns (CurvePoint or None, iterations).

        ``patient``: allow slow (linear) convergence, as next to a branch point where the
        corrector's Jacobian is nearly singular (used when locating events).
        """
        z = self.project(np.array(z_pred, dtype=float))
        last = np.inf
        max_iter = 4 * self.max_iter if patient else self.max_iter
        for it in range(1, max_iter + 1):
            with np.errstate(all="ignore"):
                F = np.asarray(self.H(z), dtype=float)
            if not np.all(np.isfinite(F)):
                return None, it
            norm = float(np.max(np.abs(F))) if F.size else 0.0
            A = self.jacobian(z)
            if not np.all(np.isfinite(A)):
                return None, it
            if norm <= self.tol * (1 + np.max(np.abs(z))):
                if not self.valid(z):
                    return None, it
                tan = self.tangent(A, t if t_orient is None else t_orient)
                return CurvePoint(z, tan, A, norm), it
            if it > 3 and norm > (0.95 if patient else 0.5) * last:
                return None, it  # not contracting: the step was too long
            last = norm
            G = np.r_[F, t @ (z - z_pred)]
            try:
                dz = np.linalg.solve(np.vstack([A, t]), -G)
            except np.linalg.LinAlgError:
                return None, it
            z = self.project(z + dz)
        return None, max_iter


@dataclass
class TraceResult:
    """Points of a traced curve and the located zeros of the test functions.

    ``events`` holds ``(name, CurvePoint, index)``: the test ``name`` vanishes at the
    point, which lies between ``points[index - 1]`` and ``points[index]`` (it is also
    inserted into ``points`` at ``index``). ``end`` says why the trace stopped.
    """

    points: list
    events: list = field(default_factory=list)
    end: str = ""


def _locate(curve, p0, p1, test, v0, v1, xtol):
    """The zero of ``test`` on the curve between the points ``p0`` and ``p1`` (values
    ``v0``, ``v1`` of opposite sign): regula falsi (Illinois) on the arclength ``s`` along
    ``p0.t``, each evaluation a corrected point. Where the corrector fails (next to a branch
    point its Jacobian becomes singular) the bracket end with the smaller ``|test|`` is
    returned: the accuracy is then what the corrector can resolve.
    """
    a, b = 0.0, float(p0.t @ (p1.z - p0.z))
    pa, pb = p0, p1
    fa, fb = v0, v1
    side = 0
    for _ in range(200):
        if abs(b - a) <= xtol:
            break
        s = (a * fb - b * fa) / (fb - fa)
        if not (min(a, b) < s < max(a, b)):
            s = 0.5 * (a + b)
        pt, _ = curve.correct(p0.z + s * p0.t, p0.t, t_orient=p0.t, patient=True)
        if pt is None:
            break
        f = test(pt)
        if not np.isfinite(f):
            break
        if f == 0:
            return pt
        if np.sign(f) == np.sign(fa):
            a, pa, fa = s, pt, f
            if side == -1:
                fb *= 0.5
            side = -1
        else:
            b, pb, fb = s, pt, f
            if side == 1:
                fa *= 0.5
            side = 1
    return pa if abs(test(pa)) <= abs(test(pb)) else pb


def trace(curve: Curve, start: CurvePoint, *, h0: float, h_min: float, h_max: float, max_steps: int,
          tests: dict | None = None, stops: dict | None = None, stop_point=None,
          max_angle: float = 0.3) -> TraceResult:
    """Follow ``curve`` from ``start`` in the direction of ``start.t``.

    Parameters
    ----------
    h0, h_min, h_max : float
        First, smallest and largest step along the arclength.
    max_steps : int
        Accepted steps before giving up (``end = "max_steps"``).
    tests : dict
        ``name -> f(CurvePoint) -> float``; sign changes are located as events.
    stops : dict
        ``name -> f(CurvePoint) -> float``, > 0 inside the region of interest; the trace
        ends exactly where one crosses 0 (located like an event, ``end = name``).
    stop_point : callable, optional
        ``stop_point(CurvePoint) -> str or None``: end the trace after this point
        (e.g. a branch collapsing onto another), returning the reason.
    max_angle : float
        Largest accepted turn of the tangent per step (radians); larger turns halve the
        step, so the corrector does not jump between nearby branches.
    """
    tests = tests or {}
    stops = stops or {}
    pts = [start]
    events = []
    values = {k: f(start) for k, f in tests.items()}
    stop_values = {k: f(start) for k, f in stops.items()}
    h = h0
    cos_max = np.cos(max_angle)
    for _ in range(max_steps):
        p = pts[-1]
        while True:
            new, iters = curve.correct(p.z + h * p.t, p.t)
            if new is not None and new.t @ p.t >= cos_max:
                break
            h *= 0.5
            if h < h_min:
                return TraceResult(pts, events, "step size below its minimum (singular or leaves the domain)")
        # boundary of the region of interest: end on it exactly
        for name, f in stops.items():
            v = f(new)
            if v <= 0 and stop_values[name] <= 0:
                return TraceResult(pts, events, name)  # started on the boundary, moving out
            if v <= 0 < stop_values[name]:
                end = _locate(curve, p, new, f, stop_values[name], v, xtol=1e-15 * max(1.0, h))
                found = _events_between(curve, p, end if end is not None else new, tests, values,
                                        events, len(pts))
                pts.extend(found)
                if end is not None:
                    pts.append(end)
                return TraceResult(pts, events, name)
        stop_values = {k: f(new) for k, f in stops.items()}
        found = _events_between(curve, p, new, tests, values, events, len(pts))
        pts.extend(found)
        pts.append(new)
        if stop_point is not None:
            reason = stop_point(new)
            if reason:
                return TraceResult(pts, events, reason)
        h = min(h * (1.5 if iters <= 3 else 1.0 if iters <= 5 else 0.6), h_max)
    return TraceResult(pts, events, "max_steps")


def _events_between(curve, p, new, tests, values, events, index):
    """Locate the sign changes of ``tests`` between ``p`` and ``new``; updates ``values``."""
    found = []
    h = float(p.t @ (new.z - p.z))
    for name, f in tests.items():
        v = f(new)
        old = values[name]
        values[name] = v
        if np.isfinite(v) and np.isfinite(old) and old != 0 and np.sign(v) != np.sign(old) and h > 0:
            found.append((name, _locate(curve, p, new, f, old, v, xtol=1e-15 * max(1.0, h))))
    found.sort(key=lambda e: float(p.t @ (e[1].z - p.z)))
    for k, (name, pt) in enumerate(found):
        events.append((name, pt, index + k))
    return [pt for _, pt in found]
