r"""Gaussian averages as SymPy functions.

``GaussAvg(f, mu, Delta)`` is :math:`[f](\mu, \Delta) = \int Dz\, f(\mu + \sqrt{\Delta} z)`
and ``GaussCov(f, h, mu, Delta0, Delta_inf)`` is the nested average

.. math::

    [[f, h]](\mu, \Delta_0, \Delta_\infty) = \int Dz\, \Big(\int Dx\, f(\mu + \sqrt{\Delta_0-\Delta_\infty}\,x
        + \sqrt{\Delta_\infty}\,z)\Big)\Big(\int Dy\, h(\mu + \sqrt{\Delta_0-\Delta_\infty}\,y + \sqrt{\Delta_\infty}\,z)\Big),

the covariance of ``f`` and ``h`` evaluated on two jointly Gaussian variables of variance
``Delta0`` and covariance ``Delta_inf``; ``[[f]]_2 = [[f, f]]``.

The integrand ``f`` is a :class:`sympy.Lambda` in one variable. ``fdiff`` carries the
identities (heat equation / Price's theorem)

.. math::

    \partial_\mu [f] = [f'], \quad \partial_\Delta [f] = \tfrac12 [f''], \quad
    \partial_\mu [[f,h]] = [[f',h]] + [[f,h']], \quad
    \partial_{\Delta_0} [[f,h]] = \tfrac12([[f'',h]] + [[f,h'']]), \quad
    \partial_{\Delta_\infty} [[f,h]] = [[f',h']],

so ``.diff()`` and Jacobians stay symbolic and compile. Printing to numpy/mpmath code is
done by :mod:`dmftools.numeric.compile`, which binds these names through lambdify's
``modules`` mapping.
"""

from __future__ import annotations

import sympy as sp

__all__ = ["GaussAvg", "GaussCov", "nested", "average"]

_x = sp.Symbol("x", real=True)


def _as_lambda(f) -> sp.Lambda:
    if isinstance(f, sp.Lambda):
        if len(f.variables) != 1:
            raise ValueError(f"f: the integrand must be a function of one variable, got {f}")
        return f
    raise TypeError(f"f: expected a sympy.Lambda of one variable, got {type(f).__name__}")


def _derivative(f: sp.Lambda, order: int = 1) -> sp.Lambda:
    (v,) = f.variables
    return sp.Lambda(v, sp.diff(f.expr, v, order))


def _body_latex(printer, f: sp.Lambda) -> str:
    """Show ``Lambda(x, phi(x)**2)`` as ``phi**2`` and ``Derivative(phi(x), x)`` as ``phi'``.

    Integrands that are not functions of an abstract transfer function print as the
    expression in the integration variable."""
    (v,) = f.variables
    expr = f.expr
    replacements = {}
    for d in expr.atoms(sp.Derivative):
        if len(d.variables) and set(d.variables) == {v} and d.expr.is_Function and d.expr.args == (v,):
            name = printer._print(sp.Symbol(d.expr.func.__name__))
            replacements[d] = sp.Symbol(name + "'" * len(d.variables))
    for a in expr.atoms(sp.core.function.AppliedUndef):
        if a.args == (v,):
            replacements[a] = sp.Symbol(printer._print(sp.Symbol(a.func.__name__)))
    return printer._print(expr.xreplace(replacements))


