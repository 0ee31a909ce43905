"""Vectorised Newton iteration with the compiled symbolic Jacobian.

Every column of the batch is an independent system (a parameter point and a start).
Steps are damped only to stay feasible (variances positive, ``0 <= Delta_inf < Delta_0``)
and by backtracking when the residual norm does not decrease; converged columns drop out
of the batch, so late iterations cost only what is still running.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NewtonResult", "newton"]

#: Iterates keep this fraction of the distance to a variance boundary.
_BOUNDARY_FRACTION = 0.5
#: Columns per backtracking call: after the first halving, the columns still without a
#: decrease get their remaining halvings evaluated together, as many levels as fit.
_BACKTRACK_BATCH = 64


@dataclass
class NewtonResult:
    """Outcome of :func:`newton` per column.

    Attributes
    ----------
    u : ndarray, shape (n, B)
        Final iterates.
    residual : ndarray, shape (B,)
        ``max |F|`` at ``u`` (the solver residuals); for a root accepted on its Newton
        correction (applied without a further evaluation) the value before that correction,
        which bounds the one after it.
    converged : ndarray of bool, shape (B,)
        Residual below ``ftol`` and last step below ``xtol`` relative.
    iterations : ndarray of int, shape (B,)
    singular : ndarray of bool, shape (B,)
        Converged on the residual alone while the Newton corrections did not shrink (a
        root where the Jacobian is singular, e.g. exactly at a pitchfork): such a root is
        determined only to about ``correction``.
    correction : ndarray, shape (B,)
        ``max |du|`` of the last Newton correction computed for the column (an estimate
        of the distance to the root; at a singular root of order k, (k - 1) times it).
    """

    u: np.ndarray
    residual: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    singular: np.ndarray | None = None
    correction: np.ndarray | None = None


def _feasible_fraction(u, du, chaotic):
    """Largest step fraction (<= 1) keeping delta0 - delta_inf > 0 (chaotic)."""
    alpha = np.ones(u.shape[1])
    if not chaotic:
        return alpha
    for value, change in [(u[1] - u[2], du[1] - du[2])]:
        shrinking = change < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            limit = np.where(shrinking, -_BOUNDARY_FRACTION * value / change, np.inf)
        alpha = np.minimum(alpha, limit)
    return alpha


def _projector(chaotic):
    rows = (1, 2) if chaotic else (1,)

    def project(u):
        u = u.copy()
        for r in rows:
            u[r] = np.maximum(u[r], 0.0)
        return u

    return project


def _solve_linear(J, F):
    """Batched ``J du = -F``; singular columns get ``du = nan`` (they are then stopped)."""
    A = np.moveaxis(J, -1, 0)  # (B, n, n)
    b = np.moveaxis(F, -1, 0)[..., None]
    try:
        return -np.linalg.solve(A, b)[..., 0].T
    except np.linalg.LinAlgError:
        out = np.full(F.shape, np.nan)
        for k in range(A.shape[0]):
            try:
                out[:, k] = -np.linalg.solve(A[k], b[k, :, 0])
            except np.linalg.LinAlgError:
                pass
        return out


def newton(system, u0, params, *, chaotic: bool, ftol: float = 1e-12, xtol: float = 1e-12,
           maxiter: int = 50, max_backtracks: int = 6, patience: int = 10) -> NewtonResult:
    """Solve ``F(u; params) = 0`` column by column with Newton's method.

    Parameters
    ----------
    system : callable
        ``system(u, params) -> (F, J)`` with ``F`` of shape (n, B) and ``J`` (n, n, B), for
        any subset of columns (``params`` is indexed alongside ``u``).
    u0 : ndarray, shape (n, B)
        Starts; ``u0[1]`` is ``delta0`` and, if ``chaotic``, ``u0[2]`` is ``delta_inf``.
    params : list of ndarray, each (B,)
    chaotic : bool
        Enforce ``0 <= delta_inf < delta0`` along the iteration.
    ftol, xtol : float
        Converged when ``max |F| <= ftol * (1 + max |u|)`` and the last Newton step, or
        the Newton correction at ``u`` (computed without a further evaluation), is below
        ``xtol * (1 + max |u|)``. A start that satisfies this is returned unchanged. A
        column that stops with ``max |F| <= ftol * (1 + max |u|)`` but steps that do not
        shrink (a singular root, e.g. exactly at a pitchfork) also counts as converged.
    maxiter : int
    max_backtracks : int
        Step halvings per iteration while the residual norm increases. The first halving
        is evaluated alone, the remaining ones of the columns still without a decrease
        together (as many as fit in :data:`_BACKTRACK_BATCH` columns): the accepted step is
        the one halving at a time would accept, for fewer calls of ``system``.
    patience : int
        A column stops when its residual has not halved for this many iterations.

    Returns
    -------
    NewtonResult
    """
    u = np.array(u0, dtype=float, copy=True)
    n, B = u.shape
    params = [np.broadcast_to(np.asarray(p, dtype=float), (B,)) for p in params]
    residual = np.full(B, np.inf)
    converged = np.zeros(B, dtype=bool)
    iterations = np.zeros(B, dtype=int)
    active = np.arange(B)
    best = np.full(B, np.inf)
    checkpoint = np.full(B, np.inf)
    since = np.zeros(B, dtype=int)
    F, J = system(u, params)
    norm = np.max(np.abs(F), axis=0)
    norm = np.where(np.isfinite(norm), norm, np.inf)
    residual[:] = norm
    du = _solve_linear(J, F)
    last_correction = np.max(np.abs(np.nan_to_num(du, nan=np.inf)), axis=0)
    # a start that is already a root (e.g. a neighbour's exact solution on a branch that
    # does not depend on the varied parameter) is accepted without a step: residual below
    # ftol and the Newton correction there below xtol
    scale = 1 + np.max(np.abs(u), axis=0)
    done = (norm <= ftol * scale) & (np.max(np.abs(np.nan_to_num(du, nan=np.inf)), axis=0) <= xtol * scale)
    converged[done] = True
    u[:, done] = _projector(chaotic)(u[:, done] + np.nan_to_num(du[:, done]))
    active = active[~done]
    norm, du = norm[~done], du[:, ~done]
    for _ in range(maxiter):
        if active.size == 0:
            break
        ua, na = u[:, active], norm
        bad = ~np.all(np.isfinite(du), axis=0)
        alpha = np.where(bad, 0.0, np.minimum(1.0, _feasible_fraction(ua, np.nan_to_num(du), chaotic)))
        du = np.nan_to_num(du)
        pa = [p[active] for p in params]
        # backtracking on max|F|; variances are projected onto >= 0 (a zero variance is a
        # legitimate solution, e.g. the homogeneous fixed point at g < 1)
        project = _projector(chaotic)
        trial_u = project(ua + alpha * du)
        trial_F, trial_J = system(trial_u, pa)
        trial_n = np.max(np.abs(trial_F), axis=0)
        trial_n = np.where(np.isfinite(trial_n), trial_n, np.inf)
        settled = na <= ftol * (1 + np.max(np.abs(ua), axis=0))
        halvings = 0
        while halvings < max_backtracks:
            worse = (trial_n > na) & (alpha > 0) & ~settled
            if not np.any(worse):
                break
            idx = np.flatnonzero(worse)
            # the first halving alone (most columns stop there); then the remaining ones
            # at once, as one batch of columns: the same step is accepted as by halving
            # one at a time (the largest that does not increase the residual), in one call
            # instead of up to max_backtracks - 1 (small batches cost their call overhead)
            levels = 1 if halvings == 0 else min(max_backtracks - halvings, max(1, _BACKTRACK_BATCH // idx.size))
            m = idx.size
            a_b = alpha[idx][None, :] * 0.5 ** np.arange(1, levels + 1)[:, None]  # (levels, m)
            u_b = project((ua[:, idx][:, None, :] + a_b[None] * du[:, idx][:, None, :]).reshape(n, -1))
            Fb, Jb = system(u_b, [np.tile(p[idx], levels) for p in pa])
            nb = np.max(np.abs(Fb), axis=0)
            nb = np.where(np.isfinite(nb), nb, np.inf).reshape(levels, m)
            fine = nb <= na[idx][None, :]
            pick = np.where(np.any(fine, axis=0), np.argmax(fine, axis=0), levels - 1)
            cols = pick * m + np.arange(m)
            trial_u[:, idx], trial_F[:, idx], trial_J[..., idx] = u_b[:, cols], Fb[:, cols], Jb[..., cols]
            trial_n[idx] = nb[pick, np.arange(m)]
            alpha[idx] = a_b[pick, np.arange(m)]
            halvings += levels
        step = np.max(np.abs(trial_u - ua), axis=0)
        scale = 1 + np.max(np.abs(trial_u), axis=0)
        u[:, active] = trial_u
        residual[active] = trial_n
        iterations[active] += 1
        # the next correction is computed here (it is needed anyway to go on), so a root is
        # recognised by a small correction at it without one more evaluation
        du_next = _solve_linear(trial_J, trial_F)
        correction = np.max(np.abs(np.nan_to_num(du_next, nan=np.inf)), axis=0)
        last_correction[active] = correction
        done = (trial_n <= ftol * scale) & ((step <= xtol * scale) | (correction <= xtol * scale))
        best[active] = np.minimum(best[active], trial_n)
        improved = trial_n < 0.5 * checkpoint[active]
        checkpoint[active] = np.where(improved, trial_n, checkpoint[active])
        since[active] = np.where(improved, 0, since[active] + 1)
        stalled = bad | (alpha == 0) | ~np.isfinite(trial_n) | (since[active] > patience)
        if chaotic:
            # collapsing onto a fixed point (delta_inf -> delta0), where the divided
            # equations are singular: the gap keeps shrinking geometrically
            gap_old = ua[1] - ua[2]
            gap_new = trial_u[1] - trial_u[2]
            stalled |= (gap_new < 1e-4 * (1 + trial_u[1])) & (gap_new < 0.7 * gap_old) & ~done
        converged[active[done]] = True
        # a root recognised by its small correction gets that correction (no evaluation:
        # ``residual`` stays the value before it, an upper bound of the one after it)
        by_correction = done & ~(step <= xtol * scale)
        cols = active[by_correction]
        u[:, cols] = project(u[:, cols] + np.nan_to_num(du_next[:, by_correction]))
        keep = ~(done | stalled)
        active = active[keep]
        norm, du = trial_n[keep], du_next[:, keep]
    # singular roots (a bifurcation point exactly on the grid): the residual reaches ftol but
    # the steps along the null direction do not shrink; the root is determined there only
    # to about sqrt(ftol), which the residual test accepts
    scale = 1 + np.max(np.abs(u), axis=0)
    singular = ~converged & np.isfinite(residual) & (residual <= ftol * scale)
    converged |= singular
    return NewtonResult(u, residual, converged, iterations, singular, last_correction)
