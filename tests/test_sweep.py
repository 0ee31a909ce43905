"""Randomized sweep (issue 3 acceptance): every solution :func:`dmftools.solve` reports over
thousands of random unit-rank parameter points is re-checked independently.

Each hypothesis example draws a transfer function, whether the input statistics (MI, SI)
are present, and arrays of ``POINTS`` parameter points, solved by ONE vectorised
``dmf.solve`` call. For every reported solution: no NaN in any field, ``success``, the
residual re-evaluated with the mpmath backend (an independent quadrature at ``DPS`` digits,
:func:`dmftools.numeric.quadrature.mp_gauss_average`) below a tolerance relative to the size
of the equation's terms, ``0 <= delta_inf < delta0`` for chaotic solutions, and the
stability label consistent with the bulk radius (re-evaluated with mpmath) and the outliers.

Deterministic: ``derandomize=True`` and no example database. The default run covers
``EXAMPLES * POINTS`` points; ``pytest -m slow`` runs the long sweep.
"""

from __future__ import annotations

import functools
import re

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dmftools as dmf
from dmftools.numeric.compile import compile_expressions
from dmftools.solvers._solve import REPORT_TOL
from dmftools.symbolic.averages import GaussAvg, GaussCov
from dmftools.symbolic.stability import derive_stability

#: Working precision of the re-evaluation: far beyond the tolerances below, and the
#: mpmath rules are accurate to ~10^-(DPS-2) (docs/accuracy.md).
DPS = 20
#: Parameter points per example (one dmf.solve call each).
POINTS = 48
#: Examples of the default run (21 x 48 = 1008 points) and of the slow one (9600 points).
EXAMPLES, SLOW_EXAMPLES = 21, 200
# |F_mp| <= 10x the solver's promise REPORT_TOL (1 + max|u|) + 10x numpy's quadrature error (< 1e-13 of each term)
RESIDUAL_ATOL, TERMS_RTOL = 10 * REPORT_TOL, 1e-12
# Bulk radius g sqrt([phi'^2]): numpy quadrature ~1e-13 relative, 100x headroom.
RADIUS_RTOL = 1e-11

#: Branch slots of a unit-rank model: negative / central / positive, and central_k,
#: negative_k, positive_k (k >= 2) at points with more solutions than those three.
BRANCHES = re.compile(r"(negative|positive|central)(_[2-9]|_[1-9][0-9]+)?")


# -- strategies ----------------------------------------------------------------------

def _column(lo, hi):
    elements = st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return hnp.arrays(np.float64, POINTS, elements=elements, fill=st.nothing())


@st.composite
def sweeps(draw):
    """(phi, with_input, g, parameters): arrays of POINTS random RankOne parameter points."""
    phi = draw(st.sampled_from(["tanh", "erf"]))
    with_input = draw(st.booleans())
    params = {"Mm": draw(_column(-3.0, 3.0)), "Mn": draw(_column(-3.0, 3.0)),
              "Sm": draw(_column(0.0, 2.0)), "Sn": draw(_column(0.0, 2.0))}
    if with_input:
        params.update(MI=draw(_column(-1.0, 1.0)), SI=draw(_column(0.0, 1.0)))
    return phi, with_input, draw(_column(0.0, 4.0)), params


# -- the independent check -----------------------------------------------------------

@functools.lru_cache(maxsize=None)
def network(phi, with_input):
    # non-zero placeholders: every drawn statistic is a free parameter of the equations
    extra = {"MI": 0.5, "SI": 0.5} if with_input else {}
    return dmf.RankOne(Mm=1.0, Mn=1.0, Sm=1.0, Sn=1.0, phi=phi, **extra)


def _split(expr):
    """Additive terms of ``expr``, products distributed over sums (averages kept whole)."""
    if expr.is_Add:
        return [t for a in expr.args for t in _split(a)]
    if expr.is_Mul:
        for i, factor in enumerate(expr.args):
            if factor.is_Add:
                rest = sp.Mul(*(expr.args[:i] + expr.args[i + 1:]))
                return [t for a in factor.args for t in _split(rest * a)]
    return [expr]


@functools.lru_cache(maxsize=None)
def checker(phi, with_input, state):
    """mpmath functions of (unknowns, parameters): residuals, their terms, bulk radius.

    The terms are those of the equations as the solver uses them: for the chaotic energy
    equation, divided by ``delta0 - delta_inf`` (``MeanFieldEquations.solver_residuals``),
    its polynomial part cancelled exactly and each average term divided."""
    eqs = dmf.derive(network(phi, with_input), state=state)
    args = tuple(eqs.unknowns) + tuple(eqs.parameters.values())
    groups = []
    for i, residual in enumerate(eqs.residuals):
        terms = _split(eqs.concrete(residual))
        if state == "chaotic" and i == 2:
            gap = eqs.unknowns[1] - eqs.unknowns[2]
            averages = [t for t in terms if t.has(GaussAvg, GaussCov)]
            poly = sp.cancel(sp.Add(*(t for t in terms if not t.has(GaussAvg, GaussCov))) / gap)
            assert sp.fraction(poly)[1] == 1, poly  # the energy equation vanishes at delta_inf = delta0
            terms = _split(sp.expand(poly)) + [t / gap for t in averages]
        groups.append((len(terms), tuple(terms)))
    flat = tuple(t for _, terms in groups for t in terms)
    term_fn = compile_expressions(flat, args, backend="mpmath")
    radius_fn = None
    if state == "stationary":
        radius_fn = compile_expressions((eqs.concrete(derive_stability(eqs).radius),), args, backend="mpmath")
    return eqs.compile(backend="mpmath", dps=DPS, jacobian=False), [n for n, _ in groups], term_fn, radius_fn


