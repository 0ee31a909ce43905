"""Result objects of the solvers (SciPy style: values, success flags, residuals)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Solution", "StateSolutions", "SolveResult", "classify_stationary"]

#: |kappa| below this counts as the homogeneous (kappa = 0) solution.
KAPPA_ZERO = 1e-8
#: Stability margin of the region map: eigenvalues within this of 1 count as stable.
MARGINAL = 1e-9


@dataclass(frozen=True)
class Solution:
    """One mean-field solution at one parameter point.

    Attributes
    ----------
    state : {"stationary", "chaotic"}
    label : {"stationary-stable", "stationary-unstable", "chaotic"}
    branch : str
        ``"positive"``, ``"negative"`` or ``"central"`` overlap for unit rank (with
        ``"central_2"``, ``"positive_2"``, ... where a point has more solutions, see
        :class:`StateSolutions`); ``"0"``, ``"1"``, ... ordered by ``kappa_1`` for higher
        rank.
    mu, delta0 : float
    delta_inf : float or None
        Chaotic solutions only (``0 <= delta_inf < delta0``).
    kappa : float or tuple of float
    stable : bool or None
        Stationary solutions: bulk radius < 1 and every outlier has real part < 1.
    radius : float or None
        Bulk radius ``g sqrt([phi'^2])`` of ``J diag(phi')`` (stationary).
    outliers : tuple of complex
        Eigenvalues of ``J diag(phi')`` outside the bulk disc (stationary).
    residual : float
        ``max |F|`` of the solver equations at the solution.
    success : bool
        Always True for reported solutions (unconverged roots are never reported).
    parameters : dict
        ``g`` and the model parameters at this point.
    """

    state: str
    label: str
    branch: str
    mu: float
    delta0: float
    delta_inf: float | None
    kappa: float | tuple
    stable: bool | None
    radius: float | None
    outliers: tuple
    residual: float
    success: bool
    parameters: dict = field(repr=False)

    def __str__(self) -> str:
        kap = self.kappa if isinstance(self.kappa, tuple) else (self.kappa,)
        parts = [f"{self.label:<20s} branch={self.branch:<8s} mu={self.mu:+.10g} delta0={self.delta0:.10g}"]
        if self.delta_inf is not None:
            parts.append(f"delta_inf={self.delta_inf:.10g}")
        parts.append("kappa=" + ",".join(f"{k:+.10g}" for k in kap))
        if self.radius is not None:
            parts.append(f"radius={self.radius:.6g}")
            parts.append("outliers=[" + ", ".join(_fmt_complex(z) for z in self.outliers) + "]")
        parts.append(f"residual={self.residual:.1e} success={self.success}")
        return " ".join(parts)

    def as_dict(self) -> dict:
        """JSON-serialisable view."""
        d = {k: getattr(self, k) for k in ("state", "label", "branch", "mu", "delta0", "delta_inf", "kappa",
                                           "stable", "radius", "residual", "success")}
        d["outliers"] = [[z.real, z.imag] for z in self.outliers]
        d["parameters"] = {k: float(v) for k, v in self.parameters.items()}
        return d


def _fmt_complex(z):
    return f"{z.real:.6g}" if abs(z.imag) < 1e-12 else f"{z.real:.6g}{z.imag:+.6g}j"


_UNIT = ("negative", "central", "positive")


def _slot_names(rank, per_point, kappa_index):
    """Branch slots for a grid: unit rank ``negative``, ``central``, ``positive``, then as
    many ``central_k``, ``negative_k``, ``positive_k`` as the most crowded point needs;
    higher rank ``"0"``, ``"1"``, ..."""
    if rank == 1:
        extra = {"central": 0, "negative": 0, "positive": 0}
        for sols in per_point:
            n_zero = sum(abs(v[kappa_index]) <= KAPPA_ZERO for v in sols)
            extra["central"] = max(extra["central"], n_zero - 1)
            if len(sols) - n_zero + min(n_zero, 1) <= 3:
                continue
            for name in _assign_slots(sols, kappa_index, rank, _UNIT):
                base, _, k = name.partition("_")
                if k:
                    extra[base] = max(extra[base], int(k) - 1)
        return _UNIT + tuple(f"{base}_{k + 2}" for base in ("central", "negative", "positive")
                             for k in range(extra[base]))
    n_max = max((len(s) for s in per_point), default=0)
    return tuple(str(k) for k in range(max(n_max, 1)))


def _assign_slots(sols, kappa_index, rank, names):
    """Map each point's solutions to branch slots (unit rank: by sign of kappa). The
    per-point statement of the rules; grids use :func:`_slot_indices`, which the tests
    check against this.

    Unit rank: slots ``negative``, ``central``, ``positive`` (three solutions: lowest,
    middle, highest kappa); several ``kappa = 0`` solutions (e.g. the trivial and the
    static heterogeneous fixed point at ``g > 1``) fill ``central`` (largest ``delta0``),
    then ``central_2``, ... More than three solutions with ``kappa != 0``: by sign,
    farthest from 0 first (``negative``, ``negative_2``, ..., ``positive``,
    ``positive_2``, ...). Higher rank: slots ``"0"``, ``"1"``, ... by ``kappa_1``.
    """
    if names[:3] != _UNIT:
        order = sorted(range(len(sols)), key=lambda i: tuple(sols[i][kappa_index:]))
        return {names[pos]: sols[i] for pos, i in enumerate(order)}
    zero = sorted((v for v in sols if abs(v[kappa_index]) <= KAPPA_ZERO), key=lambda v: -v[1])
    nonzero = [v for v in sols if abs(v[kappa_index]) > KAPPA_ZERO]
    out = {f"central_{k + 2}": v for k, v in enumerate(zero[1:])}
    if len(nonzero) + min(len(zero), 1) <= 3:
        out.update(_assign_unit(zero[:1] + nonzero, kappa_index))
        return out
    if zero:
        out["central"] = zero[0]
    for base, sign in (("negative", -1), ("positive", 1)):
        side = sorted((v for v in nonzero if sign * v[kappa_index] > 0), key=lambda v: -abs(v[kappa_index]))
        out.update({(base if k == 0 else f"{base}_{k + 1}"): v for k, v in enumerate(side)})
    return out


def _assign_unit(sols, kappa_index):
    names = _UNIT
    order = sorted(range(len(sols)), key=lambda i: sols[i][kappa_index])
    ks = [sols[i][kappa_index] for i in order]
    if not order:
        return {}
    if len(order) == 3:
        return dict(zip(names, (sols[i] for i in order)))
    out = {}
    if len(order) == 1:
        k = ks[0]
        out["central" if abs(k) <= KAPPA_ZERO else ("positive" if k > 0 else "negative")] = sols[order[0]]
        return out
    # two solutions
    a, b = order
    ka, kb = ks
    if abs(ka) <= KAPPA_ZERO:
        return {"central": sols[a], ("positive" if kb > 0 else "negative"): sols[b]}
    if abs(kb) <= KAPPA_ZERO:
        return {"central": sols[b], ("positive" if ka > 0 else "negative"): sols[a]}
    if ka < 0 < kb:
        return {"negative": sols[a], "positive": sols[b]}
    # same sign: the one nearer zero is the central one
    near, far = (a, b) if abs(ka) < abs(kb) else (b, a)
    return {"central": sols[near], ("positive" if ks[0] > 0 else "negative"): sols[far]}


def _slot_indices(sols, counts, kappa_index, rank):
    """Branch slot of every root of a grid, in numpy: :func:`_slot_names` and
    :func:`_assign_slots` (the per-point reference, with the rules) for all points at once.

    ``sols`` (P, G, >= kappa_index + rank): each point's roots in its first ``counts[p]``
    rows. Returns ``(slots, index)``: the slot names and ``index`` (P, G), the slot of each
    root (-1 beyond a point's count).
    """
    P, G = sols.shape[:2]
    rows = np.arange(P)[:, None]
    valid = np.arange(G)[None, :] < np.asarray(counts)[:, None]
    index = np.full((P, G), -1)

    def rank_by(key, member):
        # position of each member among its point's members, ordered by key (stable)
        order = np.argsort(np.where(member, key, np.inf), axis=1, kind="stable")
        pos = np.empty((P, G), dtype=int)
        pos[rows, order] = np.arange(G)[None, :]
        return pos

    if rank != 1:
        keys = [np.where(valid, sols[..., kappa_index + k], np.inf) for k in range(rank - 1, -1, -1)]
        order = np.lexsort(keys, axis=-1)
        index[rows, order] = np.arange(G)[None, :]
        index[~valid] = -1
        n_max = int(np.max(counts)) if P else 0
        return tuple(str(k) for k in range(max(n_max, 1))), index
    with np.errstate(invalid="ignore"):
        kap = np.where(valid, sols[..., kappa_index], 0.0)
        zero = valid & (np.abs(kap) <= KAPPA_ZERO)
    neg = valid & ~zero & (kap < 0)
    pos = valid & ~zero & (kap > 0)
    n_zero, n_neg, n_pos = zero.sum(axis=1), neg.sum(axis=1), pos.sum(axis=1)
    simple = n_neg + n_pos + np.minimum(n_zero, 1) <= 3
    # kappa = 0 roots by decreasing delta0: the first joins the unit set, the others are
    # central_2, central_3, ...
    zrank = rank_by(-np.where(zero, sols[..., 1], 0.0), zero)
    extra_c = max(int(np.max(n_zero, initial=0)) - 1, 0)
    extra_n = max(int(np.max(n_neg[~simple], initial=0)) - 1, 0)
    extra_p = max(int(np.max(n_pos[~simple], initial=0)) - 1, 0)
    slots = _UNIT + tuple(f"{base}_{k + 2}" for base, extra in (("central", extra_c), ("negative", extra_n),
                                                                ("positive", extra_p)) for k in range(extra))
    NEG, CEN, POS = 0, 1, 2
    later = zero & (zrank >= 1)
    index[later] = 3 + zrank[later] - 1
    # points with more than three roots (kappa != 0, plus one kappa = 0): central, then by
    # sign, farthest from 0 first
    many = ~simple[:, None]
    nrank = rank_by(kap, neg)       # most negative first
    prank = rank_by(-kap, pos)      # most positive first
    index[many & zero & (zrank == 0)] = CEN
    for member, r, first, offset in ((neg, nrank, NEG, 3 + extra_c), (pos, prank, POS, 3 + extra_c + extra_n)):
        m = many & member
        index[m] = np.where(r[m] == 0, first, offset + r[m] - 1)
    # up to three roots: by kappa (the rules of _assign_unit)
    unit = simple[:, None] & ((zero & (zrank == 0)) | neg | pos)
    m = unit.sum(axis=1)
    urank = rank_by(kap, unit)
    three = unit & (m == 3)[:, None]
    index[three] = urank[three]  # negative, central, positive by kappa
    sign_slot = np.where(kap > 0, POS, NEG)
    one = unit & (m == 1)[:, None]
    index[one] = np.where(zero[one], CEN, sign_slot[one])
    two = np.flatnonzero(m == 2)
    if two.size:
        u = unit[two]
        a = np.argmax(u & (urank[two] == 0), axis=1)  # smaller kappa
        b = np.argmax(u & (urank[two] == 1), axis=1)
        ka, kb = kap[two, a], kap[two, b]
        za, zb = zero[two, a], zero[two, b]
        opposite = ~za & ~zb & (ka < 0) & (kb > 0)
        a_near = np.abs(ka) < np.abs(kb)
        same_sign = np.where(ka > 0, POS, NEG)
        slot_a = np.select([za, zb, opposite, a_near], [CEN, sign_slot[two, a], NEG, CEN], same_sign)
        slot_b = np.select([za, zb, opposite, a_near], [sign_slot[two, b], CEN, POS, same_sign], CEN)
        index[two, a] = slot_a
        index[two, b] = slot_b
    return slots, index


@dataclass
class StateSolutions:
    """Solutions of one state over a grid, one slot per branch.

    Arrays have shape ``(n_branches, *grid)``; ``found`` says which slots hold a
    converged solution (other entries are NaN and must be masked with it).

    Attributes
    ----------
    state : str
    unknowns : tuple of str
    branches : tuple of str
        Slot names (unit rank: ``negative``, ``central``, ``positive``, then
        ``central_2``, ..., ``negative_2``, ..., ``positive_2``, ... where a point has
        more solutions; higher rank: ``"0"``, ``"1"``, ...).
    values : dict of ndarray
        Unknowns (``mu``, ``delta0``, [``delta_inf``,] ``kappa`` / ``kappa1``..), ``residual``,
        and for stationary solutions ``radius``, ``outlier`` (largest real part among the
        outliers; NaN where there is none), ``n_outliers``, ``stable``; for chaotic ones
        ``potential_curvature`` and ``admissible``.
    found : ndarray of bool
    outliers : ndarray of object
        Per slot and point, the tuple of outlier eigenvalues (stationary).
    """

    state: str
    unknowns: tuple
    branches: tuple
    values: dict
    found: np.ndarray
    outliers: np.ndarray | None = None

    @classmethod
    def from_roots(cls, cf, state, sols, counts, flat, shape, *, admissible_only, stability):
        """Slots, stability and observables from the roots of a grid.

        ``sols`` (P, G, n + 1): each point's first ``counts[p]`` rows are its roots (the
        unknowns in ``cf.unknowns`` order, then the residual ``max |F|`` Newton reached).
        ``stability``: compiled stationary equations (bulk radius and outlier matrix).
        """
        rank = cf.equations.model.rank
        names = cf.unknowns
        kappa_index = 3 if state == "chaotic" else 2
        n = len(names)
        P = int(np.prod(shape, dtype=np.int64))
        slots, slot = _slot_indices(sols, counts, kappa_index, rank)
        vals = np.full((n + 1, len(slots), P), np.nan)
        found = np.zeros((len(slots), P), dtype=bool)
        p, j = np.nonzero(slot >= 0)
        vals[:, slot[p, j], p] = sols[p, j, : n + 1].T
        found[slot[p, j], p] = True
        values = {name: vals[i] for i, name in enumerate(names)}
        values["residual"] = vals[n]
        idx = np.nonzero(found)
        par = [flat[k][idx[1]] for k in cf.equations.parameters]
        u = [vals[i][idx] for i in range(n)]
        outliers = None
        if state == "stationary":
            radius = np.full(found.shape, np.nan)
            outlier = np.full(found.shape, np.nan)
            n_out = np.zeros(found.shape, dtype=int)
            stable = np.zeros(found.shape, dtype=bool)
            outliers = np.empty(found.shape, dtype=object)
            outliers.fill(())
            if idx[0].size:
                r, M = stability.stability(u + par)
                eig = np.linalg.eigvals(np.moveaxis(M, -1, 0)).astype(complex)  # real when all are
                outside = np.abs(eig) > r[:, None] * (1 + 1e-12) + 1e-14
                stable[idx] = (r < 1) & ~np.any(outside & (eig.real >= 1), axis=1)
                # outliers by decreasing real part; the others to the end
                order = np.argsort(np.where(outside, -eig.real, np.inf), axis=1, kind="stable")
                eig = np.take_along_axis(eig, order, axis=1)
                k_out = outside.sum(axis=1)
                radius[idx] = r
                n_out[idx] = k_out
                outlier[idx] = np.where(k_out > 0, eig[:, 0].real, np.nan)
                has = np.flatnonzero(k_out)
                for k, row, c in zip(has, eig[has].tolist(), k_out[has].tolist()):
                    outliers[idx[0][k], idx[1][k]] = tuple(row[:c])
            values.update(radius=radius, outlier=outlier, n_outliers=n_out, stable=stable)
        else:
            curvature = np.full(found.shape, np.nan)
            if idx[0].size:
                obs = dict(zip(cf.observable_names, cf._observable_fn(*(u + par))))
                curvature[idx] = np.broadcast_to(obs["potential_curvature"], idx[0].shape)
            admissible = np.where(found, curvature < 0, False)
            if admissible_only:
                found = found & admissible
                for key in values:
                    values[key] = np.where(found, values[key], np.nan)
                curvature = np.where(found, curvature, np.nan)
            values.update(potential_curvature=curvature, admissible=admissible & found)
        out = cls(state, tuple(names), slots,
                  {k: v.reshape((len(slots),) + shape) for k, v in values.items()},
                  found.reshape((len(slots),) + shape),
                  None if outliers is None else outliers.reshape((len(slots),) + shape))
        return out

    def label(self) -> np.ndarray:
        """Per slot and point: "stationary-stable", "stationary-unstable", "chaotic" or ""."""
        out = np.full(self.found.shape, "", dtype=object)
        if self.state == "chaotic":
            out[self.found] = "chaotic"
        else:
            out[self.found & self.values["stable"]] = "stationary-stable"
            out[self.found & ~self.values["stable"]] = "stationary-unstable"
        return out

    def kappa(self) -> np.ndarray:
        """Overlaps, shape ``(R, n_branches, *grid)``."""
        return np.stack([self.values[k] for k in self.unknowns if k.startswith("kappa")])


def classify_stationary(stat: StateSolutions, chaotic: StateSolutions | None) -> np.ndarray:
    """Region per grid point: 0 homogeneous stationary, 1 structured stationary,
    2 homogeneous chaotic, 3 structured chaotic, -1 none found.

    A fixed point that is marginally stable to within :data:`MARGINAL` (bulk radius or an
    outlier equal to 1, as on a grid line through a bifurcation) counts as stable here.
    """
    shape = stat.found.shape[1:]
    region = np.full(shape, -1, dtype=int)
    kap = np.max(np.abs(stat.kappa()), axis=0)
    with np.errstate(invalid="ignore"):
        marginal = (stat.values["radius"] < 1 + MARGINAL) & ~(stat.values["outlier"] >= 1 + MARGINAL)
    stable = stat.found & (stat.values["stable"] | marginal)
    structured_stable = np.any(stable & (kap > KAPPA_ZERO), axis=0)
    homogeneous_stable = np.any(stable & (kap <= KAPPA_ZERO), axis=0)
    if chaotic is not None:
        kc = np.max(np.abs(chaotic.kappa()), axis=0)
        structured_chaos = np.any(chaotic.found & (kc > KAPPA_ZERO), axis=0)
        homogeneous_chaos = np.any(chaotic.found & (kc <= KAPPA_ZERO), axis=0)
        region[homogeneous_chaos] = 2
        region[structured_chaos] = 3
    region[homogeneous_stable] = 0
    region[structured_stable] = 1
    return region


class SolveResult:
    """All solutions found by :func:`dmftools.solve`.

    Iterating yields :class:`Solution` objects (grid points in C order, then states,
    then branches); ``result["stationary"]`` and ``result["chaotic"]`` are
    :class:`StateSolutions` with arrays over the grid.

    Attributes
    ----------
    net : GaussianLowRank
    regime : str
    shape : tuple
        Broadcast shape of the parameter grid (``()`` for a single point).
    parameters : dict of ndarray
        Every parameter broadcast to ``shape``.
    states : dict of StateSolutions
    """

    def __init__(self, net, regime, shape, flat, states):
        self.net = net
        self.regime = regime
        self.shape = tuple(shape)
        self.parameters = {k: v.reshape(shape) for k, v in flat.items()}
        self.states = states

    def __getitem__(self, state) -> StateSolutions:
        try:
            return self.states[state]
        except KeyError:
            raise KeyError(f"state: {state!r} was not solved for; states here: {tuple(self.states)}") from None

    def solutions(self, index=()) -> list[Solution]:
        """The solutions at one grid point (``index`` into :attr:`shape`)."""
        out = []
        params = {k: float(v[index]) for k, v in self.parameters.items()}
        for state, ss in self.states.items():
            for j, branch in enumerate(ss.branches):
                if not ss.found[(j,) + tuple(np.atleast_1d(index)) if index != () else (j,)]:
                    continue
                at = (j,) + (tuple(np.atleast_1d(index)) if index != () else ())
                kap = tuple(float(ss.values[k][at]) for k in ss.unknowns if k.startswith("kappa"))
                stationary = state == "stationary"
                stable = bool(ss.values["stable"][at]) if stationary else None
                out.append(Solution(
                    state=state,
                    label=("stationary-stable" if stable else "stationary-unstable") if stationary else "chaotic",
                    branch=branch,
                    mu=float(ss.values["mu"][at]),
                    delta0=float(ss.values["delta0"][at]),
                    delta_inf=None if stationary else float(ss.values["delta_inf"][at]),
                    kappa=kap[0] if len(kap) == 1 else kap,
                    stable=stable,
                    radius=float(ss.values["radius"][at]) if stationary else None,
                    outliers=tuple(ss.outliers[at]) if stationary else (),
                    residual=float(ss.values["residual"][at]),
                    success=True,
                    parameters=params,
                ))
        return out

    def __iter__(self):
        for index in np.ndindex(*self.shape):
            yield from self.solutions(index)

    def __len__(self) -> int:
        return int(sum(int(ss.found.sum()) for ss in self.states.values()))

    def __repr__(self) -> str:
        if self.shape == ():
            lines = [f"SolveResult: {len(self)} solution(s) at " +
                     ", ".join(f"{k}={float(v):g}" for k, v in self.parameters.items())]
            lines += ["  " + str(s) for s in self]
            return "\n".join(lines)
        counts = ", ".join(f"{st}: {int(ss.found.sum())}" for st, ss in self.states.items())
        return f"SolveResult over a grid of shape {self.shape} ({counts} solutions)"

    def _dims(self):
        dims, coords = [], {}
        for axis, size in enumerate(self.shape):
            name = f"dim_{axis}"
            for key, v in self.parameters.items():
                moved = np.moveaxis(v, axis, -1).reshape(-1, size)
                if size > 1 and np.all(moved == moved[:1]) and key not in coords:
                    name = key
                    coords[key] = moved[0]
                    break
            dims.append(name)
        return dims, coords

    def to_xarray(self):
        """A labelled :class:`xarray.Dataset` (needs the ``xarray`` extra).

        Variables ``<state>_<quantity>`` over ``(<state>_branch, *grid)``, the
        ``<state>_found`` mask, the parameters, and attrs (model, phi, version, quadrature).

        Examples
        --------
        >>> import numpy as np, dmftools as dmf
        >>> ds = dmf.solve(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0), g=np.array([0.5, 1.5]),
        ...                states="stationary").to_xarray()
        >>> ds["stationary_kappa"].dims
        ('stationary_branch', 'g')
        """
        try:
            import xarray as xr
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("to_xarray needs xarray: pip install 'dmftools[xarray]'") from None
        from .. import __version__

        dims, coords = self._dims()
        data = {}
        for key, v in self.parameters.items():
            if key not in coords:
                data[key] = (dims, v)
        for state, ss in self.states.items():
            bdim = f"{state}_branch"
            coords[bdim] = list(ss.branches)
            data[f"{state}_found"] = ((bdim, *dims), ss.found)
            data[f"{state}_label"] = ((bdim, *dims), ss.label().astype(str))
            for key, v in ss.values.items():
                data[f"{state}_{key}"] = ((bdim, *dims), v)
        attrs = {
            "model": repr(self.net), "phi": self.net.phi.name, "regime": self.regime,
            "dmftools_version": __version__,
            "quadrature": "adaptive lattice trapezoid (dmftools.numeric.lattice), spacing 0.2",
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)
