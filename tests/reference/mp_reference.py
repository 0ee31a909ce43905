"""Independent high-precision reference for the unit-rank mean-field theory.

Written by hand from the equations of THEORY.md (sections 2-5 and 8); it deliberately does
NOT import dmftools, so that dmftools can be checked against it.  Pure mpmath (plus Python
integers for an exact fixed-point convolution); a private mpmath context works at 40 decimal
digits so that importing this module never changes ``mpmath.mp``.

Model (unit rank, current model, phi = tanh, Phi = log cosh, Phi' = phi)
------------------------------------------------------------------------
Per unit the loadings m, n and the input I are jointly Gaussian with

    Mm = E[m], Mn = E[n], MI = E[I]
    Sm = std(m), Sn = std(n), SI = std(I)          <- SI is a STANDARD DEVIATION
    Smn = Cov(m, n), SmI = Cov(m, I), SnI = Cov(n, I)   <- covariances, not stds

so that (everything at (mu, D0) unless said otherwise; [f] = [f](mu, D0))

    mu     = Mm kappa + MI
    V_s    = Var(kappa m + I) = Sm^2 kappa^2 + 2 kappa SmI + SI^2
    kappa  = Mn [phi] + Cov(n, kappa m + I) [phi'] = Mn [phi] + (Smn kappa + SnI) [phi']

stationary:  D0 = g^2 [phi^2] + V_s
chaotic:     Dinf = g^2 [[phi, phi]]_2(mu, D0, Dinf) + V_s
             (D0 + Dinf)/2 = g^2 ([Phi^2] - [[Phi, Phi]]_2)/(D0 - Dinf) + V_s
             (the energy equation of THEORY section 4 divided by D0 - Dinf, section 8)

Overlap (structure strength) m^T n / N = Mm Mn + Smn.

Gaussian averages
-----------------
[f](mu, D) = E f(mu + sqrt(D) z) is computed with the trapezoid rule in x-space,
x_j = mu + j h, truncated at T standard deviations.  f(x) N(x; mu, D) is analytic in the
strip |Im x| < pi/2 (poles / branch points of tanh, sech^k, log cosh at +-i pi/2), and on the
line Im x = d the Gaussian grows by exp(d^2/(2D)), so the discretisation error is bounded by
~ M(d) exp(-2 pi d / h + d^2 / (2D)) for any d < pi/2 (M(d) ~ a few thousand at d = pi/2-0.15
for sech^4).  ``_step`` picks the largest h that makes this < exp(-(dps+18) ln 10), and
T = sqrt(2 (dps+18) ln 10) + 1 so that the Gaussian tail is equally negligible.  Hence
the error is below 1e-(dps+10) (verified against mp.quad and the erf closed form, see
generate.py; observed agreement >= 38 digits at dps = 40).

[[f, h]]_2(mu, D0, Dinf) = E_z A_f(z) A_h(z),  A_f(z) = [f](mu + sqrt(Dinf) z, D0 - Dinf):
f is evaluated ONCE on a fine lattice x_i = mu + i h; the inner Gaussian (variance
D0 - Dinf) is a discrete convolution on every K_in-th lattice point and the outer Gaussian
(variance Dinf) is a trapezoid sum on every K_out-th lattice point, with h = min of the two
steps and the larger step an integer multiple of h.  The convolution is done in exact
fixed-point integer arithmetic (scale 2^(prec+40)), which is ~30x faster than mpf
arithmetic in pure Python.  When one variance is much smaller than the other (so that a
shared lattice would need more points than separate ones) each outer node gets its own
inner lattice instead (cost ~ (#outer nodes) x (#inner nodes), bounded as either variance
-> 0).  Limits: Dinf = 0 gives [f][h]; D0 - Dinf = 0 gives [f h] exactly.
"""
from __future__ import annotations

import math
from operator import mul

import mpmath
from mpmath import libmp

WORK_DPS = 40
REPORT_DIGITS = 30

ctx = mpmath.MPContext()
ctx.dps = WORK_DPS

__all__ = [
    "ctx", "Params", "V_s", "gauss", "gauss_tanh", "nested2", "nested2_tanh",
    "quad_gauss", "quad_nested2", "stationary_residual", "stationary_jacobian",
    "solve_stationary", "stationary_stability", "chaotic_residual", "chaotic_jacobian",
    "solve_chaotic", "chaotic_admissibility", "homogeneous_chaotic", "solve_gC", "solve_gB",
    "hom_struct_boundary", "fmt",
]


