"""The result of a derivation: mean-field equations in an abstract transfer function."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

__all__ = ["MeanFieldEquations"]

_REGIME_TEXT = {
    "current": "current regime (dx/dt = -x + J phi(x) + I)",
    "rate": "rate regime (dr/dt = -r + phi(J r + I), unknowns are statistics of y = J r + I)",
}


def to_latex(expr) -> str:
    """LaTeX of a derived expression, with the field's symbol conventions."""
    names = {s: r"\Delta_\infty" for s in getattr(expr, "free_symbols", ()) if s.name == "Delta_inf"}
    return sp.latex(expr, symbol_names=names)


def _python_name(symbol: sp.Symbol) -> str:
    name = symbol.name
    return {"Delta_0": "delta0", "Delta_inf": "delta_inf"}.get(name, name.replace("_", ""))


@dataclass(frozen=True)
class MeanFieldEquations:
    """Mean-field equations as derived by :func:`dmftools.derive`.

    Attributes
    ----------
    model : GaussianLowRank
    state, regime : str
    unknowns : tuple of sympy.Symbol
        ``mu, Delta_0, [Delta_inf,] kappa_1..kappa_R``.
    equations : tuple of sympy.Eq
        One per unknown, in the abstract ``phi`` (and its primitive ``Phi``).
    parameter_values : dict
        ``{Symbol: value}``; ``g`` has no default (``None``).
    observables : dict
        Derived quantities (mean activity, static variance, rate statistics, ...).
    steps : tuple
        ``(description, sympy object)`` pairs recording the derivation.
    """

    model: object
    state: str
    regime: str
    unknowns: tuple
    equations: tuple
    parameter_values: dict
    observables: dict
    steps: tuple
    phi_function: type
    primitive_function: type
    variable: sp.Symbol

    # -- views --------------------------------------------------------------------
    @property
    def residuals(self) -> sp.Matrix:
        """``lhs - rhs`` of every equation (zero at a solution)."""
        return sp.Matrix([eq.lhs - eq.rhs for eq in self.equations])

    @property
    def solver_residuals(self) -> sp.Matrix:
        """Residuals the solvers use: as :attr:`residuals`, except that the chaotic energy
        equation is divided by ``Delta_0 - Delta_inf``, which removes its spurious root at
        the stationary solution ``Delta_inf = Delta_0`` (THEORY.md section 8)."""
        res = self.residuals
        if self.state == "chaotic":
            d0, dinf = self.unknowns[1], self.unknowns[2]
            res = res.copy()
            res[2] = res[2] / (d0 - dinf)  # equations: mu, Delta_inf, energy, kappa_k
        return res

    def solver_jacobian(self) -> sp.Matrix:
        """Symbolic Jacobian of :attr:`solver_residuals`."""
        return self.solver_residuals.jacobian(list(self.unknowns))

    @property
    def unknown_names(self) -> tuple[str, ...]:
        """Python names of the unknowns: ``mu, delta0, [delta_inf,] kappa | kappa1..``."""
        return tuple(_python_name(u) for u in self.unknowns)

    @property
    def parameters(self) -> dict[str, sp.Symbol]:
        """Keyword name -> symbol for every parameter the equations depend on."""
        from ..model import _kwname

        out = {"g": next(s for s in self.parameter_values if s.name == "g")}
        out.update({_kwname(s): s for s in self.parameter_values if s.name != "g"})
        return out

    def jacobian(self) -> sp.Matrix:
        """Symbolic Jacobian of :attr:`residuals` with respect to :attr:`unknowns`.

        Derivatives of Gaussian averages are themselves Gaussian averages (``fdiff``).

        Examples
        --------
        >>> import dmftools as dmf
        >>> eqs = dmf.derive(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0))
        >>> eqs.jacobian().shape
        (3, 3)
        """
        return self.residuals.jacobian(list(self.unknowns))

    def concrete(self, expr: sp.Expr) -> sp.Expr:
        """Substitute the model's transfer function (and its primitive) into ``expr``.

        Closed forms (e.g. for ``erf``) are evaluated here.
        """
        phi_t = self.model.phi
        subs = {self.phi_function: sp.Lambda(self.variable, phi_t.expr)}
        if expr.has(self.primitive_function):
            subs[self.primitive_function] = sp.Lambda(self.variable, phi_t.get_primitive())
        out = expr
        for func, lam in subs.items():
            out = out.replace(func, lam)
        return out.doit()

    # -- display --------------------------------------------------------------------
    def _header(self) -> str:
        return (f"{self.state.capitalize()} mean-field equations, {_REGIME_TEXT[self.regime]}, "
                f"rank {self.model.rank}, phi = {self.model.phi.name}")

    def __str__(self) -> str:
        lines = [self._header()]
        lines += [f"  {sp.sstr(eq.lhs)} = {sp.sstr(eq.rhs)}" for eq in self.equations]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def latex(self) -> str:
        """The equations as a LaTeX ``aligned`` block."""
        rows = [r"%s &= %s" % (to_latex(eq.lhs), to_latex(eq.rhs)) for eq in self.equations]
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def describe_steps(self, latex: bool = False) -> str:
        """The recorded derivation steps, as text or Markdown with LaTeX."""
        out = []
        for i, (text, obj) in enumerate(self.steps, 1):
            if latex:
                out.append(f"{i}. {text}\n\n   $$\n   {to_latex(obj)}\n   $$\n")
            else:
                out.append(f"{i}. {text}\n     {sp.sstr(obj)}")
        return "\n".join(out)

    def to_markdown(self, title: str, intro: str = "") -> str:
        """A Markdown page (MyST math) with the derivation steps and the final equations.

        Examples
        --------
        >>> import dmftools as dmf
        >>> page = dmf.derive(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)).to_markdown("Stationary")
        >>> page.splitlines()[0]
        '# Stationary'
        """
        parts = [f"# {title}", ""]
        if intro:
            parts += [intro.strip(), ""]
        parts += [f"Model: `{self.model!r}`", "", f"{self._header()}.", "", "## Steps", "",
                  self.describe_steps(latex=True), "## Result", "", "$$", self.latex(), "$$", ""]
        return "\n".join(parts)

    # -- compilation ----------------------------------------------------------------
    def compile(self, backend: str = "numpy", *, nodes: int | None = None,
                nested_nodes: int | None = None, spacing: float | None = None, dps: int = 30,
                jacobian: bool = True):
        """Compile residuals (and Jacobian, observables) to numerical functions.

        Parameters
        ----------
        backend : {"numpy", "mpmath"}
            Vectorised quadrature over any batch shape, or arbitrary precision.
        nodes, nested_nodes : int, optional
            Fixed trapezoid nodes for single and nested averages (numpy backend). By
            default (both None) the adaptive lattice rules of
            :mod:`dmftools.numeric.lattice` are used, with nodes chosen per point from
            the variances (accuracy study in ``docs/accuracy.md``).
        spacing : float, optional
            Lattice spacing in activation space for the adaptive rules (default 0.2,
            which resolves tanh-like transfer functions to ~1e-14; use a smaller value
            for transfer functions with singularities closer to the real axis).
        dps : int
            Decimal digits for the mpmath backend.
        jacobian : bool
            Also compile the symbolic Jacobian.

        Returns
        -------
        dmftools.numeric.CompiledEquations

        Examples
        --------
        >>> import dmftools as dmf
        >>> eqs = dmf.derive(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0))
        >>> f = eqs.compile()
        >>> f.residuals(mu=0.0, delta0=0.0, kappa=0.0, g=0.5)
        array([0., 0., 0.])
        """
        from ..numeric.compile import compile_equations

        return compile_equations(self, backend=backend, nodes=nodes, nested_nodes=nested_nodes,
                                 dps=dps, jacobian=jacobian, spacing=spacing)
