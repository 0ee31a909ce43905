"""The compiled kernels (dmftools.numeric._jit) against the numpy lattice rules and mpmath.

The kernels implement the rules of dmftools.numeric.lattice point by point; only the order
of the floating-point sums differs. Each path (single averages; nested: the shared lattice
with strides 1 and > 1, Mehler's series, the Gauss-Hermite product rules) is compared with
the numpy rules, with 30-digit mpmath references and with the closed form of the nested erf
average; then whole compiled equations (residuals and Jacobian) with and without kernels.
"""

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from test_lattice import _MP_INTEGRANDS, PAIRS, POINTS, _np_integrands, references  # noqa: F401 (fixture)

import dmftools as dmf
from dmftools.model import BUILTIN_PHI, X, logcosh
from dmftools.numeric import _jit, lattice
from dmftools.numeric.compile import compile_expressions, np_logcosh
from dmftools.numeric.quadrature import mp_gauss_average

pytestmark = pytest.mark.skipif(not _jit.available(), reason="numba not installed (pip install 'dmftools[jit]')")

TANH = [sp.Lambda(X, e) for e in (sp.tanh(X), logcosh(X), 1 - sp.tanh(X) ** 2, -2 * sp.tanh(X) * (1 - sp.tanh(X) ** 2))]

# the round-off of a reordered sum of at most ~1e4 terms of size <= ~10 (log cosh at
# Delta = 100), relative to max(1, |value|): the two implementations' rounding differs
ROUNDOFF = 1e-13


@pytest.fixture(scope="module")
def tanh_kernels():
    return _jit.kernels(TANH)


def _close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))


def test_generated_integrands_are_the_lambdified_ones(tanh_kernels):
    x = -30.0 + np.arange(301) * 0.2
    out = np.empty((4, x.size))
    tanh_kernels.values_at(0.0, 1.0, x, out)  # at x exactly (0 + 1 x)
    # the same formulas; tanh and log1p are the kernels' own (within 1-4 ulp of the C library's)
    np.testing.assert_allclose(out, np.array(_np_integrands(x)), rtol=1e-15, atol=1e-15)
    # the loops over nodes compute the same values: x = x0 + (k - kc) h and x = base + scale z[k]
    line = np.empty_like(out)
    tanh_kernels.values_line(-30.0, 0.2, 0, line)
    # x0 + k h may be contracted to one fma: x differs by up to an ulp of 30 (3.6e-15), the
    # integrands' slopes are at most 2
    np.testing.assert_allclose(line, out, rtol=1e-15, atol=1e-14)
    at = np.empty_like(out)
    tanh_kernels.values_at(1.0, 2.0, (x - 1.0) / 2.0, at)  # base and scale applied
    np.testing.assert_allclose(at, out, rtol=1e-15, atol=1e-15)


def test_nested_kernels_equal_numpy_rules_on_every_path(tanh_kernels, references):
    mu, d0, di = (np.array([p[k] for p in POINTS]) for k in range(3))
    fast = lattice.nested_averages(None, 4, PAIRS, mu, d0, di, kernels=tanh_kernels)
    slow = lattice.nested_averages(_np_integrands, 4, PAIRS, mu, d0, di)
    for (a, b), f, s in zip(PAIRS, fast, slow):
        assert _close(f, s) <= ROUNDOFF, (a, b, f - s)
        for i, (m, d, e, label) in enumerate(POINTS):
            ref = float(references[m, d, e, a, b])
            # as in test_lattice: trapezoid error ~1e-15 plus the rounding of the sums
            assert abs(f[i] - ref) <= 1e-13 * max(1.0, abs(ref)), (label, a, b, f[i], ref)