def fmt(x, digits: int = REPORT_DIGITS) -> str:
    """Decimal string with `digits` significant digits (exact zero -> '0.0')."""
    x = ctx.mpf(x)
    if x == 0:
        return "0.0"
    return ctx.nstr(x, digits, strip_zeros=False, min_fixed=-5, max_fixed=6)


# ---------------------------------------------------------------------------------------
# quadrature settings
# ---------------------------------------------------------------------------------------

def _budget():
    """(L, T): log of the target error and the truncation in standard deviations."""
    L = (ctx.dps + 18) * math.log(10.0)
    T = math.sqrt(2.0 * L) + 1.0
    return L, T


_DMAX = math.pi / 2 - 0.15  # distance of the contour from the real line, < pi/2


def _step(D) -> float:
    """Largest trapezoid spacing with M exp(-2 pi d/h + d^2/(2D)) < exp(-L) (see module doc)."""
    L, _ = _budget()
    D = float(D)
    d = min(_DMAX, math.sqrt(2.0 * D * L))
    return 2.0 * math.pi * d / (L + d * d / (2.0 * D))


# ---------------------------------------------------------------------------------------
# the tanh family on a list of points
# ---------------------------------------------------------------------------------------

_TANH_NAMES = ("phi", "dphi", "d2phi", "d3phi", "d4phi", "Phi")


def _tanh_family(xs, names=_TANH_NAMES):
    """phi = tanh and its derivatives, and Phi = log cosh, at the points xs (mpf list).
    Only the functions in `names` are computed."""
    names = set(names)
    out = {k: [] for k in names}
    ln2 = ctx.ln2
    need_s = bool(names - {"phi", "Phi"})
    for x in xs:
        ax = abs(x)
        e = ctx.exp(-2 * ax)
        t = (1 - e) / (1 + e)
        if x < 0:
            t = -t
        if "phi" in names:
            out["phi"].append(t)
        if need_s:
            s = 4 * e / (1 + e) ** 2          # sech^2 = 1 - t^2 without cancellation
            if "dphi" in names:
                out["dphi"].append(s)
            if "d2phi" in names:
                out["d2phi"].append(-2 * t * s)
            if "d3phi" in names:
                out["d3phi"].append(-2 * s * (1 - 3 * t * t))
            if "d4phi" in names:
                out["d4phi"].append(8 * t * s * (2 - 3 * t * t))
        if "Phi" in names:
            out["Phi"].append(ax + ctx.log1p(e) - ln2)
    return out


def _gauss_weights(h, D, J):
    """h N(j h; 0, D) for j = -J..J (Gaussian recurrence with 20 guard bits)."""
    with ctx.extraprec(20):
        q = ctx.exp(-h * h / (2 * D))
        q2 = q * q
        w, r, half = [h / ctx.sqrt(2 * ctx.pi * D)], q, []
        for _ in range(J):
            w.append(w[-1] * r)
            r *= q2
    half = [+v for v in w]
    return half[:0:-1] + half


def _callable_family(funcs):
    """Family built from a dict name -> callable(mpf) -> mpf."""
    def fam(xs, names=tuple(funcs)):
        return {k: [funcs[k](x) for x in xs] for k in names}
    return fam


# ---------------------------------------------------------------------------------------
# single averages
# ---------------------------------------------------------------------------------------

def _gauss_products(fam, products, mu, D):
    """[prod_k f_k](mu, D) for each tuple of family names in `products`."""
    mu = ctx.mpf(mu)
    D = ctx.mpf(D)
    if D < 0:
        raise ValueError("negative variance")
    needed = sorted({k for prod in products for k in prod})
    if D == 0:
        vals = fam([mu], needed)
        return [ctx.fprod(vals[k][0] for k in prod) for prod in products]
    _, T = _budget()
    h = ctx.mpf(_step(D))
    J = int(math.ceil(T * math.sqrt(float(D)) / float(h)))
    xs = [mu + j * h for j in range(-J, J + 1)]
    w = _gauss_weights(h, D, J)
    vals = fam(xs, needed)
    res = []
    for prod in products:
        if len(prod) == 1:
            col = vals[prod[0]]
        else:
            col = [ctx.fprod(c) for c in zip(*(vals[k] for k in prod))]
        res.append(ctx.fdot(w, col))
    return res


