r"""Compiled kernels (numba) for the adaptive lattice rules, generated per group of integrands.

:mod:`dmftools.numeric.lattice` evaluates the integrands of a group of averages on one
lattice per point with numpy: every integrand is an array expression over all nodes of
all points, and every sum an ``einsum``. Most of that time goes to temporaries and to
small arrays. The kernels here do the same sums point by point in compiled loops: the
integrands are evaluated in one loop over a point's nodes (SymPy's common subexpressions
shared), the inner Gaussian convolutions are dot products, and no array is padded to the
widest point of a chunk. The compiler vectorises both loops (several nodes per SIMD
instruction); for the loop over nodes, ``tanh``, ``log cosh`` and ``exp`` of a
non-positive argument (the built-in transfer functions and their primitives) are
implemented here in arithmetic only (:data:`_ELEMENTARY`), as calls into the C math
library would keep it scalar. They are within 1-4 units in the last place of the exact
values (40-digit mpmath, tested), like the C library's own.

For the solvers' residuals and Jacobian (``CompiledEquations.system``) the expressions
around the averages are compiled as well (:func:`algebra`): one evaluation is then one
kernel call per group of averages and one call for the rest, where numpy made some forty
small array operations. The solvers' Newton iteration runs in compiled code too
(:func:`newton_solver`: the statistics, kernels and algebra of one column in one
function, and Newton's method on it column by column, also step by step for the
solvers' flood of roots across a grid); its iterates are those of the numpy-driven
iteration in :mod:`dmftools.solvers._newton`, which ``tests/test_jit.py`` checks. So is
the solvers' duplicate test (:func:`unique_filter`) and their small linear solves
(:func:`linear_solver`).

The rules are exactly those of :mod:`~dmftools.numeric.lattice` (same nodes, weights and
truncations, per point); only the order of the floating-point sums differs
(``fastmath`` with re-association and contraction only, so NaN and inf still propagate),
so results agree with the numpy rules to round-off. ``tests/test_jit.py`` holds the two
equal.

Numba is optional (``pip install "dmftools[jit]"``). For each group of integrands the
source of a small module (the integrands printed by SymPy, then the kernels) is written
to a cache directory and imported from there, so numba's disk cache applies: a group is
compiled once per machine, and later processes (e.g. the workers of a parallel phase
diagram) load the machine code. Without numba, with ``DMFTOOLS_JIT=0`` in the
environment, or for integrands the printer cannot express, the numpy rules are used.

The cache directory is ``$DMFTOOLS_CACHE_DIR``, else ``$XDG_CACHE_HOME/dmftools`` (``~/.cache/dmftools``),
else the system's temporary directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ..model import logcosh
from . import lattice
from .quadrature import HALF_WIDTH

__all__ = ["available", "kernels", "algebra", "linear_solver", "newton_solver", "unique_filter", "cache_dir"]

#: Environment variable: "0" disables the compiled kernels.
ENV = "DMFTOOLS_JIT"

_lock = threading.Lock()
_modules: dict = {}
_numba = None


def available() -> bool:
    """Whether compiled kernels are used: numba imports and ``DMFTOOLS_JIT`` is not ``"0"``.

    Examples
    --------
    >>> from dmftools.numeric import _jit
    >>> isinstance(_jit.available(), bool)
    True
    """
    global _numba
    if os.environ.get(ENV, "1").strip() == "0":
        return False
    if _numba is None:
        try:
            import numba  # noqa: F401

            _numba = True
        except ImportError:
            _numba = False
    return _numba


def cache_dir() -> Path:
    """Directory of the generated modules (and numba's cache of them); created if missing.

    Examples
    --------
    >>> from dmftools.numeric import _jit
    >>> _jit.cache_dir().is_dir()
    True
    """
    candidates = []
    if os.environ.get("DMFTOOLS_CACHE_DIR"):
        candidates.append(Path(os.environ["DMFTOOLS_CACHE_DIR"]))
    xdg = os.environ.get("XDG_CACHE_HOME")
    candidates.append(Path(xdg) / "dmftools" if xdg else Path.home() / ".cache" / "dmftools")
    candidates.append(Path(tempfile.gettempdir()) / f"dmftools-{os.getuid() if hasattr(os, 'getuid') else 'user'}")
    for base in candidates:
        path = base / "jit"
        try:
            path.mkdir(parents=True, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
        except OSError:
            continue
    raise OSError("no writable cache directory for the compiled kernels; set DMFTOOLS_CACHE_DIR")


class _LogcoshT(sp.Function):
    """``log cosh(x)`` written with ``t = tanh(x)``: ``|x| - log1p(|t|)`` (one logarithm
    where ``tanh`` is computed anyway for ``phi``; the same value to ~1e-16 absolute)."""

    nargs = 2


class _Printer(PythonCodePrinter):
    """Scalar code for numba: ``math`` functions; ``tanh``, ``logcosh`` and ``exp`` of a
    non-positive argument from the generated module (:data:`_ELEMENTARY`: arithmetic only,
    so the compiler vectorises the loops over lattice nodes that call them)."""

    _default_settings = dict(PythonCodePrinter._default_settings, elementary=False)

    def _print_logcosh(self, expr):
        if not self._settings["elementary"]:
            raise ValueError("logcosh is defined in the kernel modules only")
        return "logcosh(%s)" % self._print(expr.args[0])

    def _print__LogcoshT(self, expr):
        return "logcosh_t(%s, %s)" % (self._print(expr.args[0]), self._print(expr.args[1]))

    def _print_tanh(self, expr):
        if not self._settings["elementary"]:
            return super()._print_tanh(expr)
        return "tanh_v(%s)" % self._print(expr.args[0])

    def _print_exp(self, expr):
        if self._settings["elementary"] and expr.args[0].is_nonpositive:  # e.g. exp(-a**2*x**2) in erf's primitive
            return "exp_neg(%s)" % self._print(expr.args[0])
        return "math.exp(%s)" % self._print(expr.args[0])


def _scalar_lines(exprs, target: str, indent: str, elementary: bool = False) -> list[str]:
    """Assignments computing ``exprs`` as scalar ``math`` code, common subexpressions
    (``c0, c1, ...``) first, expression ``i`` into ``target.format(i)``. ``elementary``:
    ``tanh``, ``logcosh`` and ``exp`` of a non-positive argument from the kernel module's
    own functions (:data:`_ELEMENTARY`), else from ``math`` (``logcosh`` then from the
    module too). Raises ValueError (with the printer's reason) for what cannot be printed so."""
    printer = _Printer({"fully_qualified_modules": True, "allow_unknown_functions": False, "strict": True,
                        "elementary": elementary})
    try:
        replacements, reduced = sp.cse([sp.sympify(e) for e in exprs], symbols=sp.numbered_symbols("c"))
        lines = [f"{indent}{sym} = {printer.doprint(e)}" for sym, e in replacements]
        lines += [f"{indent}{target.format(i)} = {printer.doprint(e)}" for i, e in enumerate(reduced)]
    except (TypeError, ValueError, NotImplementedError, sp.PrecisionExhausted) as exc:
        raise ValueError(str(exc)) from None
    imports = sorted(m for m in printer.module_imports if m != "math")
    if imports:
        raise ValueError(f"needs modules {imports}")
    return lines


def _integrand_source(lams) -> str:
    """The integrands as scalar code, common subexpressions computed once, in two functions
    that set ``out[i, k] = f_i(x)`` for every column ``k`` of ``out``: ``values_line(x0, h,
    kc, out)`` at ``x = x0 + (k - kc) h`` and ``values_at(base, scale, z, out)`` at ``x =
    base + scale z[k]``. The integrands are written inside the loop over nodes (not called
    per node), so the compiler vectorises it."""
    x = sp.Dummy("x", real=True)
    bodies = [sp.sympify(lam(x)).xreplace({x: sp.Symbol("x")}) for lam in lams]
    if any(b.has(sp.tanh) for b in bodies):  # share tanh between phi and its primitive (tanh, sigmoid)
        bodies = [b.replace(logcosh, lambda a: _LogcoshT(a, sp.tanh(a))) for b in bodies]
    decorator = "@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model='numpy')"
    line = [decorator, "def values_line(x0, h, kc, out):", "    for k in range(out.shape[1]):",
            "        x = x0 + (k - kc) * h"] + _scalar_lines(bodies, "out[{}, k]", "        ", True)
    at = [decorator, "def values_at(base, scale, z, out):", "    for k in range(out.shape[1]):",
          "        x = base + scale * z[k]"] + _scalar_lines(bodies, "out[{}, k]", "        ", True)
    return "\n\n\n".join("\n".join(f) for f in (line, at)) + "\n"


#: Elementary functions in arithmetic only (no calls into the C math library, which the
#: compiler cannot vectorise): a loop over lattice nodes that evaluates ``tanh`` then runs
#: several nodes per instruction (SIMD). Accuracy against 40-digit mpmath, measured in
#: ``tests/test_jit.py``: ``exp_neg`` and ``tanh_v`` within 1-2 units in the last place,
#: ``log1p_unit`` within 4 (the C library's are within 1-2).
_ELEMENTARY = """
LN2_HI = 6.93147180369123816490e-01  # log(2) split as in fdlibm: k * LN2_HI is exact for |k| < 2**20
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e+00
# tanh on |x| < 0.625: x + x s P(s) / Q(s), s = x^2 (the rational approximation of Cephes'
# tanh.c, S. L. Moshier; relative error ~1e-16)
TANH_P = (-9.64399179425052238628e-01, -9.92877231001918586564e+01, -1.61468768441708447952e+03)
TANH_Q = (1.12811678491632931402e+02, 2.23548839060100448583e+03, 4.84406305325125486048e+03)


@numba.extending.intrinsic
def _from_bits(typingctx, bits):
    \"\"\"The float64 with the IEEE-754 bit pattern of the int64 ``bits``.\"\"\"
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(numba.types.float64))
    return numba.types.float64(numba.types.int64), codegen


@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def exp_neg(y):
    \"\"\"exp(y) for y <= 0 (NaN for NaN; 0 below -708, where exp(y) is subnormal).\"\"\"
    yc = -708.0 if y < -708.0 else y
    kf = math.floor(yc * INV_LN2 + 0.5)
    kf = kf if kf == kf else 0.0  # NaN: any finite k (the polynomial carries the NaN)
    r = (yc - kf * LN2_HI) - kf * LN2_LO  # |r| <= log(2) / 2
    # Taylor polynomial of exp(r) to degree 13: truncation below 1e-17 relative
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    e = p * _from_bits((numba.int64(kf) + 1023) << 52)  # p * 2**k
    return 0.0 if y < -708.0 else e


@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def tanh_v(x):
    \"\"\"tanh(x): rational approximation for |x| < 0.625, else (1 - e) / (1 + e), e = exp(-2|x|).\"\"\"
    a = abs(x)
    s = x * x
    small = x + x * s * (((TANH_P[0] * s + TANH_P[1]) * s + TANH_P[2])
                         / (((s + TANH_Q[0]) * s + TANH_Q[1]) * s + TANH_Q[2]))
    e = exp_neg(-2.0 * a)
    big = math.copysign((1.0 - e) / (1.0 + e), x)
    return small if a < 0.625 else big


@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def log1p_unit(t):
    \"\"\"log(1 + t) for 0 <= t <= 1: 2 atanh(u), u = t / (2 + t) <= 1/3, by its series.\"\"\"
    u = t / (2.0 + t)
    z = u * u
    p = 1.0 / 37.0  # terms to u^37: truncation below 1e-18 relative
    for k in range(17, -1, -1):
        p = p * z + 1.0 / (2 * k + 1)
    return 2.0 * u * p

"""

_PRELUDE = '''\
# Generated by dmftools.numeric._jit: the integrands below, then the lattice kernels.
import math

import numba
import numba.extending
import numpy as np

FLAGS = {{"reassoc", "contract"}}
N_OUT = {n_out}
HALF_WIDTH = {half_width!r}
Z_SPACING = {z_spacing!r}
OUTER_Z = {outer_z!r}
MAX_STRIDE = {max_stride!r}
THIN_FRACTION = {thin_fraction!r}
MEHLER_RHO = {mehler_rho!r}
MAX_NODES = {max_nodes!r}
LOG2 = math.log(2.0)
''' + _ELEMENTARY + '''

@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def logcosh(x):
    a = abs(x)
    return a + log1p_unit(exp_neg(-2.0 * a)) - LOG2


@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def logcosh_t(x, t):
    # log cosh x = |x| - log2 + log1p(exp(-2|x|)) and 1 + exp(-2|x|) = 2 / (1 + |tanh x|)
    return abs(x) - log1p_unit(abs(t))


'''

_KERNELS = '''

@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def _trapezoid(std, spacing):
    \"\"\"Step in z and half-count of the trapezoid rule of lattice._trapezoid_rows.\"\"\"
    hz = Z_SPACING
    if std > 0.0:
        hz = min(Z_SPACING, spacing / std)
    return hz, int(math.ceil(HALF_WIDTH / hz))


@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def _gaussian(K, hz):
    """Normalised weights exp(-(k hz)^2 / 2), k = -K .. K: computed for k >= 0, mirrored."""
    w = np.empty(2 * K + 1)
    half = 0.0
    for k in range(1, K + 1):  # vectorised: no call into the C library, one store per k
        z = k * hz
        e = exp_neg(-0.5 * z * z)
        w[K + k] = e
        half += e
    total = 1.0 + 2.0 * half
    w[K] = 1.0 / total
    for k in range(K + 1, 2 * K + 1):
        w[k] /= total
    for k in range(1, K + 1):
        w[K - k] = w[K + k]
    return w


@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def _invalid(mu, variance, spacing):
    \"\"\"Non-finite input, a negative variance, or more nodes than MAX_NODES.\"\"\"
    if not (math.isfinite(mu) and math.isfinite(variance)) or variance < 0.0:
        return True
    return 2.0 * HALF_WIDTH * math.sqrt(variance) / spacing + 1.0 > MAX_NODES


@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def single(mu, delta, spacing, out):
    \"\"\"out[i, b] = [f_i](mu[b], delta[b]); returns 1 (nothing computed) on invalid input.\"\"\"
    for b in range(mu.size):
        if _invalid(mu[b], delta[b], spacing):
            return 1
    for b in range(mu.size):
        std = math.sqrt(delta[b])
        hz, K = _trapezoid(std, spacing)
        w = _gaussian(K, hz)
        vals = np.empty((N_OUT, 2 * K + 1))
        values_line(mu[b], std * hz, K, vals)
        # nodes +-z summed in pairs: an odd integrand's average at mu = 0 is exactly 0
        for i in range(N_OUT):
            acc = w[K] * vals[i, K]
            for k in range(1, K + 1):
                acc += w[K + k] * (vals[i, K + k] + vals[i, K - k])
            out[i, b] = acc
    return 0


@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def _lattice(mu, s, r, spacing, pairs, used, inner, acc):
    \"\"\"Inner and outer rules on one lattice (lattice._nested_lattice), into acc.\"\"\"
    step = min(spacing, Z_SPACING * min(s, r))
    hz = OUTER_Z / math.sqrt(1.0 + 2.0 * (r / s) ** 2)
    m = max(1, min(MAX_STRIDE, int(math.floor(r * hz / step))))
    outer_step = m * step
    J = int(math.ceil(HALF_WIDTH * r / outer_step))
    W = int(math.ceil(HALF_WIDTH * s / step))
    centre = J * m + W
    vals = np.empty((N_OUT, 2 * centre + 1))
    values_line(mu, step, centre, vals)
    nk = 2 * W + 1
    kernel = _gaussian(W, step / s)
    outer = _gaussian(J, outer_step / r)
    # the inner rule at every outer node: G[a, j] = sum_o kernel[o] f_a(node j m + o)
    nj = 2 * J + 1
    G = np.empty((N_OUT, nj))
    for a in used:
        row = vals[a]
        j = 0
        while j + 3 < nj:  # four outer nodes per pass: independent sums share the kernel's loads
            b = j * m
            w1 = row[b: b + nk]
            w2 = row[b + m: b + m + nk]
            w3 = row[b + 2 * m: b + 2 * m + nk]
            w4 = row[b + 3 * m: b + 3 * m + nk]
            c1 = 0.0
            c2 = 0.0
            c3 = 0.0
            c4 = 0.0
            for o in range(nk):
                k = kernel[o]
                c1 += k * w1[o]
                c2 += k * w2[o]
                c3 += k * w3[o]
                c4 += k * w4[o]
            G[a, j] = c1
            G[a, j + 1] = c2
            G[a, j + 2] = c3
            G[a, j + 3] = c4
            j += 4
        while j < nj:
            w1 = row[j * m: j * m + nk]
            c1 = 0.0
            for o in range(nk):
                c1 += kernel[o] * w1[o]
            G[a, j] = c1
            j += 1
    acc[:] = 0.0
    for j in range(nj):
        wj = outer[j]
        for p in range(pairs.shape[0]):
            acc[p] += wj * G[pairs[p, 0], j] * G[pairs[p, 1], j]


@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def _mehler(mu, std, rho, spacing, pairs, used, c, acc):
    \"\"\"Mehler's series, coefficients from the trapezoid rule (lattice._nested_mehler).\"\"\"
    hz, K = _trapezoid(std, spacing)
    n = 2 * K + 1
    z = np.empty(n)
    w = _gaussian(K, hz)
    vals = np.empty((N_OUT, n))
    for k in range(n):
        z[k] = (k - K) * hz
    values_line(mu, std * hz, K, vals)
    terms = 1
    if rho > 0.0:
        terms = int(math.ceil(math.log(1e-17 * (1.0 - rho)) / math.log(rho)))
    h_prev = np.zeros(n)
    h = np.ones(n)
    acc[:] = 0.0
    factor = 1.0
    for t in range(terms):
        for a in used:
            total = 0.0
            for k in range(n):
                total += w[k] * vals[a, k] * h[k]
            c[a] = total
        for p in range(pairs.shape[0]):
            acc[p] += factor * c[pairs[p, 0]] * c[pairs[p, 1]]
        rt, rt1 = math.sqrt(t), math.sqrt(t + 1.0)
        for k in range(n):
            nxt = (z[k] * h[k] - rt * h_prev[k]) / rt1
            h_prev[k] = h[k]
            h[k] = nxt
        factor *= rho


@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def _rule(std, thin, spacing, zg, wg):
    \"\"\"Gauss-Hermite nodes for a thin dimension, else the trapezoid rule (normalised).\"\"\"
    if std < thin:
        return zg, wg
    hz, K = _trapezoid(std, spacing)
    z = np.empty(2 * K + 1)
    for k in range(2 * K + 1):
        z[k] = (k - K) * hz
    return z, _gaussian(K, hz)


@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def _product(mu, s, r, spacing, thin, zg, wg, pairs, used, inner, acc):
    \"\"\"Product rule, Gauss-Hermite in a thin dimension (lattice._nested_product).\"\"\"
    zo, wo = _rule(r, thin, spacing, zg, wg)
    zi, wi = _rule(s, thin, spacing, zg, wg)
    no, ni = zo.size, zi.size
    # every node x = (mu + r zo[o]) + s zi[i] in one vectorised evaluation
    x = np.empty(no * ni)
    for o in range(no):
        base = mu + r * zo[o]
        for i in range(ni):
            x[o * ni + i] = base + s * zi[i]
    vals = np.empty((N_OUT, no * ni))
    values_at(0.0, 1.0, x, vals)
    acc[:] = 0.0
    for o in range(no):
        for a in used:
            row = vals[a, o * ni: o * ni + ni]
            c = 0.0
            for i in range(ni):
                c += wi[i] * row[i]
            inner[a] = c
        for p in range(pairs.shape[0]):
            acc[p] += wo[o] * inner[pairs[p, 0]] * inner[pairs[p, 1]]


@numba.njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def nested(mu, delta0, delta_inf, spacing, zg, wg, pairs, used, out):
    \"\"\"out[p, b] = [[f_a, f_b]](mu[b], delta0[b], delta_inf[b]) for pairs[p] = (a, b), each
    point by the rule lattice.nested_averages picks; returns 1 (nothing computed) on invalid
    input.\"\"\"
    for b in range(mu.size):
        if _invalid(mu[b], delta0[b], spacing) or not (math.isfinite(delta_inf[b]) and delta_inf[b] >= 0.0) \\
                or delta0[b] - delta_inf[b] < 0.0:
            return 1
    thin = THIN_FRACTION * spacing
    inner = np.empty(N_OUT)
    acc = np.empty(pairs.shape[0])
    for b in range(mu.size):
        s = math.sqrt(delta0[b] - delta_inf[b])
        r = math.sqrt(delta_inf[b])
        rho = delta_inf[b] / delta0[b] if delta0[b] > 0.0 else 0.0
        if r < thin and rho <= MEHLER_RHO:
            _mehler(mu[b], math.sqrt(delta0[b]), rho, spacing, pairs, used, inner, acc)
        elif s >= thin and r >= thin:
            _lattice(mu[b], s, r, spacing, pairs, used, inner, acc)
        else:
            _product(mu[b], s, r, spacing, thin, zg, wg, pairs, used, inner, acc)
        for p in range(pairs.shape[0]):
            out[p, b] = acc[p]
    return 0
'''


def module_source(lams) -> str:
    """Source of the kernel module for the integrands ``lams`` (SymPy ``Lambda``\\ s of one
    variable). Raises ValueError if an integrand cannot be printed as scalar ``math`` code.

    Examples
    --------
    >>> import sympy as sp
    >>> from dmftools.numeric._jit import module_source
    >>> x = sp.Symbol("x")
    >>> src = module_source([sp.Lambda(x, sp.tanh(x)), sp.Lambda(x, 1 - sp.tanh(x)**2)])
    >>> print([line for line in src.splitlines() if "out[" in line and "= " in line][:2])
    ['        out[0, k] = c0', '        out[1, k] = 1 - c0**2']
    """
    lams = list(lams)
    if not lams:
        raise ValueError("lams: at least one integrand is needed")
    try:
        integrands = _integrand_source(lams)
    except ValueError as exc:
        raise ValueError(f"integrands: cannot be compiled as scalar code ({exc})") from None
    prelude = _PRELUDE.format(n_out=len(lams), half_width=float(HALF_WIDTH), z_spacing=float(lattice.Z_SPACING),
                              outer_z=float(lattice.OUTER_Z), max_stride=int(lattice.MAX_STRIDE),
                              thin_fraction=float(lattice.THIN_FRACTION), mehler_rho=float(lattice.MEHLER_RHO),
                              max_nodes=float(lattice.MAX_NODES))
    return prelude + integrands + _KERNELS


def _load(source: str):
    """Write ``source`` to the cache directory (once) and import it; None if impossible."""
    key = hashlib.sha256(source.encode()).hexdigest()[:20]
    with _lock:
        if key in _modules:
            return _modules[key]
        try:
            path = cache_dir() / f"dmf_{key}.py"
            if not path.exists() or path.read_text() != source:
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(source)
                os.replace(tmp, path)  # atomic: concurrent processes write the same text
            name = f"dmftools_jit_{key}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            # registered under its name: numba's cached machine code refers to it by name
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except OSError:
            module = None
        _modules[key] = module
        return module


def kernels(lams):
    """The compiled kernel module for the integrands ``lams``, or None (numba missing,
    disabled with ``DMFTOOLS_JIT=0``, or integrands it cannot compile).

    The module is generated once per process and group (and cached on disk by numba); its
    functions compile on first call.
    """
    if not available():
        return None
    try:
        source = module_source(lams)
    except ValueError:
        return None
    return _load(source)


_ALGEBRA = '''\
# Generated by dmftools.numeric._jit: expressions of the arguments and of average values.
import math

import numba


@numba.njit(cache=True, nogil=True, fastmath={{"reassoc", "contract"}}, error_model="numpy")
def algebra({params}, out):
    for b in range(out.shape[1]):
{body}
'''


def algebra_source(args, values, exprs) -> str:
    """Source of ``algebra(*args, *values, out)``: ``out[i, b] = exprs[i]`` at column ``b`` of
    the 1-D arrays ``args`` (SymPy symbols) and ``values`` (symbols standing for averages).
    Raises ValueError if an expression cannot be printed as scalar ``math`` code.

    Examples
    --------
    >>> import sympy as sp
    >>> from dmftools.numeric._jit import algebra_source
    >>> x, v = sp.symbols("x v")
    >>> print(algebra_source([x], [v], [x * v, sp.sqrt(x)]).splitlines()[-2:])
    ['        out[0, b] = a0[b]*v0[b]', '        out[1, b] = math.sqrt(a0[b])']
    """
    names = {a: sp.Symbol(f"a{i}[b]") for i, a in enumerate(args)}
    names.update({v: sp.Symbol(f"v{i}[b]") for i, v in enumerate(values)})
    try:
        lines = _scalar_lines([sp.sympify(e).xreplace(names) for e in exprs], "out[{}, b]", "        ")
    except ValueError as exc:
        raise ValueError(f"exprs: cannot be compiled as scalar code ({exc})") from None
    params = ", ".join([f"a{i}" for i in range(len(args))] + [f"v{i}" for i in range(len(values))])
    return _ALGEBRA.format(params=params, body="\n".join(lines) or "        pass")


def algebra(args, values, exprs):
    """The compiled ``algebra`` function of :func:`algebra_source`, or None (numba missing or
    disabled, or expressions it cannot print)."""
    if not available():
        return None
    try:
        source = algebra_source(args, values, exprs)
    except ValueError:
        return None
    module = _load(source)
    return None if module is None else module.algebra


_LINEAR = '''\
# Generated by dmftools.numeric._jit: batched small linear systems.
import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def solve1(A, x):
    """x <- -inv(A) x in place (A is overwritten) by Gaussian elimination with partial
    pivoting (IEEE arithmetic, no fastmath); False and x unchanged past the exactly zero
    pivot of a singular A."""
    n = x.size
    for k in range(n):
        p = k
        big = abs(A[k, k])
        for i in range(k + 1, n):
            if abs(A[i, k]) > big:
                big = abs(A[i, k])
                p = i
        if big == 0.0:
            return False
        if p != k:
            for j in range(n):
                A[k, j], A[p, j] = A[p, j], A[k, j]
            x[k], x[p] = x[p], x[k]
        for i in range(k + 1, n):
            f = A[i, k] / A[k, k]
            for j in range(k + 1, n):
                A[i, j] -= f * A[k, j]
            x[i] -= f * x[k]
    for i in range(n - 1, -1, -1):
        acc = x[i]
        for j in range(i + 1, n):
            acc -= A[i, j] * x[j]
        x[i] = acc / A[i, i]
    for i in range(n):
        x[i] = -x[i]
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def solve(J, F, out):
    """out[:, b] = -inv(J[:, :, b]) F[:, b] (:func:`direction`); NaN where J is singular."""
    n, B = F.shape
    A = np.empty((n, n))
    for b in range(B):
        direction(J[:, :, b], F[:, b], A, out[:, b])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def direction(J, F, A, du):
    """du = -inv(J) F (:func:`solve1`, A is work space), NaN if J is singular."""
    n = F.size
    for i in range(n):
        du[i] = F[i]
        for j in range(n):
            A[i, j] = J[i, j]
    if not solve1(A, du):
        for i in range(n):
            du[i] = math.nan
'''


def linear_solver():
    """Compiled ``solve(J, F, out)``: ``out[:, b] = -inv(J[..., b]) F[:, b]`` for float
    arrays ``J (n, n, B)``, ``F (n, B)``, NaN columns where ``J`` is singular (the Newton
    iteration's batched step); None without numba.

    Examples
    --------
    >>> import numpy as np
    >>> from dmftools.numeric import _jit
    >>> solve = _jit.linear_solver()
    >>> J = np.stack([np.eye(2) * 2, np.zeros((2, 2))], axis=-1)
    >>> out = np.empty((2, 2))
    >>> if solve is not None:
    ...     solve(J, np.ones((2, 2)), out)
    ... else:
    ...     out[:] = [[-0.5, np.nan], [-0.5, np.nan]]
    >>> out.tolist()
    [[-0.5, nan], [-0.5, nan]]
    """
    if not available():
        return None
    module = _load(_LINEAR)
    return None if module is None else module.solve


_UNIQUE = '''\
# Generated by dmftools.numeric._jit: greedy removal of duplicate roots.
import numba


@numba.njit(cache=True, nogil=True, error_model="numpy")
def keep_unique(dense, valid, tol, keep):
    """keep[o, j] = valid[o, j] and dense[o, j] is not within tol * (1 + max |dense[o, i]|)
    (max-norm over all but the last entry) of an earlier kept dense[o, i]; NaN is never close."""
    O, G, m = dense.shape
    for o in range(O):
        for j in range(G):
            keep[o, j] = False
            if not valid[o, j]:
                continue
            dup = False
            for i in range(j):
                if not keep[o, i]:
                    continue
                d = 0.0
                big = 0.0
                nan = False
                for k in range(m - 1):
                    diff = abs(dense[o, i, k] - dense[o, j, k])
                    if diff != diff:
                        nan = True
                    d = max(d, diff)
                    big = max(big, abs(dense[o, i, k]))
                if not nan and d <= tol * (1.0 + big):
                    dup = True
                    break
            keep[o, j] = not dup
'''


def unique_filter():
    """Compiled ``keep_unique(dense, valid, tol, keep)`` (the duplicate test of the solvers'
    deduplication, :func:`dmftools.solvers._solve._deduplicate`), or None without numba."""
    if not available():
        return None
    module = _load(_UNIQUE)
    return None if module is None else module.keep_unique


_SYSTEM = """\
# Generated by dmftools.numeric._jit: solver residuals and Jacobian around the averages'
# kernels, and Newton's method on them column by column.
import math

import numba
import numpy as np

from {algebra} import algebra
from {common} import _apply, _clean, _correction, _direction, _finish, _maxabs, _norm, _project, scratch
{imports}

{constants}


@numba.njit(cache=True, nogil=True, error_model="numpy")
def system(A, out):
    \"\"\"out[:, b] = the expressions at the arguments A[:, b]; 1 (nothing computed) where a
    group's statistics are invalid input for its kernel.\"\"\"
    B = A.shape[1]
{body}
    algebra({algebra_args}, out)
    return 0
"""

_NEWTON_COMMON = '''\
# Generated by dmftools.numeric._jit: the model-independent parts of the compiled Newton
# iteration (compiled once per machine; the per-model modules import them).
import math

import numba
import numpy as np

from {linear} import direction as _direction

BIG = 1.7976931348623157e308  # the largest float: np.nan_to_num's image of inf


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _norm(F):
    \"\"\"max |F|, inf if any entry is not finite.\"\"\"
    m = 0.0
    for i in range(F.size):
        if not math.isfinite(F[i]):
            return math.inf
        m = max(m, abs(F[i]))
    return m


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _maxabs(x):
    \"\"\"np.max(np.abs(x)): NaN if any entry is NaN.\"\"\"
    m = 0.0
    for i in range(x.size):
        if x[i] != x[i]:
            return math.nan
        m = max(m, abs(x[i]))
    return m


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _clean(x, out, nan):
    \"\"\"np.nan_to_num(x, nan=nan) into out.\"\"\"
    for i in range(x.size):
        v = x[i]
        out[i] = nan if v != v else min(max(v, -BIG), BIG)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _correction(du, work):
    _clean(du, work, math.inf)
    return _maxabs(work)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _project(u, chaotic):
    # np.maximum(u[r], 0): NaN stays NaN
    u[1] = u[1] if (u[1] != u[1] or u[1] >= 0.0) else 0.0
    if chaotic:
        u[2] = u[2] if (u[2] != u[2] or u[2] >= 0.0) else 0.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def scratch(n, n_params):
    \"\"\"Work arrays of one column's iteration.\"\"\"
    return (np.empty((n + n_params, 1)), np.empty((n + n * n, 1)), np.empty(n), np.empty((n, n)), np.empty((n, n)),
            np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _apply(u, du, work, chaotic):
    \"\"\"u = project(u + nan_to_num(du)): a root's last correction.\"\"\"
    _clean(du, work, 0.0)
    for i in range(u.size):
        u[i] += work[i]
    _project(u, chaotic)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _finish(c, U, RES, CONV, SING, ftol):
    # singular roots: the residual reached ftol, the steps did not shrink
    if not CONV[c] and math.isfinite(RES[c]) and RES[c] <= ftol * (1.0 + _maxabs(U[:, c])):
        SING[c] = True
        CONV[c] = True
    return 1
'''


_NEWTON = """

@numba.njit(cache=True, nogil=True, error_model="numpy")
def _evaluate(u, p, A, out, F, J, variance_max):
    n = u.size
    if not (u[1] <= variance_max):  # NaN too: outside, an infinite residual
        for i in range(n):
            F[i] = math.inf
            for j in range(n):
                J[i, j] = math.nan
        return 0
    for i in range(n):
        A[i, 0] = u[i]
    for i in range(p.size):
        A[n + i, 0] = p[i]
    if system(A, out) != 0:
        return 1
    for i in range(n):
        F[i] = out[i, 0]
        for j in range(n):
            J[i, j] = out[n + i * n + j, 0]
    return 0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _try(u, alpha, du, project, chaotic, p, A, out, trial, F, J, variance_max):
    \"\"\"trial = u + alpha du (projected if project), F and J there; returns max |F|, or -1
    on invalid kernel input. The iteration's only evaluation site (compiled code stays small).\"\"\"
    for i in range(u.size):
        trial[i] = u[i] + alpha * du[i]
    if project:
        _project(trial, chaotic)
    if _evaluate(trial, p, A, out, F, J, variance_max) != 0:
        return -1.0
    return _norm(F)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _iterate(c, first, U, P, DU, NA, RES, CORR, CONV, ITER, SING, CHECK, SINCE, chaotic, ftol, xtol, maxiter,
             max_backtracks, patience, variance_max, S):
    \"\"\"Column c of dmftools.solvers._newton.NewtonBatch: its first evaluation (first) or
    one iteration. Returns 1 if the column finished (converged or stopped), 0 if it goes
    on, -1 on invalid kernel input (S[9] then holds the point).\"\"\"
    A, out, tF, tJ, M, dun, nxt, work, u, trial = S
    n = u.size
    p = P[:, c]
    du = DU[:, c]
    for i in range(n):
        u[i] = U[i, c]
    bad = False
    alpha = 0.0
    na = math.inf
    settled = True
    if first:  # evaluated where it starts (u + 0 du, not projected)
        CONV[c] = False
        SING[c] = False
        ITER[c] = 0
        for i in range(n):
            dun[i] = 0.0
    else:
        na = NA[c]
        for i in range(n):
            if not math.isfinite(du[i]):
                bad = True
        _clean(du, dun, 0.0)
        alpha = 1.0
        if chaotic:  # keep delta0 - delta_inf > 0 (np.minimum: NaN propagates)
            value = u[1] - u[2]
            change = dun[1] - dun[2]
            if change < 0:
                limit = -0.5 * value / change
                alpha = limit if (limit != limit or limit < 1.0) else 1.0
        if bad:
            alpha = 0.0
        settled = na <= ftol * (1.0 + _maxabs(u))
    halvings = 0
    while True:  # backtracking on max |F|: the step the batched iteration accepts
        tn = _try(u, alpha, dun, not first, chaotic, p, A, out, trial, tF, tJ, variance_max)
        if tn < 0:
            return -1
        if first or not (halvings < max_backtracks and tn > na and alpha > 0 and not settled):
            break
        alpha = alpha * 0.5
        halvings += 1
    _direction(tJ, tF, M, nxt)  # the next correction, at the accepted point
    corr = _correction(nxt, work)
    CORR[c] = corr
    RES[c] = tn
    if first:
        scale = 1.0 + _maxabs(u)
        done = tn <= ftol * scale and corr <= xtol * scale  # a start that is a root already
        stalled = False
        by_correction = done
    else:
        for i in range(n):
            work[i] = trial[i] - u[i]
        step = _maxabs(work)
        scale = 1.0 + _maxabs(trial)
        gap_old = u[1] - u[2] if chaotic else 0.0
        for i in range(n):
            u[i] = trial[i]
        ITER[c] += 1
        done = tn <= ftol * scale and (step <= xtol * scale or corr <= xtol * scale)
        by_correction = done and not (step <= xtol * scale)
        if tn < 0.5 * CHECK[c]:
            CHECK[c] = tn
            SINCE[c] = 0
        else:
            SINCE[c] += 1
        stalled = bad or alpha == 0 or not math.isfinite(tn) or SINCE[c] > patience
        if chaotic:  # collapsing onto a fixed point (delta_inf -> delta0)
            gap_new = u[1] - u[2]
            if gap_new < 1e-4 * (1.0 + u[1]) and gap_new < 0.7 * gap_old and not done:
                stalled = True
    if done:
        CONV[c] = True
        if by_correction:  # recognised by its correction: apply it
            _apply(u, nxt, dun, chaotic)
    for i in range(n):
        U[i, c] = u[i]
    if done or stalled or (not first and ITER[c] >= maxiter):
        return _finish(c, U, RES, CONV, SING, ftol)
    NA[c] = tn
    if first:
        CHECK[c] = math.inf
        SINCE[c] = 0
    for i in range(n):
        du[i] = nxt[i]
    return 0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def step(cols, first, more, U, P, DU, NA, RES, CORR, CONV, ITER, SING, CHECK, SINCE, chaotic, ftol, xtol, maxiter,
         max_backtracks, patience, variance_max, finished, bad):
    \"\"\"dmftools.solvers._newton.NewtonBatch.step for the columns cols (the first
    evaluation where first[k], else one iteration); with more, each column iterates on
    until it finishes (dmftools.solvers._newton.newton). finished[k] says which ended.
    Returns -1 - k if column cols[k] reached invalid kernel input (bad holds the point),
    else 0.\"\"\"
    S = scratch(U.shape[0], P.shape[0])
    r = 0
    for k in range(cols.size):
        c = cols[k]
        f = first[k]
        while True:
            r = _iterate(c, f, U, P, DU, NA, RES, CORR, CONV, ITER, SING, CHECK, SINCE, chaotic, ftol, xtol,
                         maxiter, max_backtracks, patience, variance_max, S)
            f = False
            if r != 0 or not more:
                break
        if r < 0:
            for i in range(bad.size):
                bad[i] = S[9][i]
            return -1 - k
        finished[k] = r == 1
    return 0
"""


def _floats(values) -> str:
    return "np.array([" + ", ".join(repr(float(v)) for v in np.ravel(values)) + "])"


def newton_source(args, groups, slots, algebra_name: str, common_name: str) -> str:
    """Source of a module with ``system(A, out)`` (the fused residuals and Jacobian: each
    group of averages by its kernels, then ``algebra``) and ``step(...)``, Newton's method on
    it column by column (one step of a ``NewtonBatch``, or the whole iteration).

    ``groups``: per group a dict with ``nested`` (bool), ``spacing``, ``kernels`` (module
    name), ``stats`` (SymPy expressions of ``args``: mu and the variance(s)), ``pairs`` and
    ``used`` (nested groups, the kernels' arrays); ``slots``: per average passed to
    ``algebra``, (group index, output row of the group's kernel). Raises ValueError if a
    statistic cannot be printed as scalar code."""
    names = {a: sp.Symbol(f"A[{i}, b]") for i, a in enumerate(args)}
    imports, constants, body = [], [], []
    for g, group in enumerate(groups):
        imports.append(f"import {group['kernels']} as k{g}")
        stats = [sp.sympify(e).xreplace(names) for e in group["stats"]]
        try:
            lines = _scalar_lines(stats, f"s{g}[{{}}, b]", "        ")
        except ValueError as exc:
            raise ValueError(f"groups: statistics cannot be compiled as scalar code ({exc})") from None
        body += [f"    s{g} = np.empty(({len(stats)}, B))", "    for b in range(B):", *lines]
        rows = 1 + max(row for gg, row in slots if gg == g)
        if group["nested"]:
            rows = max(rows, len(group["pairs"]))
            zg, wg = lattice._gauss_hermite(lattice.GH_NODES)
            constants += [f"ZG = {_floats(zg)}", f"WG = {_floats(wg)}",
                          f"PAIRS{g} = np.array({[list(map(int, q)) for q in group['pairs']]}, dtype=np.int64)",
                          f"USED{g} = np.array({[int(i) for i in group['used']]}, dtype=np.int64)"]
            call = f"k{g}.nested(s{g}[0], s{g}[1], s{g}[2], {float(group['spacing'])!r}, ZG, WG, PAIRS{g}, USED{g}, v{g})"
        else:
            rows = max(rows, group["n_out"])
            call = f"k{g}.single(s{g}[0], s{g}[1], {float(group['spacing'])!r}, v{g})"
        body += [f"    v{g} = np.empty(({rows}, B))", f"    if {call} != 0:", "        return 1"]
    algebra_args = ", ".join([f"A[{i}]" for i in range(len(args))] + [f"v{g}[{row}]" for g, row in slots])
    source = _SYSTEM.format(algebra=algebra_name, common=common_name, imports="\n".join(imports),
                            constants="\n".join(dict.fromkeys(constants)), body="\n".join(body),
                            algebra_args=algebra_args)
    return source + _NEWTON


def newton_solver(args, groups, slots, algebra_fn):
    """The compiled module of :func:`newton_source` for a fused system (``step``: one step
    of a ``NewtonBatch`` or the whole iteration), or None (numba missing or
    disabled, or statistics it cannot print). ``algebra_fn``: the system's compiled
    :func:`algebra`."""
    if not available() or algebra_fn is None:
        return None
    linear = _load(_LINEAR)
    common = None if linear is None else _load(_NEWTON_COMMON.format(linear=linear.__name__))
    if common is None:
        return None
    try:
        source = newton_source(args, groups, slots, algebra_fn.py_func.__module__, common.__name__)
    except ValueError:
        return None
    return _load(source)