def test_single_kernels_equal_numpy_rules_and_mpmath(tanh_kernels):
    mus = np.array([0.0, 1.0, 5.0, -0.3])
    deltas = np.array([0.0, 1e-6, 0.01, 1.0, 100.0, 400.0])
    mu, delta = (a.ravel() for a in np.meshgrid(mus, deltas, indexing="ij"))
    fast = lattice.single_averages(None, 4, mu, delta, kernels=tanh_kernels)
    slow = lattice.single_averages(_np_integrands, 4, mu, delta)
    assert _close(fast, slow) <= ROUNDOFF
    with mpmath.workdps(30):
        for k, f in enumerate(_MP_INTEGRANDS):
            for i in range(mu.size):
                ref = float(mp_gauss_average(f, mu[i], delta[i]))
                assert abs(fast[k][i] - ref) <= 1e-13 * max(1.0, abs(ref)), (k, mu[i], delta[i])  # as above


@pytest.mark.parametrize("name", sorted(BUILTIN_PHI))
def test_every_builtin_transfer_function(name):
    """phi, Phi, phi' and phi'' of each built-in transfer function: kernels = numpy rules."""
    tf = BUILTIN_PHI[name]
    exprs = [tf.expr, tf.primitive, sp.diff(tf.expr, X), sp.diff(tf.expr, X, 2)]
    lams = [sp.Lambda(X, e) for e in exprs]
    kernels = _jit.kernels(lams)
    assert kernels is not None
    fns = [sp.lambdify(X, e, modules=[{"logcosh": np_logcosh}, "numpy", "scipy"]) for e in exprs]

    def fn(x):
        return [np.broadcast_to(f(x), x.shape) for f in fns]

    rng = np.random.default_rng(7)
    mu = rng.uniform(-3, 3, 40)
    d0 = rng.uniform(0.0, 30.0, 40)
    di = d0 * np.concatenate([rng.uniform(0, 1, 30), [0.0, 1.0, 1e-3, 0.999, 0.02, 0.5, 0.9, 0.1, 0.0, 1.0]])
    d0[:3] = [0.0, 0.004, 0.011]
    di[:3] = [0.0, 0.002, 0.0099]
    pairs = [(0, 0), (1, 1), (0, 1), (2, 0), (3, 0), (2, 2)]
    assert _close(lattice.nested_averages(None, 4, pairs, mu, d0, di, kernels=kernels),
                  lattice.nested_averages(fn, 4, pairs, mu, d0, di)) <= ROUNDOFF
    assert _close(lattice.single_averages(None, 4, mu, d0, kernels=kernels),
                  lattice.single_averages(fn, 4, mu, d0)) <= ROUNDOFF


@pytest.mark.parametrize("a", [0.5, 1.0])
def test_nested_erf_closed_form(a):
    """[[erf(a x)]](0, D0, Dinf) = (2/pi) arcsin(2 a^2 Dinf / (1 + 2 a^2 D0)) on every path."""
    kernels = _jit.kernels([sp.Lambda(X, sp.erf(a * X))])
    d0 = np.array([0.004, 0.011, 0.5, 2.0, 10.0, 40.0, 100.0])
    frac = np.array([0.0, 1e-4, 0.01, 0.3, 0.9, 0.999, 1.0])
    d0, dinf = (x.ravel() for x in np.meshgrid(d0, frac, indexing="ij"))
    dinf = dinf * d0
    [val] = lattice.nested_averages(None, 1, [(0, 0)], 0.0, d0, dinf, kernels=kernels)
    ref = 2 / np.pi * np.arcsin(2 * a**2 * dinf / (1 + 2 * a**2 * d0))
    np.testing.assert_allclose(val, ref, rtol=0, atol=1e-14)  # trapezoid error ~1e-15 for |values| <= 1


@settings(max_examples=60, deadline=None)
@given(mu=st.floats(-4, 4), d0=st.floats(0.0, 80), frac=st.floats(0.0, 1.0))
def test_nested_kernels_match_numpy_anywhere(tanh_kernels, mu, d0, frac):
    di = d0 * frac
    fast = lattice.nested_averages(None, 4, PAIRS, mu, d0, di, kernels=tanh_kernels)
    slow = lattice.nested_averages(_np_integrands, 4, PAIRS, mu, d0, di)
    assert _close(fast, slow) <= ROUNDOFF