def gauss(f, mu, D):
    """[f](mu, D) = integral Dz f(mu + sqrt(D) z) for a callable f analytic in |Im x| < pi/2."""
    return _gauss_products(_callable_family({"f": f}), [("f",)], mu, D)[0]


def gauss_tanh(products, mu, D):
    """Averages of products of tanh-family functions, e.g. [('phi','phi'), ('dphi',)]."""
    return _gauss_products(_tanh_family, [tuple(p) for p in products], mu, D)


# ---------------------------------------------------------------------------------------
# nested averages
# ---------------------------------------------------------------------------------------

def _nested_pairs(fam, pairs, mu, D0, Dinf):
    """[[f, h]]_2(mu, D0, Dinf) for each (f, h) pair of family names."""
    mu, D0, Dinf = ctx.mpf(mu), ctx.mpf(D0), ctx.mpf(Dinf)
    Dt = D0 - Dinf
    if Dinf < 0 or Dt < 0:
        raise ValueError("need 0 <= Dinf <= D0 (got D0=%s, Dinf=%s)" % (D0, Dinf))
    pairs = [tuple(p) for p in pairs]
    if Dinf == 0:   # z drops out: product of single averages
        names = sorted({k for p in pairs for k in p})
        s = dict(zip(names, _gauss_products(fam, [(k,) for k in names], mu, D0)))
        return [s[a] * s[b] for a, b in pairs]
    if Dt == 0:     # x drops out: single average of the product
        return _gauss_products(fam, pairs, mu, D0)
    _, T = _budget()
    names = sorted({k for p in pairs for k in p})
    h_in, h_out = _step(Dt), _step(Dinf)
    # strategy 1: one shared lattice with spacing min(h_in, h_out)
    if h_out >= h_in:
        h, k_in, k_out = h_in, 1, max(1, int(h_out / h_in))
    else:
        h, k_out, k_in = h_out, 1, max(1, int(h_in / h_out))
    hm = ctx.mpf(h)
    hin, hout = hm * k_in, hm * k_out
    j_in = int(math.ceil(T * math.sqrt(float(Dt)) / float(hin)))
    j_out = int(math.ceil(T * math.sqrt(float(Dinf)) / float(hout)))
    nf = j_out * k_out + j_in * k_in
    # strategy 2 (one variance much smaller than the other): separate inner lattices
    hin2, hout2 = ctx.mpf(h_in), ctx.mpf(h_out)
    j_in2 = int(math.ceil(T * math.sqrt(float(Dt)) / h_in))
    j_out2 = int(math.ceil(T * math.sqrt(float(Dinf)) / h_out))
    if (2 * j_in2 + 1) * (2 * j_out2 + 1) < 2 * nf + 1:
        v_in = _gauss_weights(hin2, Dt, j_in2)
        w_out = _gauss_weights(hout2, Dinf, j_out2)
        A = {k: [] for k in names}
        for k in range(-j_out2, j_out2 + 1):
            y = mu + k * hout2
            vals = fam([y + i * hin2 for i in range(-j_in2, j_in2 + 1)], names)
            for name in names:
                A[name].append(ctx.fdot(v_in, vals[name]))
        return [ctx.fdot(w_out, [x * y for x, y in zip(A[a], A[b])]) for a, b in pairs]
    xs = [mu + i * hm for i in range(-nf, nf + 1)]
    vals = fam(xs, names)
    P = ctx.prec + 40

    def fix(v):
        return libmp.to_fixed(ctx.mpf(v)._mpf_, P)

    v_in = [fix(v) for v in _gauss_weights(hin, Dt, j_in)]
    w_out = [fix(v) for v in _gauss_weights(hout, Dinf, j_out)]
    A = {}
    span = j_in * k_in
    for name in names:
        F = [fix(v) for v in vals[name]]
        col = []
        for k in range(-j_out, j_out + 1):
            c = nf + k * k_out                       # index of the outer node
            seg = F[c - span: c + span + 1: k_in]
            col.append(sum(map(mul, seg, v_in)) >> P)   # A_f(y_k), scale 2^P
        A[name] = col
    res = []
    for a, b in pairs:
        tot = sum(w * x * y for w, x, y in zip(w_out, A[a], A[b]))
        res.append(ctx.mpf((tot, -3 * P)))
    return res


