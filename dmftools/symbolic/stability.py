r"""Linear stability of stationary mean-field solutions, derived by perturbing the equations.

The linearised dynamics around a fixed point ``x*`` is ``-1 + J diag(phi'(x*))``. Its
spectrum has two parts (M&O 2018, Methods; THEORY.md section 5):

* the **bulk**, a disc of radius ``g sqrt([phi'^2](mu, Delta_0))`` from the random part;
* **outliers** from the low-rank part. An eigenmode ``lambda dx = J diag(phi') dx`` moves the
  statistics of the field. Split the stationary equations into the equations of the
  field statistics ``S = (mu, Delta_0, c_1..c_R)`` with ``c_k = Cov(n_k, x)`` and those of
  the overlaps, ``kappa_k = F_kappa(S)``. The field responds to the overlaps through the
  dynamics, so its statistics pick up the factor ``lambda``; the overlaps are read out
  instantaneously::

      lambda dS     = dF_S/dS dS + dF_S/dkappa dkappa
      dkappa        = dF_kappa/dS dS

  Eliminating ``dkappa`` gives ``lambda dS = M dS`` with
  ``M = dF_S/dS + dF_S/dkappa dF_kappa/dS``. For unit rank and ``Cov(m, n) = 0`` the non-zero
  eigenvalues of ``M`` are those of the authors' 3x3 ``EigStationary`` matrix. An
  eigenvalue of ``M`` is an outlier of the spectrum only outside the bulk disc
  (THEORY.md section 8).

Everything below is built from the derived equations with SymPy: the split uses the
Stein form of the overlap equations, the linearisation is ``sympy.diff`` (the averages'
``fdiff`` carry the heat-equation identities).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .averages import GaussAvg
from .derive import delta0, g, mu
from .equations import MeanFieldEquations, to_latex

__all__ = ["StabilityEquations", "derive_stability"]

lam = sp.Symbol("lambda")


@dataclass(frozen=True)
class StabilityEquations:
    """Spectrum of ``J diag(phi'(x*))`` at a stationary solution, as SymPy expressions.

    Attributes
    ----------
    equations : MeanFieldEquations
        The stationary equations the stability belongs to.
    radius : sympy.Expr
        Bulk radius ``g sqrt([phi'^2](mu, Delta_0))``.
    matrix : sympy.Matrix
        ``M`` (size ``2 + R``) in the unknowns and parameters; its eigenvalues outside the
        bulk disc are the outliers.
    statistics : tuple of sympy.Symbol
        The perturbed field statistics ``(mu, Delta_0, c_1..c_R)`` indexing ``matrix``.
    steps : tuple
        ``(description, sympy object)`` pairs recording the derivation.
    """

    equations: MeanFieldEquations
    radius: sp.Expr
    matrix: sp.Matrix
    statistics: tuple
    steps: tuple

    def characteristic_polynomial(self) -> sp.Expr:
        """``det(lambda - M)`` in the symbol ``lambda``."""
        return (lam * sp.eye(self.matrix.shape[0]) - self.matrix).det()

    def latex(self) -> str:
        """The bulk radius and the outlier matrix as LaTeX."""
        return (r"r = %s,\qquad M = %s" % (to_latex(self.radius), to_latex(self.matrix)))

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def __repr__(self) -> str:
        return (f"StabilityEquations(radius = {sp.sstr(self.radius)}, "
                f"matrix over {tuple(s.name for s in self.statistics)})")


def derive_stability(eqs: MeanFieldEquations) -> StabilityEquations:
    r"""Derive the bulk radius and the outlier matrix of stationary mean-field equations.

    Parameters
    ----------
    eqs : MeanFieldEquations
        Stationary equations from :func:`dmftools.derive` (any rank, any input geometry,
        either regime: the spectra of ``J diag(phi')`` and ``diag(phi') J`` coincide).

    Returns
    -------
    StabilityEquations

    Examples
    --------
    >>> import dmftools as dmf
    >>> eqs = dmf.derive(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0))
    >>> st = dmf.derive_stability(eqs)
    >>> print(st.radius)
    g*sqrt([phi'**2](mu, Delta_0))
    >>> st.matrix.shape
    (3, 3)
    """
    if not isinstance(eqs, MeanFieldEquations):
        raise TypeError(f"eqs: expected MeanFieldEquations, got {type(eqs).__name__}")
    if eqs.state != "stationary":
        raise ValueError(f"eqs: stability is derived for stationary equations, got state={eqs.state!r}")
    x = eqs.variable
    phi = eqs.phi_function
    dphi = sp.diff(phi(x), x)
    radius = g * sp.sqrt(GaussAvg(sp.Lambda(x, dphi**2), mu, delta0))
    steps = [("Bulk of the spectrum of J diag(phi'): a disc of radius g sqrt([phi'^2])",
              sp.Eq(sp.Symbol("r"), radius))]

    rank = eqs.model.rank
    kappas = eqs.unknowns[2:]
    by_lhs = {eq.lhs: eq.rhs for eq in eqs.equations}
    dphi_avg = GaussAvg(sp.Lambda(x, dphi), mu, delta0)
    cs = tuple(sp.Symbol(f"c_{k + 1}" if rank > 1 else "c", real=True) for k in range(rank))
    c_of_kappa, f_kappa = [], []
    for k, kap in enumerate(kappas):
        rhs = sp.expand(by_lhs[kap])
        coefficient = rhs.coeff(dphi_avg)
        rest = sp.expand(rhs - coefficient * dphi_avg)
        if rest.has(*kappas) or coefficient.has(dphi_avg):  # pragma: no cover - Stein form guard
            raise AssertionError(f"overlap equation of {kap} is not in the Stein form E[n][phi] + Cov(n,x)[phi']")
        c_of_kappa.append(coefficient)
        f_kappa.append(rest + cs[k] * dphi_avg)
        steps.append((f"Overlap {kap} read out instantaneously from the field statistics, "
                      f"with {cs[k]} = Cov(n_{k + 1}, x)", sp.Eq(kap, f_kappa[-1])))
    statistics = (mu, delta0) + cs
    f_stats = [by_lhs[mu], by_lhs[delta0]] + c_of_kappa
    for s, f in zip(statistics, f_stats):
        steps.append((f"Field statistic {s}: lambda d{s} = linearisation of its equation", sp.Eq(s, f)))
    dS = sp.Matrix(f_stats).jacobian(list(statistics))
    dK = sp.Matrix(f_stats).jacobian(list(kappas))
    kS = sp.Matrix(f_kappa).jacobian(list(statistics))
    matrix = dS + dK * kS
    # the c_k are functions of kappa at the solution
    matrix = matrix.subs(dict(zip(cs, c_of_kappa)))
    matrix = matrix.applyfunc(sp.expand)
    steps.append(("Eliminate the overlap perturbations: lambda dS = M dS, M = dF_S/dS + dF_S/dkappa dF_kappa/dS",
                  sp.Eq(sp.Symbol("M"), matrix)))
    return StabilityEquations(eqs, radius, matrix, statistics, tuple(steps))