def _system_at_random_columns(net, state, regime, seed, B=40):
    """The solvers' residuals + Jacobian expressions and random columns (unknowns, then
    parameters), with the relative weight of each column's round-off: the chaotic energy
    equation is divided by the gap delta0 - delta_inf, its derivatives by its square."""
    eqs = dmf.derive(net, state=state, regime=regime)
    args = tuple(eqs.unknowns) + tuple(eqs.parameters.values())
    exprs = tuple(eqs.concrete(r) for r in eqs.solver_residuals) + tuple(eqs.concrete(j) for j in eqs.solver_jacobian())
    rng = np.random.default_rng(seed)
    d0 = rng.uniform(0.01, 20.0, B)
    unknowns = [rng.uniform(-1, 1, B), d0]
    if state == "chaotic":
        unknowns.append(d0 * rng.uniform(0.0, 0.99, B))
    unknowns.append(rng.uniform(-2, 2, B))
    params = [rng.uniform(0.1, 4, B)] + [np.full(B, float(v)) for v in list(eqs.parameter_values.values())[1:]]
    gap = np.minimum(1.0, unknowns[1] - unknowns[2]) if state == "chaotic" else np.ones(B)
    return args, exprs, unknowns + params, gap**2


def _worst(a, b, weight):
    # round-off of reordered sums: ~1e-14 of terms of size ~10, amplified by 1 / weight
    return np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)) * weight)


@pytest.mark.parametrize("state", ["stationary", "chaotic"])
def test_compiled_equations_with_and_without_kernels(state):
    """Residuals and Jacobian as lambdified expressions calling the kernels (as for every
    compiled function but the solvers' system) against the numpy rules."""
    args, exprs, columns, weight = _system_at_random_columns(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0),
                                                             state, "current", 3)
    fast = compile_expressions(exprs, args, spacing=lattice.SPACING, jit=True)
    slow = compile_expressions(exprs, args, spacing=lattice.SPACING, jit=False)
    a = np.stack(np.broadcast_arrays(*fast(*columns)))
    b = np.stack(np.broadcast_arrays(*slow(*columns)))
    assert _worst(a, b, weight) <= 1e-12


def test_integrands_it_cannot_print_fall_back_to_numpy():
    with pytest.raises(ValueError, match="integrands"):
        _jit.module_source([sp.Lambda(X, sp.besselj(0, X))])
    assert _jit.kernels([sp.Lambda(X, sp.besselj(0, X))]) is None
    with pytest.raises(ValueError, match="lams"):
        _jit.module_source([])


def test_disabled_by_the_environment(monkeypatch):
    monkeypatch.setenv(_jit.ENV, "0")
    assert not _jit.available()
    assert _jit.kernels(TANH) is None


def test_module_is_written_once_to_the_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("DMFTOOLS_CACHE_DIR", str(tmp_path))
    lams = [sp.Lambda(X, sp.tanh(X) + X / 7919)]  # an integrand no other test uses
    first = _jit.kernels(lams)
    files = list((tmp_path / "jit").glob("dmf_*.py"))
    assert len(files) == 1 and files[0].read_text() == _jit.module_source(lams)
    assert _jit.kernels(lams) is first
    [v] = lattice.single_averages(None, 1, 0.5, 2.0, kernels=first)
    [ref] = lattice.single_averages(lambda x: np.tanh(x) + x / 7919, 1, 0.5, 2.0)
    assert abs(v - ref) <= ROUNDOFF


@pytest.mark.parametrize("args, match", [
    ((np.nan, 1.0, 0.5), "mu: must be finite"),
    ((0.0, -1.0, 0.0), "delta0: variances must be >= 0"),
    ((0.0, 1.0, -0.5), "delta_inf: variances must be >= 0"),
    ((0.0, 1.0, 2.0), "delta0 - delta_inf: variances must be >= 0"),
    ((0.0, 1e20, 1.0), "delta0: a variance of 1e\\+20 needs"),
])
def test_invalid_nested_input_gets_the_numpy_rules_errors(tanh_kernels, args, match):
    with pytest.raises(ValueError, match=match):
        lattice.nested_averages(_np_integrands, 4, PAIRS, *args, kernels=tanh_kernels)