def nested2(f, h, mu, D0, Dinf):
    """[[f, h]]_2 = integral Dz A_f(z) A_h(z) for callables f, h (h=None means h = f)."""
    funcs = {"f": f, "h": f if h is None else h}
    return _nested_pairs(_callable_family(funcs), [("f", "h")], mu, D0, Dinf)[0]


def nested2_tanh(pairs, mu, D0, Dinf):
    """[[f, h]]_2 for pairs of tanh-family names, e.g. [('phi','phi'), ('Phi','Phi')]."""
    return _nested_pairs(_tanh_family, pairs, mu, D0, Dinf)


# ---------------------------------------------------------------------------------------
# independent (slow) checks with mp.quad (tanh-sinh)
# ---------------------------------------------------------------------------------------

def _quad_points(mu, D, width=6):
    s = ctx.sqrt(D)
    pts = [-ctx.inf]
    for k in range(-width, width + 1):     # where tanh varies, in z units
        pts.append((k - mu) / s)
    pts.append(ctx.inf)
    return sorted(set(pts))


def quad_gauss(f, mu, D, error=False):
    """[f](mu, D) by mp.quad in z-space with breakpoints where tanh varies."""
    mu, D = ctx.mpf(mu), ctx.mpf(D)
    s = ctx.sqrt(D)
    c = 1 / ctx.sqrt(2 * ctx.pi)
    val, err = ctx.quad(lambda z: f(mu + s * z) * ctx.exp(-z * z / 2),
                        _quad_points(mu, D), error=True, maxdegree=10)
    return (c * val, c * err) if error else c * val


def quad_nested2(f, h, mu, D0, Dinf):
    """[[f, h]]_2 by nested mp.quad (slow: use once)."""
    mu, D0, Dinf = ctx.mpf(mu), ctx.mpf(D0), ctx.mpf(Dinf)
    Dt = D0 - Dinf
    h = f if h is None else h
    s = ctx.sqrt(Dinf)
    c = 1 / ctx.sqrt(2 * ctx.pi)

    def outer(z):
        y = mu + s * z
        a = quad_gauss(f, y, Dt)
        b = a if h is f else quad_gauss(h, y, Dt)
        return a * b * ctx.exp(-z * z / 2)

    return c * ctx.quad(outer, _quad_points(mu, Dinf, width=4), maxdegree=8)


# ---------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------

class Params:
    """Unit-rank parameters.  SI is the standard deviation of I; Smn, SmI, SnI are covariances.

    Values are converted with ctx.mpf from strings (exact decimal input)."""

    NAMES = ("g", "Mm", "Mn", "Sm", "Sn", "Smn", "MI", "SmI", "SnI", "SI")

    def __init__(self, g, Mm="1.1", Mn="2", Sm="1", Sn="1", Smn="0", MI="0", SmI="0",
                 SnI="0", SI="0"):
        for k, v in zip(self.NAMES, (g, Mm, Mn, Sm, Sn, Smn, MI, SmI, SnI, SI)):
            setattr(self, k, ctx.mpf(v))
        self._src = {k: str(v) for k, v in zip(self.NAMES, (g, Mm, Mn, Sm, Sn, Smn, MI, SmI,
                                                              SnI, SI))}

    def replace(self, **kw):
        d = dict(self._src)
        d.update({k: str(v) if not isinstance(v, str) else v for k, v in kw.items()})
        p = Params(**d)
        for k, v in kw.items():          # keep full precision for mpf arguments
            setattr(p, k, ctx.mpf(v))
            p._src[k] = fmt(v, 35) if not isinstance(v, str) else v
        return p

    @property
    def overlap(self):
        return self.Mm * self.Mn + self.Smn

    def covariance_is_psd(self) -> bool:
        M = ctx.matrix([[self.Sm ** 2, self.Smn, self.SmI],
                        [self.Smn, self.Sn ** 2, self.SnI],
                        [self.SmI, self.SnI, self.SI ** 2]])
        minors = [M[0, 0], M[0, 0] * M[1, 1] - M[0, 1] ** 2, ctx.det(M)]
        return all(m >= 0 for m in minors) and M[1, 1] >= 0 and M[2, 2] >= 0

    def as_strings(self):
        return dict(self._src)


