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
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from ..symbolic.averages import GaussAvg, GaussCov
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


def _bind_averages(exprs, backend, nodes, nested_nodes):
    """Replace averages by named applications and build the namespace that implements them."""
    namespace = {}
    replacements = {}
    for expr in exprs:
        for node in sp.preorder_traversal(expr):
            if node in replacements or not isinstance(node, (GaussAvg, GaussCov)):
                continue
            name = f"avg_{len(replacements)}"
            if isinstance(node, GaussAvg):
                f = _integrand(node.args[0], backend)
                stat_args = node.args[1:]
                if backend == "numpy":
                    impl = functools.partial(quad.gauss_average, f, nodes=nodes)
                else:
                    impl = functools.partial(quad.mp_gauss_average, f)
            else:
                f = _integrand(node.args[0], backend)
                h = f if node.args[1] == node.args[0] else _integrand(node.args[1], backend)
                stat_args = node.args[2:]
                if backend == "numpy":
                    impl = functools.partial(quad.nested_average, f, h, nodes=nested_nodes)
                else:
                    impl = functools.partial(quad.mp_nested_average, f, h)
            namespace[name] = impl
            replacements[node] = sp.Function(name)(*stat_args)
    # innermost-first is not needed: averages never nest inside one another's arguments
    bound = [expr.xreplace(replacements) for expr in exprs]
    return bound, namespace


@functools.lru_cache(maxsize=128)
def compile_expressions(exprs: tuple, args: tuple, backend: str = "numpy", nodes: int = quad.DEFAULT_NODES,
                        nested_nodes: int = quad.DEFAULT_NESTED_NODES):
    """Lambdify a tuple of concrete expressions (averages allowed) of ``args``.

    Cached by expression: the same equations compile once per session. The mpmath
    precision is not compiled in: callers set it with ``mpmath.workdps`` at call time.

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
    bound, namespace = _bind_averages(exprs, backend, nodes, nested_nodes)
    return sp.lambdify(args, list(bound), modules=[namespace, *_INTEGRAND_MODULES[backend]], cse=True)


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
    nodes, nested_nodes : int
        Quadrature nodes (numpy backend).
    dps : int
        Working precision (mpmath backend).
    """

    equations: object
    backend: str
    nodes: int
    nested_nodes: int
    dps: int
    with_jacobian: bool = True
    _residual_fn: object = field(default=None, repr=False)
    _jacobian_fn: object = field(default=None, repr=False)
    _observable_fn: object = field(default=None, repr=False)

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


def compile_equations(eqs, backend="numpy", nodes=None, nested_nodes=None, dps=30, jacobian=True):
    """Compile :class:`~dmftools.symbolic.MeanFieldEquations`; see its ``compile`` method."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: must be one of {BACKENDS}, got {backend!r}")
    nodes = quad.DEFAULT_NODES if nodes is None else nodes
    nested_nodes = quad.DEFAULT_NESTED_NODES if nested_nodes is None else nested_nodes
    for label, value in (("nodes", nodes), ("nested_nodes", nested_nodes)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 3 or value % 2 == 0:
            raise ValueError(f"{label}: must be an odd integer >= 3, got {value!r}")
    if isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or dps < 15:
        raise ValueError(f"dps: must be an integer >= 15, got {dps!r}")
    args = tuple(eqs.unknowns) + tuple(eqs.parameters.values())
    residuals = tuple(eqs.concrete(r) for r in eqs.residuals)
    options = dict(backend=backend, nodes=int(nodes), nested_nodes=int(nested_nodes))
    residual_fn = compile_expressions(residuals, args, **options)
    jacobian_fn = None
    if jacobian:
        jac = tuple(eqs.concrete(j) for j in eqs.jacobian())
        jacobian_fn = compile_expressions(jac, args, **options)
    obs = tuple(sp.sympify(eqs.concrete(sp.sympify(o))) for o in eqs.observables.values())
    observable_fn = compile_expressions(obs, args, **options)
    return CompiledEquations(eqs, backend, int(nodes), int(nested_nodes), int(dps), jacobian,
                             residual_fn, jacobian_fn, observable_fn)