def _closed_form(f: sp.Lambda, mu, delta):
    """Closed form of ``[f](mu, delta)`` where one is known, else None.

    Known: constants, ``c erf(a x + b)``, ``c exp(-a x^2)``, ``c x exp(-a x^2)`` and sums of these.
    """
    (v,) = f.variables
    expr = sp.expand(f.expr)
    if not expr.has(v):
        return expr
    if expr.is_Add:
        parts = [_closed_form(sp.Lambda(v, term), mu, delta) for term in expr.args]
        return None if any(p is None for p in parts) else sp.Add(*parts)
    coeff, rest = expr.as_independent(v, as_Add=False)
    if isinstance(rest, sp.erf):
        lin = sp.Poly(rest.args[0], v) if rest.args[0].is_polynomial(v) else None
        if lin is not None and lin.degree() == 1:
            a, b = lin.all_coeffs()
            return coeff * sp.erf((a * mu + b) / sp.sqrt(1 + 2 * a**2 * delta))
    power_of_x = sp.S.Zero
    if rest.is_Mul:
        factors = list(rest.args)
        if v in factors:
            factors.remove(v)
            power_of_x = sp.S.One
            rest = sp.Mul(*factors)
    if isinstance(rest, sp.exp):
        quad = rest.args[0]
        if quad.is_polynomial(v):
            poly = sp.Poly(quad, v)
            if poly.degree() == 2 and poly.all_coeffs()[1:] == [0, 0]:
                a = -poly.all_coeffs()[0]  # exp(-a x^2)
                s = 1 + 2 * a * delta
                gauss = sp.exp(-a * mu**2 / s) / sp.sqrt(s)
                return coeff * gauss * (mu / s if power_of_x else 1)
    return None


class GaussAvg(sp.Function):
    r"""The Gaussian average :math:`[f](\mu, \Delta)`.

    Parameters
    ----------
    f : sympy.Lambda
        The integrand, a function of one variable.
    mu, delta : sympy.Expr
        Mean and variance (>= 0) of the Gaussian.

    Notes
    -----
    Evaluates to a closed form for ``erf`` and Gaussian integrands, to ``f(mu)`` at
    ``delta = 0`` and to ``f`` for constant integrands.

    Examples
    --------
    >>> import sympy as sp
    >>> from dmftools.symbolic import GaussAvg
    >>> x, mu, D = sp.symbols("x mu Delta", real=True)
    >>> avg = GaussAvg(sp.Lambda(x, sp.tanh(x)), mu, D)
    >>> avg.diff(mu)
    [1 - tanh(x)**2](mu, Delta)
    >>> GaussAvg(sp.Lambda(x, sp.erf(x)), mu, D)
    erf(mu/sqrt(2*Delta + 1))
    """

    nargs = 3

    @classmethod
    def eval(cls, f, mu, delta):
        f = _as_lambda(f)
        if delta.is_zero:
            return f(mu)
        return _closed_form(f, mu, delta)

    @property
    def integrand(self) -> sp.Lambda:
        return self.args[0]

    def fdiff(self, argindex=1):
        f, mu, delta = self.args
        if argindex == 2:
            return GaussAvg(_derivative(f), mu, delta)
        if argindex == 3:
            return GaussAvg(_derivative(f, 2), mu, delta) / 2
        raise sp.ArgumentIndexError(self, argindex)

    def _latex(self, printer, exp=None):
        f, mu, delta = self.args
        s = r"\left[%s\right]\left(%s, %s\right)" % (
            _body_latex(printer, f), printer._print(mu), printer._print(delta))
        return r"%s^{%s}" % (s, exp) if exp else s

    def _sympystr(self, printer):
        f, mu, delta = self.args
        return "[%s](%s, %s)" % (_body_latex(printer, f), printer._print(mu), printer._print(delta))