def V_s(p: Params, kappa):
    """Var(kappa m + I) = Sm^2 kappa^2 + 2 kappa SmI + SI^2."""
    return p.Sm ** 2 * kappa ** 2 + 2 * kappa * p.SmI + p.SI ** 2


def _dV_s(p: Params, kappa):
    return 2 * p.Sm ** 2 * kappa + 2 * p.SmI


def _norm(v):
    return max(abs(x) for x in v)


# ---------------------------------------------------------------------------------------
# stationary DMF:  x = (mu, D0, kappa)
# ---------------------------------------------------------------------------------------

_STAT_PRODUCTS = [("phi",), ("dphi",), ("d2phi",), ("d3phi",), ("phi", "phi"),
                  ("phi", "dphi"), ("dphi", "dphi"), ("phi", "d2phi")]


def _stat_avgs(mu, D0):
    vals = gauss_tanh(_STAT_PRODUCTS, mu, D0)
    return dict(zip(["P", "P1", "P2", "P3", "PP", "PP1", "P1P1", "PP2"], vals))


def stationary_residual(p: Params, x, _avg=None):
    mu, D0, k = [ctx.mpf(v) for v in x]
    a = _avg or _stat_avgs(mu, D0)
    c = p.Smn * k + p.SnI
    return [mu - p.Mm * k - p.MI,
            D0 - p.g ** 2 * a["PP"] - V_s(p, k),
            k - p.Mn * a["P"] - c * a["P1"]]


def stationary_jacobian(p: Params, x, _avg=None):
    """d(residual)/d(mu, D0, kappa) from Price's theorem (d/dmu [f] = [f'], d/dD = [f'']/2)."""
    mu, D0, k = [ctx.mpf(v) for v in x]
    a = _avg or _stat_avgs(mu, D0)
    g2 = p.g ** 2
    c = p.Smn * k + p.SnI
    return ctx.matrix([
        [1, 0, -p.Mm],
        [-g2 * 2 * a["PP1"], 1 - g2 * (a["P1P1"] + a["PP2"]), -_dV_s(p, k)],
        [-(p.Mn * a["P1"] + c * a["P2"]), -(p.Mn * a["P2"] + c * a["P3"]) / 2,
         1 - p.Smn * a["P1"]],
    ])


def _newton(F, J, x0, tol_exp=None):
    """mp.findroot (MDNewton) with analytic Jacobian; returns the root as a list."""
    tol = ctx.mpf(10) ** (-(tol_exp or ctx.dps))
    x = ctx.findroot(lambda *v: F(v), [ctx.mpf(v) for v in x0],
                     J=lambda *v: J(v), tol=tol, verify=False, maxsteps=25)
    return [x[i] for i in range(len(x0))]


def solve_stationary(p: Params, start):
    """Stationary solution (mu, D0, kappa) by Newton from `start`; returns a dict."""
    cache = {}

    def avg(v):
        key = tuple(v)
        if key not in cache:
            cache.clear()
            cache[key] = _stat_avgs(v[0], v[1])
        return cache[key]

    def F(v):
        if v[1] < 0:
            raise ValueError("D0 < 0 during Newton")
        return stationary_residual(p, v, avg(v))

    def J(v):
        return stationary_jacobian(p, v, avg(v))

    x = _newton(F, J, start)
    res = stationary_residual(p, x)
    return {"mu": x[0], "delta0": x[1], "kappa": x[2], "residual": _norm(res)}


