"""Compile derived equations to numerical functions with :func:`sympy.lambdify`.

Each distinct Gaussian average in an expression, ``GaussAvg(Lambda(x, f), mu, D)`` or
``GaussCov(...)``, is replaced by an application of a named function (``avg_0(mu, D)``);
the names are bound through lambdify's ``modules`` mapping to quadrature with the
integrand ``f`` compiled for the same backend. Replacing the integrand before lambdify
keeps ``cse=True`` safe (common-subexpression elimination would otherwise hoist pieces
of the integrand out of its lambda). Everything is compiled once and cached by
expression.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from ..symbolic.averages import GaussAvg, GaussCov
from . import _jit, lattice
from . import quadrature as quad

__all__ = ["CompiledEquations", "compile_equations", "compile_expressions", "np_logcosh"]

BACKENDS = ("numpy", "mpmath")


def np_logcosh(x):
    """``log(cosh(x))`` without overflow: ``|x| + log1p(exp(-2|x|)) - log 2``."""
    a = np.abs(x)
    return a + np.log1p(np.exp(-2.0 * a)) - math.log(2.0)


def mp_logcosh(x):
    return mpmath.log(mpmath.cosh(x))


_INTEGRAND_MODULES = {
    "numpy": [{"logcosh": np_logcosh}, "numpy", "scipy"],
    "mpmath": [{"logcosh": mp_logcosh}, "mpmath"],
}


@functools.lru_cache(maxsize=256)
def _integrand(lam: sp.Lambda, backend: str):
    return sp.lambdify(lam.variables, lam.expr, modules=_INTEGRAND_MODULES[backend])


def _bind_averages(exprs, backend, nodes, nested_nodes, spacing=None, jit=True):
    """Replace averages by named applications and build the namespace that implements them.

    With ``spacing`` (numpy backend) averages sharing their statistics arguments form one
    :class:`_AverageGroup`: all their integrands are compiled into one multi-output
    function (``cse``) and evaluated on one adaptive lattice per call
    (:mod:`dmftools.numeric.lattice`). Otherwise each average uses the fixed rule.
    """
    namespace = {}
    replacements = {}
    groups: dict = {}
    where = {}  # grouped applications -> (group, member position)
    for expr in exprs:
        for node in sp.preorder_traversal(expr):
            if node in replacements or not isinstance(node, (GaussAvg, GaussCov)):
                continue
            name = f"avg_{len(replacements)}"
            nested = isinstance(node, GaussCov)
            stat_args = node.args[2:] if nested else node.args[1:]
            if spacing is not None and backend == "numpy":
                group = groups.setdefault((nested, stat_args), _AverageGroup(nested, spacing, jit, stat_args))
                namespace[name] = group.member(node.args[:2] if nested else node.args[:1])
                where[sp.Function(name)(*stat_args)] = (group, len(group.members) - 1)
            elif not nested:
                f = _integrand(node.args[0], backend)
                if backend == "numpy":
                    namespace[name] = functools.partial(quad.gauss_average, f, nodes=nodes)
                else:
                    namespace[name] = functools.partial(quad.mp_gauss_average, f)
            else:
                f = _integrand(node.args[0], backend)
                h = f if node.args[1] == node.args[0] else _integrand(node.args[1], backend)
                if backend == "numpy":
                    namespace[name] = functools.partial(quad.nested_average, f, h, nodes=nested_nodes)
                else:
                    namespace[name] = functools.partial(quad.mp_nested_average, f, h)
            replacements[node] = sp.Function(name)(*stat_args)
    for group in groups.values():
        group.finalise()
    # averages never nest inside one another's arguments
    bound = [expr.xreplace(replacements) for expr in exprs]
    return bound, namespace, tuple(groups.values()), where


class _AverageGroup:
    """Averages that share their statistics arguments, evaluated together.

    The first member called with given argument objects evaluates every member on one
    lattice; the others read the stored values. The store is per thread and is cleared
    before every top-level call of the compiled function (:func:`compile_expressions`),
    so it never outlives one evaluation.
    """

    def __init__(self, nested: bool, spacing: float, jit: bool = True, stat_args: tuple = ()):
        self.nested = nested
        self.stat_args = stat_args
        self.spacing = spacing
        self.jit = jit
        self.integrands: list[sp.Lambda] = []
        self.members: list[tuple[int, ...]] = []
        self._local = threading.local()
        self.fn = None
        self.kernels = None
        self.pairs = ()

    def _index(self, lam):
        if lam not in self.integrands:
            self.integrands.append(lam)
        return self.integrands.index(lam)

    def member(self, lams):
        key = tuple(self._index(lam) for lam in lams)
        if self.nested and len(key) == 1:
            key = key * 2
        self.members.append(key)
        position = len(self.members) - 1
        return lambda *args: self.value(position, args)

    def finalise(self):
        x = sp.Dummy("x", real=True)
        bodies = [lam(x) for lam in self.integrands]
        self.fn = sp.lambdify([x], bodies, modules=_INTEGRAND_MODULES["numpy"], cse=True)
        self.pairs = tuple(self.members)
        # compiled kernels of the same rules when numba is there (see numeric._jit)
        self.kernels = _jit.kernels(self.integrands) if self.jit else None

    def reset(self):
        self._local.args = None

    def evaluate(self, *args) -> list:
        """Every member's values at the statistics ``args`` (no store)."""
        n = len(self.integrands)
        fn = self.fn if n > 1 else (lambda x, _f=self.fn: _f(x)[0])
        if self.nested:
            return lattice.nested_averages(fn, n, self.pairs, *args, spacing=self.spacing, kernels=self.kernels)
        singles = lattice.single_averages(fn, n, *args, spacing=self.spacing, kernels=self.kernels)
        return [singles[k[0]] for k in self.members]

    def value(self, position, args):
        store = self._local
        cached = getattr(store, "args", None)
        if cached is None or len(cached) != len(args) or any(a is not b for a, b in zip(cached, args)):
            store.values = self.evaluate(*args)
            store.args = args
        return store.values[position]