def _finite(x):
    if x is None:
        return True
    if isinstance(x, tuple):
        return all(_finite(v) for v in x)
    return bool(np.isfinite(complex(x)))


def check_solution(s, phi, with_input):
    """Problems with one reported solution (empty list: none)."""
    problems = []
    chaotic = s.state == "chaotic"
    fields = {k: getattr(s, k) for k in ("mu", "delta0", "delta_inf", "kappa", "radius", "outliers", "residual")}
    fields.update(s.parameters)
    bad = [k for k, v in fields.items() if not _finite(v)]
    if bad:
        return [f"non-finite field(s) {bad}"]
    if s.success is not True:
        problems.append(f"success={s.success!r}")
    if not BRANCHES.fullmatch(s.branch):
        problems.append(f"branch {s.branch!r}")
    u = [s.mu, s.delta0] + ([s.delta_inf] if chaotic else []) + [s.kappa]
    size = 1 + max(abs(v) for v in u)
    if not s.residual <= REPORT_TOL * size:
        problems.append(f"reported residual {s.residual:.3g} above REPORT_TOL * (1 + max|u|)")

    cf, counts, term_fn, radius_fn = checker(phi, with_input, s.state)
    residuals = cf.residuals(*u, **s.parameters)
    with mpmath.workdps(DPS):
        values = [mpmath.mpf(v) for v in u] + [mpmath.mpf(s.parameters[k]) for k in cf.parameters]
        terms = term_fn(*values)
        if chaotic:
            residuals[2] = residuals[2] / (values[1] - values[2])
        start = 0
        for i, (n, F) in enumerate(zip(counts, residuals)):
            group = terms[start : start + n]
            start += n
            scale = sum(abs(t) for t in group)
            assert abs(sum(group) - F) <= mpmath.mpf(10) ** (4 - DPS) * (1 + scale), (i, F, group)
            if not abs(F) <= RESIDUAL_ATOL * size + TERMS_RTOL * scale:
                problems.append(f"mpmath residual {i} = {mpmath.nstr(F, 3)} (terms {mpmath.nstr(scale, 3)})")

    if chaotic:
        if not 0 <= s.delta_inf < s.delta0:
            problems.append(f"delta_inf={s.delta_inf!r} outside [0, delta0={s.delta0!r})")
        if s.label != "chaotic" or s.stable is not None or s.radius is not None or s.outliers:
            problems.append(f"chaotic solution labelled {s.label!r} stable={s.stable} radius={s.radius}")
        return problems

    if s.delta0 < 0:
        problems.append(f"delta0={s.delta0!r} < 0")
    with mpmath.workdps(DPS):
        radius = radius_fn(*values)[0]
    if not abs(s.radius - radius) <= RADIUS_RTOL * (1 + abs(radius)):
        problems.append(f"radius {s.radius!r} but mpmath gives {mpmath.nstr(radius, 15)}")
    if any(abs(z) < s.radius for z in s.outliers):
        problems.append(f"outliers {s.outliers} inside the bulk disc of radius {s.radius}")
    stable = s.radius < 1 and all(z.real < 1 for z in s.outliers)
    if s.stable is not stable or s.label != ("stationary-stable" if stable else "stationary-unstable"):
        problems.append(f"label {s.label!r} stable={s.stable} but radius={s.radius} outliers={s.outliers}")
    if abs(radius - 1) > RADIUS_RTOL and (radius < 1) != (s.radius < 1):
        problems.append(f"bulk radius {s.radius!r} on the other side of 1 than mpmath's {mpmath.nstr(radius, 15)}")
    return problems


def run_sweep(case):
    phi, with_input, g, params = case
    res = dmf.solve(network(phi, with_input), g=g, **params)
    failures = []
    for s in res:
        for problem in check_solution(s, phi, with_input):
            failures.append(f"{problem}: phi={phi} {s}; parameters={s.parameters}")
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(failures[:20])
    return len(g)


# -- tests -----------------------------------------------------------------------------

# no shrinking: a failure lists every failing solution with its parameters, and shrinking
# arrays of points (each step a dmf.solve call) takes many minutes
_SETTINGS = dict(derandomize=True, database=None, deadline=None, phases=(Phase.explicit, Phase.generate),
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=EXAMPLES, **_SETTINGS)
@given(sweeps())
def test_sweep(case):
    run_sweep(case)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, **_SETTINGS)
@given(sweeps())
def test_sweep_long(case):
    run_sweep(case)


def test_terms_cover_the_solver_residuals():
    """The split into terms reproduces the solver residuals (chaotic: divided energy equation)."""
    cf, counts, term_fn, _ = checker("tanh", True, "chaotic")
    u, par = [0.3, 5.0, 2.0, 0.4], dict(g=2.5, Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0, MI=0.2, SI=0.3)
    with mpmath.workdps(DPS):
        terms = term_fn(*[mpmath.mpf(v) for v in u + [par[k] for k in cf.parameters]])
    numeric = dmf.derive(network("tanh", True), state="chaotic").compile()
    F, _ = numeric.system(numeric.ordered(u, par))
    sums = np.cumsum([0] + counts)
    np.testing.assert_allclose([float(sum(terms[a:b])) for a, b in zip(sums[:-1], sums[1:])], F, rtol=0, atol=1e-11)