@pytest.mark.parametrize("args, match", [
    ((np.inf, 1.0), "mu: must be finite"),
    ((0.0, np.nan), "delta: must be finite"),
    ((0.0, -1.0), "delta: variances must be >= 0"),
    ((0.0, 1e20), "delta: a variance of 1e\\+20 needs"),
])
def test_invalid_single_input_gets_the_numpy_rules_errors(tanh_kernels, args, match):
    with pytest.raises(ValueError, match=match):
        lattice.single_averages(_np_integrands, 4, *args, kernels=tanh_kernels)


@pytest.mark.parametrize("net, regime", [
    (dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0), "current"),
    (dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0, MI=0.4, phi="erf"), "current"),
    (dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0, MI=0.3), "rate"),
])
@pytest.mark.parametrize("state", ["stationary", "chaotic"])
def test_fused_system_equals_the_lambdified_one(net, regime, state):
    """The solvers' residuals and Jacobian, compiled around the kernels (fused=True), against
    the lambdified expressions calling the numpy rules, at random columns."""
    args, exprs, columns, weight = _system_at_random_columns(net, state, regime, 11)
    fused = compile_expressions(exprs, args, spacing=lattice.SPACING, fused=True)
    slow = compile_expressions(exprs, args, spacing=lattice.SPACING, jit=False)
    a = fused(*columns)
    assert isinstance(a, np.ndarray) and a.shape == (len(exprs), weight.size)
    assert _worst(a, np.stack(np.broadcast_arrays(*slow(*columns))), weight) <= 1e-12
    # scalars broadcast like the lambdified function
    np.testing.assert_allclose(fused(*[c[0] for c in columns]), a[:, 0], rtol=0, atol=1e-15)


def test_fused_system_returns_inf_not_an_exception_where_numpy_does():
    """A zero gap delta0 = delta_inf divides by zero in the chaotic energy equation: inf or
    NaN, as numpy gives (the solvers treat non-finite residuals as failed steps)."""
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    eqs = dmf.derive(net, state="chaotic")
    args = tuple(eqs.unknowns) + tuple(eqs.parameters.values())
    exprs = tuple(eqs.concrete(r) for r in eqs.solver_residuals)
    fused = compile_expressions(exprs, args, spacing=lattice.SPACING, fused=True)
    out = fused(0.1, 2.0, 2.0, 0.3, 2.0, 1.1, 2.0, 1.0, 1.0)
    assert not np.all(np.isfinite(out[2]))


def test_linear_solver_equals_lapack_and_flags_singular_columns():
    """The Newton step's batched solve against numpy.linalg.solve (LAPACK), column by column."""
    solve = _jit.linear_solver()
    rng = np.random.default_rng(2)
    for n in (1, 3, 4, 6):
        J = rng.normal(size=(n, n, 300))
        F = rng.normal(size=(n, 300))
        J[..., 5] = 0.0  # singular
        if n > 1:
            J[0, :, 7] = J[1, :, 7]  # two equal rows: an exactly zero pivot
        out = np.empty((n, 300))
        solve(J, F, out)
        assert np.all(np.isnan(out[:, 5])) and (n == 1 or np.all(np.isnan(out[:, 7])))
        for b in range(300):
            if b in (5, 7):
                continue
            ref = -np.linalg.solve(J[..., b], F[:, b])
            # backward-stable elimination: error <= ~eps * cond * |x|
            tol = 1e-14 * np.linalg.cond(J[..., b]) * max(1.0, np.max(np.abs(ref)))
            assert np.max(np.abs(out[:, b] - ref)) <= tol, (n, b)


def test_odd_integrands_average_to_exactly_zero_at_zero_mean(tanh_kernels):
    """Nodes +-z are summed in pairs, so [tanh](0, Delta) and [tanh''](0, Delta) are exactly 0
    (the kappa -> -kappa symmetry of the equations is then exact, not up to round-off)."""
    delta = np.array([0.0, 1e-3, 1.0, 7.3, 100.0])
    values = lattice.single_averages(None, 4, np.zeros(delta.size), delta, kernels=tanh_kernels)
    assert np.all(values[0] == 0.0) and np.all(values[3] == 0.0)