@functools.lru_cache(maxsize=128)
def compile_expressions(exprs: tuple, args: tuple, backend: str = "numpy", nodes: int = quad.DEFAULT_NODES,
                        nested_nodes: int = quad.DEFAULT_NESTED_NODES, spacing: float | None = None, jit: bool = True,
                        fused: bool = False):
    """Lambdify a tuple of concrete expressions (averages allowed) of ``args``.

    Cached by expression: the same equations compile once per session. The mpmath
    precision is not compiled in: callers set it with ``mpmath.workdps`` at call time.
    With ``spacing`` (numpy backend) the averages use the adaptive lattice rules of
    :mod:`dmftools.numeric.lattice`; otherwise the fixed rules with ``nodes`` and
    ``nested_nodes``. ``jit``: evaluate the lattice rules with compiled kernels when numba
    is installed (:mod:`dmftools.numeric._jit`; the same rules, equal to round-off);
    ``False`` keeps the numpy implementation (the reference the kernels are tested against).
    ``fused`` (with the kernels): the expressions around the averages are compiled too, one
    call per group of averages and one for the rest (:func:`_fused`); the function then
    returns one array ``(len(exprs), *shape)``. For the solvers' hot path: it costs a
    compilation per set of expressions.

    Returns
    -------
    callable
        ``fn(*args) -> list`` of values, one per expression.

    Examples
    --------
    >>> import sympy as sp
    >>> from dmftools.symbolic import average
    >>> from dmftools.numeric.compile import compile_expressions
    >>> x, mu, D = sp.symbols("x mu Delta", real=True)
    >>> fn = compile_expressions((average(sp.tanh(x)**2, x, mu, D),), (mu, D))
    >>> [round(float(v), 10) for v in fn(0.0, 0.0)]
    [0.0]
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: must be one of {BACKENDS}, got {backend!r}")
    bound, namespace, groups, where = _bind_averages(exprs, backend, nodes, nested_nodes, spacing, jit)
    if fused and groups and all(group.kernels is not None for group in groups):
        fast = _fused(args, bound, groups, where)
        if fast is not None:
            return fast
    fn = sp.lambdify(args, list(bound), modules=[namespace, *_INTEGRAND_MODULES[backend]], cse=True)
    if not groups:
        return fn

    def evaluate(*values):
        for group in groups:
            group.reset()
        try:
            return fn(*values)
        finally:
            for group in groups:
                group.reset()

    evaluate.__doc__ = fn.__doc__
    return evaluate


def _stacked(values, args) -> np.ndarray:
    """``np.stack(np.broadcast_arrays(*values))`` for values that are functions of the
    arrays ``args`` (so of their broadcast shape at most), without intermediate views."""
    if isinstance(values, np.ndarray):
        return values  # already stacked (fused evaluation)
    out = np.empty((len(values),) + np.broadcast_shapes(*(np.shape(a) for a in args)))
    for i, v in enumerate(values):
        out[i] = v
    return out


def _fused(args, bound, groups, where):
    """``fn(*values) -> ndarray (len(bound), *shape)``: each group of averages by its kernels,
    then the expressions around them compiled (:func:`dmftools.numeric._jit.algebra`); None
    when they cannot be compiled."""
    symbols = {app: sp.Symbol(f"avg{i}") for i, app in enumerate(where)}
    algebra = _jit.algebra(args, list(symbols.values()), [sp.sympify(e).xreplace(symbols) for e in bound])
    if algebra is None:
        return None
    stats = [sp.lambdify(args, list(group.stat_args), modules=["numpy"]) for group in groups]
    slot = [(groups.index(where[app][0]), where[app][1]) for app in symbols]
    n = len(bound)

    def evaluate(*values):
        shape, arrays = lattice._flat(*values)
        members = [group.evaluate(*lattice._flat(*stat(*arrays))[1]) for group, stat in zip(groups, stats)]
        out = np.empty((n, arrays[0].size if arrays else 1))
        algebra(*arrays, *(members[g][k] for g, k in slot), out)
        return out.reshape((n,) + shape)

    # the same evaluation as one compiled function, and Newton's method on it (the solvers)
    described = []
    for group in groups:
        d = {"nested": group.nested, "spacing": group.spacing, "kernels": group.kernels.__name__,
             "stats": list(group.stat_args), "n_out": len(group.integrands)}
        if group.nested:
            d["pairs"], d["used"] = lattice._pair_arrays(group.pairs)
        described.append(d)
    rows = [(g, k if groups[g].nested else groups[g].members[k][0]) for g, k in slot]
    evaluate.newton = _jit.newton_solver(args, described, rows, algebra)
    return evaluate


@dataclass(frozen=True)
class CompiledEquations:
    """Numerical residuals, Jacobian and observables of derived mean-field equations.

    Call with the unknowns (positionally in :attr:`unknowns` order, or by name) and
    parameters by keyword. Every model parameter defaults to the model's value; ``g``
    has no default. Arguments broadcast (numpy backend): the result has shape
    ``(n_equations, *batch)``.

    Attributes
    ----------
    equations : MeanFieldEquations
    backend : str
    nodes, nested_nodes : int or None
        Fixed quadrature nodes (numpy backend), or None for the adaptive lattice rules.
    spacing : float or None
        Lattice spacing of the adaptive rules (numpy backend).
    dps : int
        Working precision (mpmath backend).
    """

    equations: object
    backend: str
    nodes: int | None
    nested_nodes: int | None
    dps: int
    with_jacobian: bool = True
    spacing: float | None = None
    _residual_fn: object = field(default=None, repr=False)
    _jacobian_fn: object = field(default=None, repr=False)
    _observable_fn: object = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def unknowns(self) -> tuple[str, ...]:
        return self.equations.unknown_names

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(self.equations.parameters)

    @property
    def observable_names(self) -> tuple[str, ...]:
        return tuple(self.equations.observables)

    def _arguments(self, args, kwargs):
        names = self.unknowns
        if len(args) > len(names):
            raise TypeError(f"expected at most {len(names)} positional unknowns {names}, got {len(args)}")
        values = dict(zip(names, args))
        for key in list(kwargs):
            if key in names:
                if key in values:
                    raise TypeError(f"{key}: given both positionally and by keyword")
                values[key] = kwargs.pop(key)
        missing = [n for n in names if n not in values]
        if missing:
            raise TypeError(f"missing unknown(s) {missing}; the unknowns are {names}")
        params = {}
        symbols = self.equations.parameters
        defaults = self.equations.parameter_values
        for key, sym in symbols.items():
            if key in kwargs:
                params[key] = kwargs.pop(key)
            elif defaults[sym] is None:
                raise TypeError(f"{key}: required parameter (no default in the model)")
            else:
                params[key] = defaults[sym]
        if kwargs:
            raise TypeError(f"unexpected argument(s) {sorted(kwargs)}; parameters are {tuple(symbols)}")
        if np.any(np.asarray(params["g"], dtype=float) < 0):
            raise ValueError("g: must be >= 0")
        ordered = [values[n] for n in names] + [params[k] for k in symbols]
        labels = list(names) + list(symbols)
        if self.backend == "numpy":
            arrays = []
            for label, value in zip(labels, ordered):
                a = np.asarray(value, dtype=float)
                if not np.all(np.isfinite(a)):
                    raise ValueError(f"{label}: must be finite (got NaN or inf)")
                arrays.append(a)
            return arrays
        out = []
        for label, value in zip(labels, ordered):
            v = mpmath.mpf(value) if not isinstance(value, mpmath.mpf) else value
            if not mpmath.isfinite(v):
                raise ValueError(f"{label}: must be finite (got NaN or inf)")
            out.append(v)
        return out

    def _call(self, fn, args, kwargs):
        if self.backend == "numpy":
            arrays = self._arguments(args, kwargs)
            return np.stack(np.broadcast_arrays(*fn(*arrays)))
        with mpmath.workdps(self.dps):
            values = self._arguments(args, kwargs)
            return [+v for v in fn(*values)]

    def residuals(self, *args, **kwargs):
        """Residuals ``lhs - rhs``, shape ``(n_equations, *batch)`` (list for mpmath).

        Examples
        --------
        >>> import dmftools as dmf
        >>> f = dmf.derive(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)).compile()
        >>> f.residuals(0.0, 1.0, 0.0, g=1.0).round(6)
        array([0.      , 0.605706, 0.      ])
        """
        return self._call(self._residual_fn, args, kwargs)

    __call__ = residuals

    def jacobian(self, *args, **kwargs):
        """Jacobian ``d residual_i / d unknown_j``, shape ``(n, n, *batch)`` (nested list for mpmath)."""
        if self._jacobian_fn is None:
            raise ValueError("jacobian: compiled with jacobian=False")
        out = self._call(self._jacobian_fn, args, kwargs)
        n = len(self.unknowns)
        if self.backend == "numpy":
            return out.reshape((n, n) + out.shape[1:])
        return [out[i * n : (i + 1) * n] for i in range(n)]

    def observables(self, *args, **kwargs) -> dict:
        """Derived quantities (e.g. mean rate) at the given unknowns and parameters."""
        values = self._call(self._observable_fn, args, kwargs)
        return dict(zip(self.observable_names, values))

    # -- solver interface ------------------------------------------------------------
    def _options(self):
        return dict(backend=self.backend, nodes=self.nodes or quad.DEFAULT_NODES,
                    nested_nodes=self.nested_nodes or quad.DEFAULT_NESTED_NODES, spacing=self.spacing)

    def _compiled(self, kind: str):
        """Lazily compiled functions of the ordered arguments (unknowns, then parameters).

        ``"system"``: solver residuals and their Jacobian in one pass (shared quadrature);
        ``"stability"``: bulk radius and outlier matrix (stationary equations);
        ``"parameters"``: derivatives of the solver residuals with respect to every
        parameter (continuation).
        """
        if kind not in self._cache:
            eqs = self.equations
            args = tuple(eqs.unknowns) + tuple(eqs.parameters.values())
            if kind == "system":
                res = eqs.solver_residuals
                exprs = tuple(eqs.concrete(r) for r in res) + tuple(eqs.concrete(j) for j in eqs.solver_jacobian())
            elif kind == "stability":
                from ..symbolic.stability import derive_stability

                st = derive_stability(eqs)
                exprs = (eqs.concrete(st.radius),) + tuple(eqs.concrete(m) for m in st.matrix)
            elif kind == "parameters":
                jac = eqs.solver_residuals.jacobian(list(eqs.parameters.values()))
                exprs = tuple(eqs.concrete(j) for j in jac)
            else:  # pragma: no cover - internal
                raise ValueError(kind)
            # the solvers' hot path: fused (one compiled call around the averages' kernels)
            self._cache[kind] = compile_expressions(exprs, args, **self._options(), fused=kind == "system")
        return self._cache[kind]

    def ordered(self, unknowns, params: dict) -> list:
        """Arguments in compiled order: unknowns (sequence) then every parameter by name."""
        return list(unknowns) + [params[k] for k in self.equations.parameters]

    def system(self, ordered: list):
        """Solver residuals ``(n, *batch)`` and Jacobian ``(n, n, *batch)`` (numpy backend).

        ``ordered`` is :meth:`ordered`'s output; no validation (solver-internal). The chaotic
        energy equation is divided by ``Delta_0 - Delta_inf``.
        """
        n = len(self.unknowns)
        out = _stacked(self._compiled("system")(*ordered), ordered)
        return out[:n], out[n:].reshape((n, n) + out.shape[1:])

    def newton_kernel(self):
        """The compiled Newton iteration on :meth:`system` (the module of
        :func:`dmftools.numeric._jit.newton_solver`: ``system`` and ``step``), or None where
        the system is not compiled (no numba, or expressions it cannot print)."""
        return getattr(self._compiled("system"), "newton", None)

    def parameter_jacobian(self, ordered: list):
        """``d F_i / d p_j`` of the solver residuals, shape ``(n, n_params, *batch)``, the
        parameters in the order of ``equations.parameters`` (numpy backend, no validation)."""
        n = len(self.unknowns)
        out = _stacked(self._compiled("parameters")(*ordered), ordered)
        return out.reshape((n, -1) + out.shape[1:])

    def stability(self, ordered: list):
        """Bulk radius ``(*batch)`` and outlier matrix ``(k, k, *batch)`` (stationary, numpy)."""
        out = _stacked(self._compiled("stability")(*ordered), ordered)
        k = int(round(np.sqrt(out.shape[0] - 1)))
        return out[0], out[1:].reshape((k, k) + out.shape[1:])


def compile_equations(eqs, backend="numpy", nodes=None, nested_nodes=None, dps=30, jacobian=True, spacing=None):
    """Compile :class:`~dmftools.symbolic.MeanFieldEquations`; see its ``compile`` method."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: must be one of {BACKENDS}, got {backend!r}")
    adaptive = nodes is None and nested_nodes is None and backend == "numpy"
    if adaptive:
        spacing = lattice.check_spacing(lattice.SPACING if spacing is None else spacing)
    elif spacing is not None:
        raise ValueError("spacing: applies to the adaptive rules only; do not combine it with nodes/nested_nodes")
    nodes = quad.DEFAULT_NODES if nodes is None else nodes
    nested_nodes = quad.DEFAULT_NESTED_NODES if nested_nodes is None else nested_nodes
    for label, value in (("nodes", nodes), ("nested_nodes", nested_nodes)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 3 or value % 2 == 0:
            raise ValueError(f"{label}: must be an odd integer >= 3, got {value!r}")
    if isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or dps < 15:
        raise ValueError(f"dps: must be an integer >= 15, got {dps!r}")
    args = tuple(eqs.unknowns) + tuple(eqs.parameters.values())
    residuals = tuple(eqs.concrete(r) for r in eqs.residuals)
    options = dict(backend=backend, nodes=int(nodes), nested_nodes=int(nested_nodes), spacing=spacing)
    residual_fn = compile_expressions(residuals, args, **options)
    jacobian_fn = None
    if jacobian:
        jac = tuple(eqs.concrete(j) for j in eqs.jacobian())
        jacobian_fn = compile_expressions(jac, args, **options)
    obs = tuple(sp.sympify(eqs.concrete(sp.sympify(o))) for o in eqs.observables.values())
    observable_fn = compile_expressions(obs, args, **options)
    if adaptive:
        nodes = nested_nodes = None
    return CompiledEquations(eqs, backend, nodes if nodes is None else int(nodes),
                             nested_nodes if nested_nodes is None else int(nested_nodes), int(dps), jacobian,
                             spacing, residual_fn, jacobian_fn, observable_fn)
