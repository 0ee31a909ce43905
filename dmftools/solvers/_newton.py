"""Vectorised Newton iteration with the compiled symbolic Jacobian.

Every column of the batch is an independent system (a parameter point and a start).
Steps are damped only to stay feasible (variances positive, ``0 <= Delta_inf < Delta_0``)
and by backtracking when the residual norm does not decrease; converged columns drop out
of the batch, so late iterations cost only what is still running. Columns can also join
a running iteration (:class:`NewtonBatch`), in the same calls of the equations as the
others.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..numeric import _jit

__all__ = ["NewtonResult", "newton", "newton_compiled"]

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


_BIG = np.finfo(float).max


def _nan_to_num(x, nan=0.0):
    """``np.nan_to_num(x, nan=nan)`` for float arrays (the same values: infinities to the
    largest finite floats, NaN to ``nan``) at a fraction of its per-call cost."""
    return np.where(np.isnan(x), nan, np.clip(x, -_BIG, _BIG))


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


@functools.lru_cache(maxsize=1)
def _compiled_solver():
    """The compiled batched solver, or None; looked up on first use, not at import."""
    return _jit.linear_solver()


def _solve_linear(J, F):
    """Batched ``J du = -F``; singular columns get ``du = nan`` (they are then stopped).

    With numba, Gaussian elimination with partial pivoting in one compiled loop
    (:func:`dmftools.numeric._jit.linear_solver`); otherwise LAPACK through numpy, whose
    per-call cost exceeds the work for the few small systems of a Newton step."""
    solve = _compiled_solver()
    if solve is not None:
        out = np.empty(F.shape)
        solve(np.ascontiguousarray(J, dtype=float), np.ascontiguousarray(F, dtype=float), out)
        return out
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
    u0 = np.asarray(u0, dtype=float)
    batch = NewtonBatch(system, u0.shape[0], len(params), chaotic=chaotic, ftol=ftol, xtol=xtol, maxiter=maxiter,
                        max_backtracks=max_backtracks, patience=patience)
    batch.add(u0, [np.broadcast_to(np.asarray(p, dtype=float), (u0.shape[1],)) for p in params])
    while batch.running:
        batch.step()
    return batch.result()


def newton_compiled(kernel, u0, params, *, chaotic: bool, ftol: float = 1e-12, xtol: float = 1e-12,
                    maxiter: int = 50, max_backtracks: int = 6, patience: int = 10,
                    variance_max: float = np.inf) -> NewtonResult | None:
    """:func:`newton` run by a compiled iteration (the module ``CompiledEquations.newton_kernel()``).

    The same iteration, column by column in compiled code (the columns are independent, so
    the iterates are those of the batched :func:`newton`, to round-off); columns whose
    ``u[1]`` exceeds ``variance_max`` get an infinite residual, as with the solvers'
    system. Returns None (results discarded) when a column reaches arguments that are
    invalid input for the quadrature kernels: the caller then runs :func:`newton` from the
    same starts, whose numpy rules raise the error that says which.
    """
    U = np.array(u0, dtype=float, order="C")  # iterated in place
    n, B = U.shape
    P = np.empty((len(params), B))
    for i, p in enumerate(params):
        P[i] = p
    residual, correction = np.empty(B), np.empty(B)
    converged, singular = np.zeros(B, dtype=bool), np.zeros(B, dtype=bool)
    iterations = np.zeros(B, dtype=np.int64)
    status = kernel.step(np.arange(B), np.ones(B, dtype=bool), True, U, P, np.empty((n, B)), np.empty(B), residual,
                         correction, converged, iterations, singular, np.empty(B), np.zeros(B, dtype=np.int64),
                         bool(chaotic), float(ftol), float(xtol), int(maxiter), int(max_backtracks), int(patience),
                         float(variance_max), np.zeros(B, dtype=bool), np.empty(n))
    if status != 0:
        return None
    return NewtonResult(U, residual, converged, iterations, singular, correction)


class NewtonBatch:
    """Columns under :func:`newton`'s iteration, to which columns can be added between
    iterations (:meth:`add`), each then iterated exactly as by :func:`newton`.

    :meth:`step` runs one iteration of every running column in one evaluation of
    ``system`` (backtracking aside); a column added since the last step gets its first
    evaluation in the same call. Callers that find new starts while others still iterate
    (e.g. a flood of roots across a grid) so pay the per-call cost of ``system`` once per
    iteration, not once per iteration and wave of starts. Arguments as for :func:`newton`;
    ``compiled`` (``CompiledEquations.newton_kernel()``) runs the same steps in compiled code,
    with columns whose ``u[1]`` exceeds ``variance_max`` given an infinite residual, as the
    solvers' ``system`` does.

    Examples
    --------
    >>> import numpy as np
    >>> from dmftools.solvers._newton import NewtonBatch
    >>> def system(u, params):  # x^2 = a and v = x (v >= 0 like a variance), columnwise
    ...     x, v = u
    ...     F = np.array([x**2 - params[0], v - x])
    ...     J = np.array([[2 * x, 0 * x], [-1 + 0 * x, 1 + 0 * x]])
    ...     return F, J
    >>> batch = NewtonBatch(system, 2, 1, chaotic=False)
    >>> first = batch.add(np.array([[1.0], [1.0]]), [np.array([2.0])])
    >>> finished = batch.step()  # the first evaluation
    >>> second = batch.add(np.array([[1.0], [1.0]]), [np.array([9.0])])  # joins the iteration
    >>> while batch.running:
    ...     finished = batch.step()
    >>> res = batch.result()
    >>> [round(float(x), 12) for x in res.u[1]], res.converged.tolist()
    ([1.414213562373, 3.0], [True, True])
    """

    def __init__(self, system, n: int, n_params: int, *, chaotic: bool, ftol: float = 1e-12, xtol: float = 1e-12,
                 maxiter: int = 50, max_backtracks: int = 6, patience: int = 10, compiled=None,
                 variance_max: float = np.inf):
        self.system = system
        # the same iteration in compiled code (``CompiledEquations.newton_kernel()``; then
        # ``system`` is only called to raise the numpy rules' error on invalid input)
        self.compiled = compiled
        self.variance_max = variance_max
        self._P = np.empty((n_params, 0))  # parameters, one row each (:attr:`params`)
        self._DU = np.empty((n, 0))
        self._NA = np.empty(0)
        self.chaotic = chaotic
        self.ftol, self.xtol = ftol, xtol
        self.maxiter, self.max_backtracks, self.patience = maxiter, max_backtracks, patience
        self.project = _projector(chaotic)
        self.u = np.empty((n, 0))
        self.residual = np.empty(0)
        self.converged = np.zeros(0, dtype=bool)
        self.iterations = np.zeros(0, dtype=int)
        self.singular = np.zeros(0, dtype=bool)
        self.correction = np.empty(0)
        self._checkpoint = np.empty(0)
        self._since = np.zeros(0, dtype=int)
        self._active = np.zeros(0, dtype=int)  # iterating; their residual norm and next correction:
        self._norm = np.empty(0)
        self._du = np.empty((n, 0))
        self._pending = np.zeros(0, dtype=int)  # added, not evaluated yet

    @property
    def params(self) -> list:
        """The parameters of every column, one array each (rows of one store)."""
        return list(self._P)

    @property
    def running(self) -> bool:
        """Whether any column is still iterating or waiting for its first evaluation."""
        return bool(self._active.size or self._pending.size)

    def add(self, u0, params) -> np.ndarray:
        """Append columns ``u0`` (n, m) with parameters (each (m,)); returns their indices."""
        u0 = np.asarray(u0, dtype=float)
        m = u0.shape[1]
        first = self.u.shape[1]
        ids = np.arange(first, first + m)
        self.u = np.concatenate([self.u, u0], axis=1)
        added = np.empty((self._P.shape[0], m))
        for i, q in enumerate(params):
            added[i] = q
        self._P = np.concatenate([self._P, added], axis=1)
        self.residual = np.concatenate([self.residual, np.full(m, np.inf)])
        self.converged = np.concatenate([self.converged, np.zeros(m, dtype=bool)])
        self.iterations = np.concatenate([self.iterations, np.zeros(m, dtype=int)])
        self.singular = np.concatenate([self.singular, np.zeros(m, dtype=bool)])
        self.correction = np.concatenate([self.correction, np.full(m, np.inf)])
        self._checkpoint = np.concatenate([self._checkpoint, np.full(m, np.inf)])
        self._since = np.concatenate([self._since, np.zeros(m, dtype=int)])
        self._pending = np.concatenate([self._pending, ids])
        if self.compiled is not None:
            self._DU = np.concatenate([self._DU, np.empty((u0.shape[0], m))], axis=1)
            self._NA = np.concatenate([self._NA, np.empty(m)])
        return ids

    def result(self, ids=None) -> NewtonResult:
        """The state of the columns ``ids`` (default: all) as a :class:`NewtonResult`."""
        ids = np.arange(self.u.shape[1]) if ids is None else np.asarray(ids, dtype=int)
        return NewtonResult(self.u[:, ids], self.residual[ids], self.converged[ids], self.iterations[ids],
                            self.singular[ids], self.correction[ids])

    def step(self) -> np.ndarray:
        """One iteration of every iterating column and the first evaluation of every added
        one, in one call of ``system`` (plus backtracking); returns the indices of the
        columns that finished (converged or stopped)."""
        if self.compiled is not None:
            return self._step_compiled()
        ftol, xtol, project = self.ftol, self.xtol, self.project
        act, new = self._active, self._pending
        self._pending = np.zeros(0, dtype=int)
        n = self.u.shape[0]
        params = self.params
        pa = [p[act] for p in params]
        if act.size:
            ua, na = self.u[:, act], self._norm
            bad = ~np.all(np.isfinite(self._du), axis=0)
            du = _nan_to_num(self._du)
            alpha = np.where(bad, 0.0, np.minimum(1.0, _feasible_fraction(ua, du, self.chaotic)))
            # backtracking on max|F|; variances are projected onto >= 0 (a zero variance is
            # a legitimate solution, e.g. the homogeneous fixed point at g < 1)
            trial_u = project(ua + alpha * du)
        else:
            trial_u = np.empty((n, 0))
        if new.size:
            F, J = self.system(np.concatenate([trial_u, self.u[:, new]], axis=1),
                               [np.concatenate([q, p[new]]) for q, p in zip(pa, params)])
        else:
            F, J = self.system(trial_u, pa)
        norm = np.max(np.abs(F), axis=0)
        norm = np.where(np.isfinite(norm), norm, np.inf)
        finished = []
        keep_ids, keep_norm, keep_du = [], [], []
        if new.size:
            k = act.size
            self.residual[new] = norm[k:]
            du_new = _solve_linear(J[..., k:], F[:, k:])
            correction = np.max(np.abs(_nan_to_num(du_new, nan=np.inf)), axis=0)
            self.correction[new] = correction
            # a start that is already a root (e.g. a neighbour's exact solution on a branch
            # that does not depend on the varied parameter) is accepted without a step:
            # residual below ftol and the Newton correction there below xtol
            scale = 1 + np.max(np.abs(self.u[:, new]), axis=0)
            done = (norm[k:] <= ftol * scale) & (correction <= xtol * scale)
            self.converged[new[done]] = True
            self.u[:, new[done]] = project(self.u[:, new[done]] + _nan_to_num(du_new[:, done]))
            finished.append(new[done])
            keep_ids.append(new[~done])
            keep_norm.append(norm[k:][~done])
            keep_du.append(du_new[:, ~done])
        if act.size:
            m = act.size
            trial_F, trial_J, trial_n = F[:, :m], J[..., :m], norm[:m]
            settled = na <= ftol * (1 + np.max(np.abs(ua), axis=0))
            halvings = 0
            while halvings < self.max_backtracks:
                worse = (trial_n > na) & (alpha > 0) & ~settled
                if not np.any(worse):
                    break
                idx = np.flatnonzero(worse)
                # the first halving alone (most columns stop there); then the remaining ones
                # at once, as one batch of columns: the same step is accepted as by halving
                # one at a time (the largest that does not increase the residual), in one
                # call instead of up to max_backtracks - 1 (small batches cost their call
                # overhead)
                levels = 1 if halvings == 0 else \
                    min(self.max_backtracks - halvings, max(1, _BACKTRACK_BATCH // idx.size))
                w = idx.size
                a_b = alpha[idx][None, :] * 0.5 ** np.arange(1, levels + 1)[:, None]  # (levels, w)
                u_b = project((ua[:, idx][:, None, :] + a_b[None] * du[:, idx][:, None, :]).reshape(n, -1))
                Fb, Jb = self.system(u_b, [np.tile(p[idx], levels) for p in pa])
                nb = np.max(np.abs(Fb), axis=0)
                nb = np.where(np.isfinite(nb), nb, np.inf).reshape(levels, w)
                fine = nb <= na[idx][None, :]
                pick = np.where(np.any(fine, axis=0), np.argmax(fine, axis=0), levels - 1)
                cols = pick * w + np.arange(w)
                trial_u[:, idx], trial_F[:, idx], trial_J[..., idx] = u_b[:, cols], Fb[:, cols], Jb[..., cols]
                trial_n[idx] = nb[pick, np.arange(w)]
                alpha[idx] = a_b[pick, np.arange(w)]
                halvings += levels
            step = np.max(np.abs(trial_u - ua), axis=0)
            scale = 1 + np.max(np.abs(trial_u), axis=0)
            self.u[:, act] = trial_u
            self.residual[act] = trial_n
            self.iterations[act] += 1
            # the next correction is computed here (it is needed anyway to go on), so a root
            # is recognised by a small correction at it without one more evaluation
            du_next = _solve_linear(trial_J, trial_F)
            correction = np.max(np.abs(_nan_to_num(du_next, nan=np.inf)), axis=0)
            self.correction[act] = correction
            done = (trial_n <= ftol * scale) & ((step <= xtol * scale) | (correction <= xtol * scale))
            improved = trial_n < 0.5 * self._checkpoint[act]
            self._checkpoint[act] = np.where(improved, trial_n, self._checkpoint[act])
            self._since[act] = np.where(improved, 0, self._since[act] + 1)
            stalled = bad | (alpha == 0) | ~np.isfinite(trial_n) | (self._since[act] > self.patience)
            if self.chaotic:
                # collapsing onto a fixed point (delta_inf -> delta0), where the divided
                # equations are singular: the gap keeps shrinking geometrically
                gap_old = ua[1] - ua[2]
                gap_new = trial_u[1] - trial_u[2]
                stalled |= (gap_new < 1e-4 * (1 + trial_u[1])) & (gap_new < 0.7 * gap_old) & ~done
            self.converged[act[done]] = True
            # a root recognised by its small correction gets that correction (no evaluation:
            # ``residual`` stays the value before it, an upper bound of the one after it)
            by_correction = done & ~(step <= xtol * scale)
            cols = act[by_correction]
            self.u[:, cols] = project(self.u[:, cols] + _nan_to_num(du_next[:, by_correction]))
            keep = ~(done | stalled) & (self.iterations[act] < self.maxiter)
            finished.append(act[~keep])
            keep_ids.insert(0, act[keep])
            keep_norm.insert(0, trial_n[keep])
            keep_du.insert(0, du_next[:, keep])
        self._active = np.concatenate(keep_ids) if keep_ids else np.zeros(0, dtype=int)
        self._norm = np.concatenate(keep_norm) if keep_norm else np.empty(0)
        self._du = np.concatenate(keep_du, axis=1) if keep_du else np.empty((n, 0))
        fin = np.concatenate(finished) if finished else np.zeros(0, dtype=int)
        # singular roots (a bifurcation point exactly on the grid): the residual reaches
        # ftol but the steps along the null direction do not shrink; the root is
        # determined there only to about sqrt(ftol), which the residual test accepts
        scale = 1 + np.max(np.abs(self.u[:, fin]), axis=0)
        singular = ~self.converged[fin] & np.isfinite(self.residual[fin]) & (self.residual[fin] <= ftol * scale)
        self.singular[fin] = singular
        self.converged[fin[singular]] = True
        return fin

    def _step_compiled(self) -> np.ndarray:
        """:meth:`step` by the compiled module: column by column, the same iteration; the
        same columns finish, listed in the same order (new ones first)."""
        act, new = self._active, self._pending
        self._pending = np.zeros(0, dtype=int)
        cols = np.concatenate([new, act])
        first = np.arange(cols.size) < new.size
        finished = np.zeros(cols.size, dtype=bool)
        bad = np.empty(self.u.shape[0])
        status = self.compiled.step(cols, first, False, self.u, self._P, self._DU, self._NA, self.residual, self.correction,
                                    self.converged, self.iterations, self.singular, self._checkpoint, self._since,
                                    bool(self.chaotic), float(self.ftol), float(self.xtol), int(self.maxiter),
                                    int(self.max_backtracks), int(self.patience), float(self.variance_max),
                                    finished, bad)
        if status < 0:  # invalid input for the quadrature: the numpy rules say what is wrong
            c = cols[-1 - status]
            self.system(bad[:, None], list(self._P[:, c : c + 1]))
            raise RuntimeError(f"compiled Newton step: invalid kernel input at {bad.tolist()}")  # pragma: no cover
        done_new, done_act = finished[: new.size], finished[new.size :]
        self._active = np.concatenate([act[~done_act], new[~done_new]])
        return np.concatenate([new[done_new], act[done_act]])