def _ulps(values, exact):
    """Errors in units in the last place of the exact values."""
    return np.abs(values - exact) / np.spacing(np.abs(exact))


def _scalar(fn, x):
    return np.array([fn(float(v)) for v in x])


def test_elementary_functions_against_40_digit_mpmath(tanh_kernels):
    # the kernels' own exp, tanh and log1p (arithmetic only, so that loops over nodes
    # vectorise) against mpmath; the C library's are within 1-2 ulp on the same points
    rng = np.random.default_rng(5)
    k = tanh_kernels
    with mpmath.workdps(40):
        x = np.concatenate([rng.normal(0, 3, 600), rng.normal(0, 0.3, 300), rng.uniform(-30, 30, 200),
                            rng.uniform(0.6, 0.65, 100) * rng.choice([-1, 1], 100), 10.0 ** rng.uniform(-12, -2, 100),
                            [0.0, 0.625, -0.625, 19.0, 40.0]])
        exact = np.array([float(mpmath.tanh(mpmath.mpf(v))) for v in x])
        assert np.max(_ulps(_scalar(k.tanh_v, x), exact)) <= 2  # measured 1
        y = -np.concatenate([rng.uniform(0, 1, 300), rng.uniform(0, 708, 500), 10.0 ** rng.uniform(-15, 0, 100), [0.0]])
        exact = np.array([float(mpmath.exp(mpmath.mpf(v))) for v in y])
        assert np.max(_ulps(_scalar(k.exp_neg, y), exact)) <= 2  # measured 1
        t = np.concatenate([rng.uniform(0, 1, 500), 10.0 ** rng.uniform(-16, 0, 300), [0.0, 1.0]])
        exact = np.array([float(mpmath.log1p(mpmath.mpf(v))) for v in t])
        assert np.max(_ulps(_scalar(k.log1p_unit, t)[t > 0], exact[t > 0])) <= 4  # measured 3
        assert k.log1p_unit(0.0) == 0.0
        # log cosh, alone and from tanh: ~1e-16 absolute like |x| + log1p(e^-2|x|) - log 2 itself
        exact = np.array([float(mpmath.log(mpmath.cosh(mpmath.mpf(v)))) for v in x])
        tol = 8 * np.finfo(float).eps * np.maximum(1.0, np.abs(x))
        assert np.all(np.abs(_scalar(k.logcosh, x) - exact) <= tol)
        assert np.all(np.abs(np.array([k.logcosh_t(v, k.tanh_v(v)) for v in x]) - exact) <= tol)


def test_elementary_functions_propagate_nan_and_take_limits(tanh_kernels):
    k = tanh_kernels
    assert np.isnan(k.tanh_v(np.nan)) and np.isnan(k.exp_neg(np.nan)) and np.isnan(k.log1p_unit(np.nan))
    assert k.tanh_v(np.inf) == 1.0 and k.tanh_v(-np.inf) == -1.0 and k.tanh_v(25.0) == 1.0
    assert k.exp_neg(-np.inf) == 0.0 and k.exp_neg(-709.0) == 0.0 and k.exp_neg(0.0) == 1.0
    assert k.tanh_v(0.0) == 0.0 and k.tanh_v(-0.0) == 0.0  # (the sign of zero is not kept)


def test_exp_of_a_non_positive_argument_uses_the_kernels_exp():
    # erf's primitive has exp(-a^2 x^2): the kernels' exp (valid for arguments <= 0);
    # exp of an argument of either sign stays the C library's
    src = _jit.module_source([sp.Lambda(X, BUILTIN_PHI["erf"].primitive), sp.Lambda(X, sp.exp(X) / (1 + sp.exp(X)))])
    body = src[src.index("def values_line("):]
    assert "exp_neg(" in body and "math.exp(x)" in body


_NEWTON_CASES = [
    (dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0), "current"),
    (dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0, MI=0.4, phi="erf"), "current"),
    (dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0, MI=0.3), "rate"),
]