def stationary_stability(p: Params, sol):
    """Bulk radius^2 g^2 [phi'^2] and the outlier eigenvalues of J diag(phi').

    The outliers are the eigenvalues of the Jacobian of the fixed-point map
    (kappa, D0q) -> (Mn [phi] + (Smn kappa + SnI)[phi'],  g^2 [phi^2]) with
    mu = Mm kappa + MI, D0 = D0q + V_s(kappa) (D0q = quenched variance).  This is the
    authors' EigStationary 3x3 matrix reduced to 2x2 (same non-zero eigenvalues,
    THEORY section 8); for kappa = 0, mu = 0 it gives overlap * [phi'](0, D0).
    A stationary state is stable when the bulk radius < 1 and every outlier that lies
    outside the bulk disc has real part < 1.  At kappa = mu = 0 the matrix is diagonal:
    overlap [phi'] (the kappa outlier) and g^2 ([phi'^2] + [phi phi'']) (the variance
    mode, which can leave the disc only when the bulk radius already exceeds 1).
    """
    mu, D0, k = sol["mu"], sol["delta0"], sol["kappa"]
    a = _stat_avgs(mu, D0)
    g2 = p.g ** 2
    c = p.Smn * k + p.SnI
    dV = _dV_s(p, k)
    j11 = p.Mn * (a["P1"] * p.Mm + a["P2"] * dV / 2) + p.Smn * a["P1"] \
        + c * (a["P2"] * p.Mm + a["P3"] * dV / 2)
    j12 = (p.Mn * a["P2"] + c * a["P3"]) / 2
    j21 = g2 * (2 * a["PP1"] * p.Mm + (a["P1P1"] + a["PP2"]) * dV)
    j22 = g2 * (a["P1P1"] + a["PP2"])
    tr, det = j11 + j22, j11 * j22 - j12 * j21
    disc = tr * tr / 4 - det
    if disc >= 0:
        eig = [tr / 2 + ctx.sqrt(disc), tr / 2 - ctx.sqrt(disc)]
    else:
        eig = [ctx.mpc(tr / 2, ctx.sqrt(-disc)), ctx.mpc(tr / 2, -ctx.sqrt(-disc))]
    bulk2 = g2 * a["P1P1"]
    radius = ctx.sqrt(bulk2)
    outliers = [e for e in eig if abs(e) > radius]
    stable = bulk2 < 1 and all(ctx.re(e) < 1 for e in outliers)
    return {"bulk_radius_sq": bulk2, "outlier_matrix_eigs": eig,
            "outliers": outliers, "stable": bool(stable),
            "matrix": [[j11, j12], [j21, j22]]}


# ---------------------------------------------------------------------------------------
# chaotic DMF:  x = (mu, D0, Dinf, kappa)
# ---------------------------------------------------------------------------------------

_CH_SINGLE = [("phi",), ("dphi",), ("d2phi",), ("d3phi",), ("Phi", "Phi"), ("Phi", "phi"),
              ("phi", "phi"), ("Phi", "dphi")]
_CH_NESTED = [("phi", "phi"), ("dphi", "phi"), ("d2phi", "phi"), ("dphi", "dphi"),
              ("Phi", "Phi"), ("phi", "Phi"), ("dphi", "Phi")]


def _chaos_avgs(mu, D0, Dinf):
    s = dict(zip(["P", "P1", "P2", "P3", "QQ", "QP", "PP", "QP1"],
                 gauss_tanh(_CH_SINGLE, mu, D0)))
    n = dict(zip(["nPP", "nP1P", "nP2P", "nP1P1", "nQQ", "nPQ", "nP1Q"],
                 nested2_tanh(_CH_NESTED, mu, D0, Dinf)))
    s.update(n)
    return s


def chaotic_residual(p: Params, x, _avg=None):
    mu, D0, Dinf, k = [ctx.mpf(v) for v in x]
    a = _avg or _chaos_avgs(mu, D0, Dinf)
    g2 = p.g ** 2
    Vs = V_s(p, k)
    c = p.Smn * k + p.SnI
    return [mu - p.Mm * k - p.MI,
            Dinf - g2 * a["nPP"] - Vs,
            (D0 + Dinf) / 2 - g2 * (a["QQ"] - a["nQQ"]) / (D0 - Dinf) - Vs,
            k - p.Mn * a["P"] - c * a["P1"]]


def chaotic_jacobian(p: Params, x, _avg=None):
    """d(residual)/d(mu, D0, Dinf, kappa).

    For N_fh = [[f, h]]_2 = E f(x) h(y) with Var x = Var y = D0, Cov = Dinf:
    dN/dmu = N_{f'h} + N_{fh'},  dN/dDinf = N_{f'h'},  dN/dD0 = (N_{f''h} + N_{fh''})/2.
    """
    mu, D0, Dinf, k = [ctx.mpf(v) for v in x]
    a = _avg or _chaos_avgs(mu, D0, Dinf)
    g2 = p.g ** 2
    c = p.Smn * k + p.SnI
    dV = _dV_s(p, k)
    Dt = D0 - Dinf
    E = a["QQ"] - a["nQQ"]
    return ctx.matrix([
        [1, 0, 0, -p.Mm],
        [-2 * g2 * a["nP1P"], -g2 * a["nP2P"], 1 - g2 * a["nP1P1"], -dV],
        [-g2 * 2 * (a["QP"] - a["nPQ"]) / Dt,
         ctx.mpf(1) / 2 - g2 * ((a["PP"] + a["QP1"] - a["nP1Q"]) / Dt - E / Dt ** 2),
         ctx.mpf(1) / 2 - g2 * (-a["nPP"] / Dt + E / Dt ** 2),
         -dV],
        [-(p.Mn * a["P1"] + c * a["P2"]), -(p.Mn * a["P2"] + c * a["P3"]) / 2, 0,
         1 - p.Smn * a["P1"]],
    ])