class GaussCov(sp.Function):
    r"""The nested Gaussian average :math:`[[f, h]](\mu, \Delta_0, \Delta_\infty)`.

    Parameters
    ----------
    f, h : sympy.Lambda
        Integrands of one variable.
    mu, delta0, delta_inf : sympy.Expr
        Mean, variance and covariance, ``0 <= delta_inf <= delta0``.

    Notes
    -----
    Symmetric in ``f`` and ``h`` (arguments are put in canonical order); reduces to
    ``[f][h]`` at ``delta_inf = 0`` and to ``[f h](mu, delta0)`` at ``delta_inf = delta0``.

    Examples
    --------
    >>> import sympy as sp
    >>> from dmftools.symbolic import GaussCov, GaussAvg
    >>> x, mu, D0, Di = sp.symbols("x mu Delta_0 Delta_inf", real=True)
    >>> F = sp.Lambda(x, x**3 / 3)
    >>> GaussCov(F, F, mu, D0, Di).diff(Di)
    [[x**2]]_2(mu, Delta_0, Delta_inf)
    >>> GaussCov(F, F, mu, D0, D0)
    [x**6/9](mu, Delta_0)
    """

    nargs = 5

    @classmethod
    def eval(cls, f, h, mu, delta0, delta_inf):
        f, h = _as_lambda(f), _as_lambda(h)
        if delta_inf.is_zero:
            return GaussAvg(f, mu, delta0) * GaussAvg(h, mu, delta0)
        if (delta0 - delta_inf).is_zero:
            (v,) = f.variables
            return GaussAvg(sp.Lambda(v, f(v) * h(v)), mu, delta0)
        if sp.default_sort_key(h) < sp.default_sort_key(f):
            return cls(h, f, mu, delta0, delta_inf)

    @property
    def integrands(self) -> tuple[sp.Lambda, sp.Lambda]:
        return self.args[0], self.args[1]

    def fdiff(self, argindex=1):
        f, h, mu, d0, dinf = self.args
        df, dh = _derivative(f), _derivative(h)
        if argindex == 3:
            return GaussCov(df, h, mu, d0, dinf) + GaussCov(f, dh, mu, d0, dinf)
        if argindex == 4:
            return (GaussCov(_derivative(f, 2), h, mu, d0, dinf) + GaussCov(f, _derivative(h, 2), mu, d0, dinf)) / 2
        if argindex == 5:
            return GaussCov(df, dh, mu, d0, dinf)
        raise sp.ArgumentIndexError(self, argindex)

    def _latex(self, printer, exp=None):
        f, h, mu, d0, dinf = self.args
        args = r"\left(%s, %s, %s\right)" % tuple(printer._print(a) for a in (mu, d0, dinf))
        if f == h:
            s = r"\left[\left[%s\right]\right]_2%s" % (_body_latex(printer, f), args)
        else:
            s = r"\left[\left[%s, %s\right]\right]%s" % (_body_latex(printer, f), _body_latex(printer, h), args)
        return r"\left(%s\right)^{%s}" % (s, exp) if exp else s

    def _sympystr(self, printer):
        f, h, mu, d0, dinf = self.args
        inner = _body_latex(printer, f) if f == h else "%s, %s" % (_body_latex(printer, f), _body_latex(printer, h))
        tail = "_2" if f == h else ""
        return "[[%s]]%s(%s, %s, %s)" % (inner, tail, printer._print(mu), printer._print(d0), printer._print(dinf))


def average(expr: sp.Expr, var: sp.Symbol, mu, delta) -> sp.Expr:
    """``[expr](mu, delta)`` for an expression ``expr`` in ``var``.

    Examples
    --------
    >>> import sympy as sp
    >>> from dmftools.symbolic import average
    >>> x, mu, D = sp.symbols("x mu Delta", real=True)
    >>> average(x**0 * 3, x, mu, D)
    3
    """
    return GaussAvg(sp.Lambda(var, expr), mu, delta)


def nested(expr: sp.Expr, var: sp.Symbol, mu, delta0, delta_inf, other: sp.Expr | None = None) -> sp.Expr:
    """``[[expr, other]](mu, delta0, delta_inf)``; ``other`` defaults to ``expr`` (``[[expr]]_2``).

    Examples
    --------
    >>> import sympy as sp
    >>> from dmftools.symbolic import nested
    >>> x, mu, D0, Di = sp.symbols("x mu Delta_0 Delta_inf", real=True)
    >>> nested(sp.tanh(x), x, mu, D0, 0)
    [tanh(x)](mu, Delta_0)**2
    """
    f = sp.Lambda(var, expr)
    h = f if other is None else sp.Lambda(var, other)
    return GaussCov(f, h, mu, delta0, delta_inf)