@pytest.mark.parametrize("net, regime", _NEWTON_CASES)
@pytest.mark.parametrize("state", ["stationary", "chaotic"])
def test_compiled_newton_is_the_batched_iteration(net, regime, state):
    """Newton's method compiled around the fused system, column by column, against the
    batched numpy-driven iteration from the solvers' starts at random g: the same columns
    converge, in the same number of iterations, to the same roots."""
    from dmftools.solvers import _newton, _solve

    cf = _solve.compiled(net, state, regime)
    kernel = cf.newton_kernel()
    assert kernel is not None
    rng = np.random.default_rng(11)
    g = np.sort(rng.uniform(0.05, 4.0, 12))
    _, flat = _solve.prepare_parameters(cf, g, {})
    u0, par, _ = _solve._starts(cf, state, flat, g.size)
    u0[:, :3] *= 1e5  # a few hopeless starts (huge variances: infinite residuals, backtracking)
    chaotic = state == "chaotic"
    batched = _newton.newton(_solve._system(cf), u0, par, chaotic=chaotic, maxiter=40)
    compiled = _newton.newton_compiled(kernel, u0, par, chaotic=chaotic, maxiter=40,
                                       variance_max=_solve.VARIANCE_MAX)
    for field in ("converged", "iterations", "singular"):
        np.testing.assert_array_equal(getattr(compiled, field), getattr(batched, field), err_msg=field)
    ok = batched.converged
    assert np.count_nonzero(ok) >= g.size  # at least a root per point: the comparison is not empty
    # the same arithmetic in the same order except the statistics (numpy against scalar
    # code: equal to an ulp), so iterates agree to round-off amplified by a few steps
    np.testing.assert_allclose(compiled.u[:, ok], batched.u[:, ok], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(compiled.residual[ok], batched.residual[ok], rtol=0, atol=1e-12)


def test_compiled_newton_hands_invalid_kernel_input_back_to_the_numpy_path():
    # a non-finite mean is invalid input for the kernels: the compiled iteration stops and
    # returns None, so the solver re-runs the numpy-driven one, which says what is wrong
    from dmftools.solvers import _newton, _solve

    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    cf = _solve.compiled(net, "stationary")
    assert cf.unknowns[:2] == ("mu", "delta0")
    u0 = np.array([[0.5, np.nan], [1.0, 1.0], [0.3, 0.3]])  # columns (mu, delta0, kappa)
    _, flat = _solve.prepare_parameters(cf, np.full(2, 2.0), {})
    par = [flat[k] for k in cf.equations.parameters]
    assert _newton.newton_compiled(cf.newton_kernel(), u0, par, chaotic=False) is None
    with pytest.raises(ValueError, match="must be finite"):
        _newton.newton(_solve._system(cf), u0, par, chaotic=False)


def test_compiled_duplicate_filter_equals_the_numpy_one():
    """The solvers' greedy duplicate test, compiled and in numpy, on rows with exact,
    near (inside and outside the tolerance) and NaN entries, in random order."""
    from dmftools.solvers import _solve

    rng = np.random.default_rng(3)
    base = rng.normal(0, 3, (50, 4, 4))
    tol = _solve._DUPLICATE_TOL
    scale = 1 + np.max(np.abs(base[..., :-1]), axis=2, keepdims=True)
    near = base + rng.choice([0.0, 0.3, 3.0], base.shape) * tol * scale * rng.choice([-1, 1], base.shape)
    dense = np.concatenate([base, near, base[:, :2]], axis=1)[:, rng.permutation(10)]
    dense[rng.random(dense.shape[:2]) < 0.1, 1] = np.nan
    valid = rng.random(dense.shape[:2]) < 0.9
    fast = _solve._keep_unique(dense, valid)
    slow = _solve._keep_unique(dense, valid, compiled=False)
    np.testing.assert_array_equal(fast, slow)
    assert 0 < np.count_nonzero(slow) < np.count_nonzero(valid)  # duplicates were found and dropped


@pytest.mark.parametrize("state", ["stationary", "chaotic"])
def test_compiled_newton_batch_steps_like_the_numpy_one(state):
    """NewtonBatch with the compiled step against the numpy-driven one, with columns joining
    a running iteration (as in the solvers' flood of roots across a grid): the same columns
    finish at every step, in the same order, with the same iterates."""
    from dmftools.solvers import _newton, _solve

    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    cf = _solve.compiled(net, state)
    g = np.linspace(0.3, 3.8, 10)
    _, flat = _solve.prepare_parameters(cf, g, {})
    u0, par, _ = _solve._starts(cf, state, flat, g.size)
    waves = np.array_split(np.random.default_rng(2).permutation(u0.shape[1]), 3)
    kw = dict(chaotic=state == "chaotic", maxiter=20, variance_max=_solve.VARIANCE_MAX)
    batches = [_newton.NewtonBatch(_solve._system(cf), u0.shape[0], len(par), compiled=c, **kw)
               for c in (None, cf.newton_kernel())]
    steps = 0
    while True:
        if steps < len(waves):
            for b in batches:
                b.add(u0[:, waves[steps]], [p[waves[steps]] for p in par])
        if not any(b.running for b in batches):
            break
        slow, fast = (b.step() for b in batches)
        np.testing.assert_array_equal(fast, slow)
        steps += 1
    assert steps > len(waves)
    a, b = (batch.result() for batch in batches)
    for field in ("converged", "iterations", "singular"):
        np.testing.assert_array_equal(getattr(b, field), getattr(a, field), err_msg=field)
    np.testing.assert_allclose(b.u, a.u, rtol=1e-12, atol=1e-14)  # as for newton_compiled


def test_compiled_newton_batch_raises_the_numpy_rules_error_on_invalid_input():
    from dmftools.solvers import _newton, _solve

    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    cf = _solve.compiled(net, "stationary")
    _, flat = _solve.prepare_parameters(cf, np.full(2, 2.0), {})
    par = [flat[k] for k in cf.equations.parameters]
    batch = _newton.NewtonBatch(_solve._system(cf), 3, len(par), chaotic=False, compiled=cf.newton_kernel())
    batch.add(np.array([[0.5, np.nan], [1.0, 1.0], [0.3, 0.3]]), par)  # (mu, delta0, kappa); a NaN mean
    with pytest.raises(ValueError, match="mu: must be finite"):
        batch.step()


def _sweep_values(result):
    return {(state, key): np.asarray(v) for state in ("stationary", "chaotic")
            for key, v in result[state].values.items()}


def test_states_on_two_threads_give_the_serial_results(monkeypatch):
    """With the compiled Newton iteration solve runs its two states on two threads; the
    states are independent, so every value equals the one-thread run's, bit for bit."""
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    g = np.linspace(0.05, 4.0, 40)
    monkeypatch.setenv("DMFTOOLS_THREADS", "1")
    serial = dmf.solve(net, g=g)
    monkeypatch.setenv("DMFTOOLS_THREADS", "2")
    threaded = dmf.solve(net, g=g)
    a, b = _sweep_values(serial), _sweep_values(threaded)
    assert a.keys() == b.keys() and len(a) > 4
    for key in a:
        np.testing.assert_array_equal(b[key], a[key], err_msg=str(key))


def test_threads_setting_is_checked(monkeypatch):
    monkeypatch.setenv("DMFTOOLS_THREADS", "0")
    with pytest.raises(ValueError, match="DMFTOOLS_THREADS: must be an integer >= 1"):
        dmf.solve(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0), g=[1.0, 2.0])


def _solve_in_child(queue):
    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    queue.put(len(dmf.solve(net, g=2.0)))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_solves_after_the_parent_used_threads():
    # the parent's thread pool does not survive fork; the child must start its own, not
    # wait forever on the copy (multiprocessing's default on Linux, e.g. ProcessPoolExecutor)
    import multiprocessing

    net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    expected = len(dmf.solve(net, g=2.0))  # the pool exists now
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_solve_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung, "the forked child hung"
    assert child.exitcode == 0 and queue.get(timeout=5) == expected