def solve_chaotic(p: Params, start):
    """Chaotic solution (mu, D0, Dinf, kappa) by Newton from `start`; returns a dict."""
    cache = {}

    def avg(v):
        key = tuple(v)
        if key not in cache:
            cache.clear()
            if not (0 <= v[2] < v[1]):
                raise ValueError("left 0 <= Dinf < D0 during Newton")
            cache[key] = _chaos_avgs(v[0], v[1], v[2])
        return cache[key]

    x = _newton(lambda v: chaotic_residual(p, v, avg(v)),
                lambda v: chaotic_jacobian(p, v, avg(v)), start)
    res = chaotic_residual(p, x)
    return {"mu": x[0], "delta0": x[1], "delta_inf": x[2], "kappa": x[3],
            "residual": _norm(res)}


def chaotic_admissibility(p: Params, sol):
    """V''(Dinf) = -1 + g^2 [[phi', phi']]_2 (< 0: Dinf is a maximum, admissible) and the
    bulk quantity g^2 [phi'^2](mu, D0) for information."""
    n = nested2_tanh([("dphi", "dphi")], sol["mu"], sol["delta0"], sol["delta_inf"])[0]
    b = gauss_tanh([("dphi", "dphi")], sol["mu"], sol["delta0"])[0]
    vpp = -1 + p.g ** 2 * n
    return {"V_pp_at_delta_inf": vpp, "admissible": bool(vpp < 0),
            "g2_dphi2_at_delta0": p.g ** 2 * b}


def homogeneous_chaotic(p: Params, D0_start):
    """Homogeneous chaotic solution (kappa = 0; needs MI = SI = SmI = SnI = 0): mu = 0 and
    Dinf = 0 solve the Dinf equation exactly ([phi](0, D0) = 0 for odd phi), leaving the
    energy equation D0^2/2 = g^2 ([Phi^2](0,D0) - [Phi](0,D0)^2) for D0."""
    assert p.MI == 0 and p.SI == 0 and p.SmI == 0 and p.SnI == 0
    g2 = p.g ** 2

    def F(D):
        QQ, Q = gauss_tanh([("Phi", "Phi"), ("Phi",)], 0, D)
        return D / 2 - g2 * (QQ - Q * Q) / D       # divided by D0 - Dinf = D0

    D0 = ctx.findroot(F, ctx.mpf(D0_start), tol=ctx.mpf(10) ** (-(ctx.dps - 3)))
    sol = {"mu": ctx.mpf(0), "delta0": D0, "delta_inf": ctx.mpf(0), "kappa": ctx.mpf(0)}
    sol["residual"] = _norm(chaotic_residual(p, [0, D0, 0, 0]))
    return sol


# ---------------------------------------------------------------------------------------
# transitions
# ---------------------------------------------------------------------------------------

