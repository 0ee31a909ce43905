r"""Derivation of the dynamical mean-field equations with SymPy.

Nothing here is transcribed from a paper: the equations are built from the model
description by three pieces of algebra, each recorded as a derivation step:

1. *Linear-Gaussian algebra.* The per-unit variables ``v = (m_1..m_R, n_1..n_R, I)`` are
   jointly Gaussian with symbolic mean ``M`` and covariance ``S``. The structured part of
   the field, ``s = sum_k kappa_k m_k + I = w . v``, has mean ``w . M`` and variance
   ``w^T S w``; ``Cov(v, s) = S w``.
2. *The random part.* ``g chi a`` for a presynaptic activity ``a`` is, at large N, a
   Gaussian field independent of ``v`` with variance ``g^2 E[a^2]``; in time its
   autocovariance is filtered by ``(1 + d/dt)`` (SCS 1988).
3. *Stein's lemma.* ``kappa_k = E[n_k a]`` with ``a = phi(field)`` is
   ``E[n_k] [phi] + Cov(n_k, field) [phi']``.

The chaotic equations follow from the Newton equation of the autocovariance by
constructing its potential and checking ``V' = -force`` with the ``fdiff`` identities.
The rate regime starts from ``dr/dt = -r + phi(J r + I)`` and changes variables to
``y = J r + I`` with non-commutative symbols.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..model import GaussianLowRank
from .averages import GaussAvg, GaussCov
from .equations import MeanFieldEquations

__all__ = ["derive", "STATES", "REGIMES"]

STATES = ("stationary", "chaotic")
REGIMES = ("current", "rate")

_x = sp.Symbol("x", real=True)
phi = sp.Function("phi")
Phi = sp.Function("Phi")
g = sp.Symbol("g", nonnegative=True)
mu = sp.Symbol("mu", real=True)
delta0 = sp.Symbol("Delta_0", nonnegative=True)
delta_inf = sp.Symbol("Delta_inf", nonnegative=True)
tau = sp.Symbol("tau", real=True)


def kappa_symbols(rank: int) -> tuple[sp.Symbol, ...]:
    if rank == 1:
        return (sp.Symbol("kappa", real=True),)
    return tuple(sp.Symbol(f"kappa_{k + 1}", real=True) for k in range(rank))


@dataclass(frozen=True)
class _LinearGaussian:
    """Jointly Gaussian vector with symbolic mean and covariance."""

    mean: sp.Matrix
    cov: sp.Matrix

    def mean_of(self, w: sp.Matrix) -> sp.Expr:
        return sp.expand((w.T * self.mean)[0, 0])

    def var_of(self, w: sp.Matrix) -> sp.Expr:
        return sp.expand((w.T * self.cov * w)[0, 0])

    def cov_with(self, i: int, w: sp.Matrix) -> sp.Expr:
        return sp.expand((self.cov[i, :] * w)[0, 0])


def _avg(expr, m, d):
    return GaussAvg(sp.Lambda(_x, expr), m, d)


def derive(net: GaussianLowRank, state: str = "stationary", regime: str = "current") -> MeanFieldEquations:
    r"""Derive the mean-field equations of a low-rank plus random network.

    Parameters
    ----------
    net : GaussianLowRank
        The model description (e.g. :func:`dmftools.RankOne`).
    state : {"stationary", "chaotic"}
        Fixed points (unknowns ``mu, Delta_0, kappa``) or chaotic solutions (adds
        ``Delta_inf`` and the energy-conservation equation).
    regime : {"current", "rate"}
        ``dx/dt = -x + J phi(x) + I`` or ``dr/dt = -r + phi(J r + I)``. For the rate
        regime the unknowns are the statistics of ``y = J r + I``, and rate observables
        (mean rate, ``C_r``) are attached as derived quantities.

    Returns
    -------
    MeanFieldEquations
        Equations in the abstract transfer function ``phi`` (displayed as such), with
        the steps of the derivation, compilable with ``.compile()``.

    Examples
    --------
    >>> import dmftools as dmf
    >>> net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    >>> eqs = dmf.derive(net)
    >>> print(eqs)
    Stationary mean-field equations, current regime (dx/dt = -x + J phi(x) + I), rank 1, phi = tanh
      mu = M_m*kappa
      Delta_0 = Sigma_m**2*kappa**2 + g**2*[phi**2](mu, Delta_0)
      kappa = M_n*[phi](mu, Delta_0)
    """
    if not isinstance(net, GaussianLowRank):
        raise TypeError(f"net: expected a GaussianLowRank (e.g. dmftools.RankOne(...)), got {type(net).__name__}")
    if state not in STATES:
        raise ValueError(f"state: must be one of {STATES}, got {state!r}")
    if regime not in REGIMES:
        raise ValueError(f"regime: must be one of {REGIMES}, got {regime!r}")

    R = net.rank
    mean_sym, cov_sym, values = net.symbols()
    v = _LinearGaussian(mean_sym, cov_sym)
    kappas = kappa_symbols(R)
    steps: list[tuple[str, object]] = []

    field_name = "x"
    if regime == "rate":
        field_name = "y"
        steps.extend(_rate_change_of_variables())

    # 1. structured part of the field: s = sum_k kappa_k m_k + I
    w = sp.Matrix(list(kappas) + [0] * R + [1])
    mean_s = v.mean_of(w)
    var_s = v.var_of(w)
    steps.append((
        f"Structured part of the field {field_name}: s = sum_k kappa_k m_k + I, jointly Gaussian with the loadings",
        sp.Eq(sp.Symbol("E[s]"), mean_s),
    ))
    steps.append(("Its variance across units (quenched): V_s = w^T Sigma w", sp.Eq(sp.Symbol("V_s"), var_s)))

    # 2. random part g chi a, a = phi(field)
    second_moment = _avg(phi(_x) ** 2, mu, delta0)
    steps.append((
        "Random part g chi a with a = phi(field): Gaussian, independent of the loadings, variance g^2 E[a^2]",
        sp.Eq(sp.Symbol("Var[g chi a]"), g**2 * second_moment),
    ))

    # 3. overlaps by Stein's lemma: kappa_k = E[n_k phi(field)]
    kappa_rhs = []
    for k in range(R):
        i_n = R + k
        c = v.cov_with(i_n, w)
        rhs = mean_sym[i_n] * _avg(phi(_x), mu, delta0) + c * _avg(sp.diff(phi(_x), _x), mu, delta0)
        kappa_rhs.append(sp.expand(rhs))
        steps.append((
            f"Stein's lemma: {kappas[k]} = E[n_{k + 1} phi({field_name})] = E[n] [phi] + Cov(n, {field_name}) [phi']",
            sp.Eq(kappas[k], kappa_rhs[-1]),
        ))

    equations = [sp.Eq(mu, mean_s)]
    unknowns = [mu, delta0]
    if state == "stationary":
        equations.append(sp.Eq(delta0, var_s + g**2 * second_moment))
    else:
        unknowns.append(delta_inf)
        dinf_eq, energy_eq, chaotic_steps, curvature = _chaotic_pair(var_s)
        steps.extend(chaotic_steps)
        equations.extend([dinf_eq, energy_eq])
    unknowns.extend(kappas)
    equations.extend(sp.Eq(k, rhs) for k, rhs in zip(kappas, kappa_rhs))

    observables = _observables(state, regime, var_s)
    if state == "chaotic":
        # admissible chaotic solutions sit at a maximum of the potential (THEORY.md section 8)
        observables["potential_curvature"] = curvature
    return MeanFieldEquations(
        model=net,
        state=state,
        regime=regime,
        unknowns=tuple(unknowns),
        equations=tuple(equations),
        parameter_values={g: None, **values},
        observables=observables,
        steps=tuple(steps),
        phi_function=phi,
        primitive_function=Phi,
        variable=_x,
    )


def _chaotic_pair(var_s):
    """Delta_inf equation and energy conservation from the Newton equation of Delta(tau)."""
    steps = []
    D = sp.Symbol("Delta", nonnegative=True)
    phi_l = sp.Lambda(_x, phi(_x))
    Phi_l = sp.Lambda(_x, Phi(_x))
    c_phi = GaussCov(phi_l, phi_l, mu, delta0, D)
    # (1 - d^2/dtau^2) Delta = g^2 C_phi(Delta) + V_s  =>  Delta'' = force(Delta)
    force = D - g**2 * c_phi - var_s
    steps.append((
        "Autocovariance: (1 - d^2/dtau^2) Delta = g^2 [[phi]]_2(mu, Delta_0, Delta) + V_s, i.e. Delta'' = F(Delta)",
        sp.Eq(sp.Symbol("F(Delta)"), force),
    ))
    potential = -(D**2) / 2 + g**2 * GaussCov(Phi_l, Phi_l, mu, delta0, D) + var_s * D
    check = sp.diff(potential, D).subs(sp.Derivative(Phi(_x), _x), phi(_x)).doit() + force
    if sp.simplify(check) != 0:  # pragma: no cover - guards the fdiff identities
        raise AssertionError(f"potential derivation failed: V' + F = {check}")
    steps.append(("Newtonian potential, V'(Delta) = -F(Delta) (checked with d/dDelta_inf [[Phi]] = [[phi]])",
                  sp.Eq(sp.Symbol("V(Delta)"), potential)))
    dinf_eq = sp.Eq(delta_inf, (g**2 * c_phi + var_s).subs(D, delta_inf))
    steps.append(("Delta(tau) -> Delta_inf at rest: V'(Delta_inf) = 0", dinf_eq))
    v0, vinf = potential.subs(D, delta0), potential.subs(D, delta_inf)
    # energy conservation V(Delta_0) = V(Delta_inf), arranged as in SCS 1988 / M&O
    lhs = (delta0**2 - delta_inf**2) / 2
    Phi_cov = GaussCov(Phi_l, Phi_l, mu, delta0, delta_inf)
    rhs = g**2 * (Phi_cov.subs(delta_inf, delta0) - Phi_cov) + var_s * (delta0 - delta_inf)
    if sp.expand(lhs + v0 - vinf - rhs) != 0:  # pragma: no cover - the grouped form must be V(D0) = V(Dinf)
        raise AssertionError("energy conservation: grouped form differs from V(Delta_0) = V(Delta_inf)")
    energy_eq = sp.Eq(lhs, rhs)
    steps.append(("Energy conservation with Delta'(0) = 0 and Delta'(inf) = 0: V(Delta_0) = V(Delta_inf)",
                  energy_eq))
    curvature = sp.diff(potential, D, 2).subs(sp.Derivative(Phi(_x), _x), phi(_x)).doit().subs(D, delta_inf)
    steps.append(("Admissibility: Delta_inf is a maximum of the potential, V''(Delta_inf) < 0",
                  sp.Eq(sp.Symbol("V''(Delta_inf)"), curvature)))
    return dinf_eq, energy_eq, steps, curvature


def _rate_change_of_variables():
    """dr/dt = -r + phi(J r + I) with y = J r + I gives dy/dt = -y + J phi(y) + I."""
    J, r, I, y, x = sp.symbols("J r I y x", commutative=False)
    phi_nc = sp.Function("phi", commutative=False)
    drdt = -r + phi_nc(J * r + I)
    fixed = sp.Eq(r, phi_nc(J * r + I))
    # stationary: y = J r + I and r = phi(y)  =>  y = J phi(y) + I
    y_fixed = sp.expand(J * fixed.rhs + I).subs(J * r + I, y)
    # dynamics: dy/dt = J dr/dt  (constant input)
    dydt = sp.expand(J * drdt.subs(J * r + I, y)).subs(J * r, y - I)
    current_rhs = (-x + J * phi_nc(x) + I).subs(x, y)
    if sp.expand(dydt - current_rhs) != 0:  # pragma: no cover - algebra guard
        raise AssertionError("rate -> current change of variables failed")
    return [
        ("Rate model: dr/dt = -r + phi(J r + I); define y = J r + I", sp.Eq(sp.Symbol("dr/dt"), drdt)),
        ("Fixed point r = phi(y), so y = J phi(y) + I: the current model's fixed point in y",
         sp.Eq(y, y_fixed)),
        ("Constant input: dy/dt = J dr/dt = -y + J phi(y) + I, exactly the current model in y",
         sp.Eq(sp.Symbol("dy/dt"), dydt)),
    ]


def _observables(state, regime, var_s):
    obs = {
        "mean_activity": _avg(phi(_x), mu, delta0),
        "static_variance": var_s,
    }
    if regime == "rate":
        obs["mean_rate"] = _avg(phi(_x), mu, delta0)
        if state == "stationary":
            # r_i = phi(y_i): population second moment of the stationary rates
            obs["rate_second_moment"] = _avg(phi(_x) ** 2, mu, delta0)
        else:
            # (1 - d^2/dtau^2) C_r = C_phi and (1 - d^2/dtau^2)(Delta - V_s) = g^2 C_phi
            obs["C_r0"] = (delta0 - var_s) / g**2
            obs["C_rinf"] = (delta_inf - var_s) / g**2
    if state == "chaotic":
        obs["temporal_variance"] = delta0 - delta_inf
    return obs