def solve_gC(p: Params, start):
    """Chaos onset of a structured stationary branch: the stationary equations plus
    g^2 [phi'^2](mu, D0) = 1; unknowns (mu, D0, kappa, g); start = (mu, D0, kappa, g)."""
    prods = _STAT_PRODUCTS + [("d2phi", "d2phi"), ("dphi", "d3phi"), ("dphi", "d2phi")]

    def avg(v):
        vals = gauss_tanh(prods, v[0], v[1])
        a = dict(zip(["P", "P1", "P2", "P3", "PP", "PP1", "P1P1", "PP2", "P2P2", "P1P3",
                      "P1P2"], vals))
        return a

    cache = {}

    def A(v):
        key = tuple(v)
        if key not in cache:
            cache.clear()
            cache[key] = avg(v)
        return cache[key]

    def F(v):
        q = p.replace(g=v[3])
        a = A(v)
        return stationary_residual(q, v[:3], a) + [v[3] ** 2 * a["P1P1"] - 1]

    def J(v):
        q = p.replace(g=v[3])
        a = A(v)
        Js = stationary_jacobian(q, v[:3], a)
        M = ctx.matrix(4, 4)
        for i in range(3):
            for j in range(3):
                M[i, j] = Js[i, j]
        M[1, 3] = -2 * v[3] * a["PP"]
        g2 = v[3] ** 2
        M[3, 0] = g2 * 2 * a["P1P2"]
        M[3, 1] = g2 * (a["P2P2"] + a["P1P3"])
        M[3, 3] = 2 * v[3] * a["P1P1"]
        return M

    x = _newton(F, J, start)
    return {"mu": x[0], "delta0": x[1], "kappa": x[2], "g": x[3], "residual": _norm(F(x))}


def solve_gB(p: Params, D0_start="1.5"):
    """End of the structured chaotic branches (no input).

    Why overlap * [phi'](0, D0) = 1: near kappa = 0, mu = Mm kappa and
    V_s = Sm^2 kappa^2, so D0 and Dinf change only at O(kappa^2), while
    Mn [phi](mu, D0) + Smn kappa [phi'](mu, D0) = (Mm Mn + Smn) [phi'](0, D0) kappa + O(kappa^3)
    because [phi](0, D) = 0 and [phi''](0, D) = 0 for odd phi.  The kappa equation therefore
    linearises to kappa (1 - overlap [phi'](0, D0_hom)) = 0 around the homogeneous chaotic
    solution (mu = kappa = Dinf = 0, D0 = D0_hom(g)), and a kappa != 0 chaotic branch
    bifurcates (pitchfork) where overlap [phi'](0, D0_hom(g)) = 1.  [phi'](0, D) decreases
    with D and D0_hom increases with g, so the structured branch exists for g < g_B.

    Unknowns (D0, g): overlap [phi'](0, D0) = 1 fixes D0; the homogeneous energy
    equation D0^2/2 = g^2 ([Phi^2](0, D0) - [Phi](0, D0)^2) then gives g."""
    assert p.MI == 0 and p.SI == 0 and p.SmI == 0 and p.SnI == 0
    ov = p.overlap
    tol = ctx.mpf(10) ** (-(ctx.dps - 3))
    D0 = ctx.findroot(lambda D: ov * gauss_tanh([("dphi",)], 0, D)[0] - 1, ctx.mpf(D0_start),
                      tol=tol)
    QQ, Q = gauss_tanh([("Phi", "Phi"), ("Phi",)], 0, D0)
    g = D0 / ctx.sqrt(2 * (QQ - Q * Q))
    q = p.replace(g=g)
    res = chaotic_residual(q, [0, D0, 0, 0]) + [ov * gauss_tanh([("dphi",)], 0, D0)[0] - 1]
    return {"g": g, "delta0": D0, "mu": ctx.mpf(0), "kappa": ctx.mpf(0),
            "delta_inf": ctx.mpf(0), "residual": _norm(res)}


def hom_struct_boundary(g, D0_start="0.5"):
    """Critical overlap of the homogeneous -> structured stationary boundary at a given g:
    overlap_c = 1 / [phi'](0, D0_hom(g)), with D0_hom = g^2 [phi^2](0, D0_hom).  For g < 1
    the only solution is D0_hom = 0 (g^2 [phi^2](0, D) <= g^2 D < D), so overlap_c = 1.
    For g > 1 the non-zero D0_hom is used (that homogeneous state is unstable to chaos)."""
    g = ctx.mpf(g)
    if g <= 1:
        D0 = ctx.mpf(0)
        res = D0 - g ** 2 * gauss_tanh([("phi", "phi")], 0, D0)[0]
    else:
        D0 = ctx.findroot(lambda D: D - g ** 2 * gauss_tanh([("phi", "phi")], 0, D)[0],
                          ctx.mpf(D0_start), tol=ctx.mpf(10) ** (-(ctx.dps - 3)))
        res = D0 - g ** 2 * gauss_tanh([("phi", "phi")], 0, D0)[0]
    return {"g": g, "delta0_hom": D0,
            "overlap_c": 1 / gauss_tanh([("dphi",)], 0, D0)[0], "residual": abs(res)}
