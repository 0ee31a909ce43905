"""Generate tests/reference/solutions.json from mp_reference (independent of dmftools).

    nice -n 10 python tests/reference/generate.py [--quad-nested] [--out PATH]

Every phase of the unit-rank phase diagram (phi = tanh) is covered; all mean-field
solutions at each point are located by a low-precision scan in kappa and then polished with
Newton at 40 digits.  Values are written as decimal strings with 30 significant digits.
--quad-nested adds the (slow, ~10 min) nested mp.quad check of [[tanh]]_2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mp_reference as R  # noqa: E402

ctx = R.ctx
F = R.fmt
T0 = time.time()
SCAN_DPS = 12


def log(msg):
    print("[%7.1fs] %s" % (time.time() - T0, msg), flush=True)


# ---------------------------------------------------------------------------------------
# scans (low precision) to find every solution
# ---------------------------------------------------------------------------------------

def _grid(a, b, n):
    a, b = ctx.mpf(a), ctx.mpf(b)
    return [a + (b - a) * i / (n - 1) for i in range(n)]


def _d0_roots(p, kappa, nd=24):
    """All roots D0 of D0 - g^2 [phi^2](mu, D0) - V_s(kappa) in [V_s, V_s + g^2]."""
    mu = p.Mm * kappa + p.MI
    Vs = R.V_s(p, kappa)
    g2 = p.g ** 2

    def h(D):
        return D - g2 * R.gauss_tanh([("phi", "phi")], mu, D)[0] - Vs

    lo, hi = max(Vs, ctx.mpf(0)), Vs + g2 + ctx.mpf("0.01")
    if lo == 0 and h(ctx.mpf(0)) == 0:
        roots = [ctx.mpf(0)]
        lo = ctx.mpf("1e-6")
    else:
        roots = []
    Ds = _grid(lo, hi, nd)
    hs = [h(D) for D in Ds]
    for i in range(nd - 1):
        if hs[i] == 0:
            roots.append(Ds[i])
        elif hs[i] * hs[i + 1] < 0:
            roots.append(ctx.findroot(h, (Ds[i], Ds[i + 1]), solver="anderson"))
    return roots


def scan_stationary(p, kmin, kmax, nk):
    """Starts (mu, D0, kappa) for every stationary solution with kappa in [kmin, kmax]."""
    starts = []
    with ctx.workdps(SCAN_DPS):
        rows = []
        for k in _grid(kmin, kmax, nk):
            mu = p.Mm * k + p.MI
            c = p.Smn * k + p.SnI
            Rs = []
            for D in _d0_roots(p, k):
                P, P1 = R.gauss_tanh([("phi",), ("dphi",)], mu, D)
                Rs.append((D, k - p.Mn * P - c * P1))
            rows.append((k, Rs))
        for k, r in rows:                     # exact zeros on the grid (e.g. kappa = 0)
            for D, Rv in r:
                if Rv == 0:
                    starts.append((p.Mm * k + p.MI, D, k))
        for (k0, r0), (k1, r1) in zip(rows, rows[1:]):
            if len(r0) != len(r1):
                log("  note: number of D0 roots changes between kappa=%s and %s (%d -> %d)"
                    % (ctx.nstr(k0, 4), ctx.nstr(k1, 4), len(r0), len(r1)))
            for D0a, Ra in r0:                # follow each D0 root to its nearest neighbour
                if not r1:
                    break
                D0b, Rb = min(r1, key=lambda t: abs(t[0] - D0a))
                if Ra != 0 and Rb != 0 and Ra * Rb < 0:
                    t = Ra / (Ra - Rb)
                    k = k0 + t * (k1 - k0)
                    D = D0a + t * (D0b - D0a)
                    starts.append((p.Mm * k + p.MI, D, k))
    return starts


def _chaos2d_iter(p, k, D0, Dinf, steps=400, eps="0.3"):
    """Damped fixed-point iteration of the authors' kind for (D0, Dinf) at fixed kappa."""
    eps = ctx.mpf(eps)
    mu = p.Mm * k + p.MI
    Vs = R.V_s(p, k)
    g2 = p.g ** 2
    for _ in range(steps):
        (QQ,) = R.gauss_tanh([("Phi", "Phi")], mu, D0)
        nPP, nQQ = R.nested2_tanh([("phi", "phi"), ("Phi", "Phi")], mu, D0, Dinf)
        arg = Dinf ** 2 + 2 * (g2 * (QQ - nQQ) + Vs * (D0 - Dinf))
        D0n = ctx.sqrt(max(arg, ctx.mpf(0)))
        Dinfn = g2 * nPP + Vs
        D0n, Dinfn = (1 - eps) * D0 + eps * D0n, (1 - eps) * Dinf + eps * Dinfn
        if Dinfn >= D0n or Dinfn < 0:
            return None
        if abs(D0n - D0) + abs(Dinfn - Dinf) < ctx.mpf("1e-9"):
            return D0n, Dinfn
        D0, Dinf = D0n, Dinfn
    return None


def _chaos2d_newton(p, k, D0, Dinf, steps=15):
    mu = p.Mm * k + p.MI
    for _ in range(steps):
        x = [mu, D0, Dinf, k]
        r = R.chaotic_residual(p, x)
        if max(abs(r[1]), abs(r[2])) < ctx.mpf("1e-10"):
            return D0, Dinf
        J = R.chaotic_jacobian(p, x)
        M = ctx.matrix([[J[1, 1], J[1, 2]], [J[2, 1], J[2, 2]]])
        s = ctx.lu_solve(M, ctx.matrix([-r[1], -r[2]]))
        lam = ctx.mpf(1)
        while lam > ctx.mpf("1e-3"):
            D0n, Dinfn = D0 + lam * s[0], Dinf + lam * s[1]
            # stay where chaos is resolvable: tiny D0 - Dinf makes the lattice very fine
            if 0 <= Dinfn and D0n - Dinfn > ctx.mpf("1e-3") * D0n:
                break
            lam /= 2
        else:
            return None
        D0, Dinf = D0n, Dinfn
    return None


def scan_chaotic(p, kmin, kmax, nk, D0_guess, kseed=None):
    """Starts (mu, D0, Dinf, kappa) for every chaotic solution with kappa in [kmin, kmax].

    For each kappa on the grid the two chaotic equations are solved for (D0, Dinf) by
    Newton, continued outwards from the grid point nearest to `kseed` (default: mu = 0);
    sign changes of the kappa residual then bracket the solutions."""
    starts = []
    with ctx.workdps(SCAN_DPS):
        ks = _grid(kmin, kmax, nk)
        kseed = -p.MI / p.Mm if kseed is None else ctx.mpf(kseed)
        i0 = min(range(nk), key=lambda i: abs(ks[i] - kseed))
        res = [None] * nk

        def fresh(k, seed):
            Vs = R.V_s(p, k)
            sol = _chaos2d_newton(p, k, ctx.mpf(D0_guess) + Vs, Vs + ctx.mpf("0.01"))
            if sol is None and seed:    # slow fallback, only at the seed point
                sol = _chaos2d_iter(p, k, ctx.mpf(D0_guess) + Vs, Vs + ctx.mpf("0.01"))
                if sol is not None:
                    sol = _chaos2d_newton(p, k, *sol)
            return sol

        for order in (range(i0, nk), range(i0 - 1, -1, -1)):
            prev = res[i0][:2] if (order.start < i0 and res[i0]) else None
            for i in order:
                k = ks[i]
                sol = _chaos2d_newton(p, k, *prev) if prev is not None else None
                if sol is None:
                    sol = fresh(k, i == i0)
                if sol is None or (sol[0] - sol[1]) < ctx.mpf("1e-4") * sol[0]:
                    prev = None
                    continue
                prev = sol
                mu = p.Mm * k + p.MI
                P, P1 = R.gauss_tanh([("phi",), ("dphi",)], mu, sol[0])
                res[i] = (sol[0], sol[1], k - p.Mn * P - (p.Smn * k + p.SnI) * P1)
        rows = list(zip(ks, res))
        for (k0, a), (k1, b) in zip(rows, rows[1:]):
            if a is None or b is None:
                continue
            if a[2] == 0 or a[2] * b[2] < 0:
                t = a[2] / (a[2] - b[2])
                k = k0 + t * (k1 - k0)
                starts.append((p.Mm * k + p.MI, a[0] + t * (b[0] - a[0]),
                               a[1] + t * (b[1] - a[1]), k))
        missing = [ctx.nstr(k, 3) for k, r in rows if r is None]
        if missing:
            log("  no chaotic (D0, Dinf) found at kappa in {%s}" % ", ".join(missing))
    return starts


def _dedup(sols, keys):
    out = []
    for s in sols:
        if all(max(abs(s[k] - o[k]) for k in keys) > ctx.mpf("1e-20") for o in out):
            out.append(s)
    return out


# ---------------------------------------------------------------------------------------
# entries
# ---------------------------------------------------------------------------------------

def _c(z):
    if isinstance(z, ctx.mpc):
        return {"re": F(z.real), "im": F(z.imag)}
    return F(z)


def _res50(fun, p, x):
    """Residual of the 40-digit state re-evaluated with the finer dps-50 quadrature: it
    stays ~1e-40 only if the dps-40 quadrature was accurate to that level."""
    with ctx.workdps(50):
        return ctx.nstr(max(abs(r) for r in fun(p, x)), 3)


def stationary_entry(name, phase, p, s, note=None):
    st = R.stationary_stability(p, s)
    e = {
        "name": name, "phase": phase, "regime": "stationary", "model": "current",
        "parameters": p.as_strings(),
        "state": {"mu": F(s["mu"]), "delta0": F(s["delta0"]), "kappa": F(s["kappa"]),
                  "delta0_quenched": F(s["delta0"] - R.V_s(p, s["kappa"])),
                  "V_s": F(R.V_s(p, s["kappa"]))},
        "unknowns": ["mu", "delta0", "kappa"],
        "residual_norm": ctx.nstr(s["residual"], 3),
        "residual_norm_dps50": _res50(R.stationary_residual, p,
                                      [s["mu"], s["delta0"], s["kappa"]]),
        "stability": {
            "bulk_radius_sq (g^2 [phi'^2])": F(st["bulk_radius_sq"]),
            "outlier_matrix_eigenvalues": [_c(z) for z in st["outlier_matrix_eigs"]],
            "eigenvalues_outside_bulk_disc": [_c(z) for z in st["outliers"]],
            "stable": st["stable"],
        },
    }
    if note:
        e["note"] = note
    log("  %-44s kappa=%s D0=%s res=%s res50=%s stable=%s" % (
        name, ctx.nstr(s["kappa"], 13), ctx.nstr(s["delta0"], 13),
        ctx.nstr(s["residual"], 2), e["residual_norm_dps50"], st["stable"]))
    return e


def chaotic_entry(name, phase, p, s, note=None):
    ad = R.chaotic_admissibility(p, s)
    e = {
        "name": name, "phase": phase, "regime": "chaotic", "model": "current",
        "parameters": p.as_strings(),
        "state": {"mu": F(s["mu"]), "delta0": F(s["delta0"]), "delta_inf": F(s["delta_inf"]),
                  "kappa": F(s["kappa"]), "temporal_variance": F(s["delta0"] - s["delta_inf"]),
                  "V_s": F(R.V_s(p, s["kappa"]))},
        "unknowns": ["mu", "delta0", "delta_inf", "kappa"],
        "residual_norm": ctx.nstr(s["residual"], 3),
        "residual_norm_dps50": _res50(R.chaotic_residual, p,
                                      [s["mu"], s["delta0"], s["delta_inf"], s["kappa"]]),
        "admissibility": {
            "V''(delta_inf) = -1 + g^2 [[phi',phi']]_2": F(ad["V_pp_at_delta_inf"]),
            "admissible": ad["admissible"],
            "g^2 [phi'^2](mu, delta0)": F(ad["g2_dphi2_at_delta0"]),
        },
    }
    if note:
        e["note"] = note
    log("  %-44s kappa=%s D0=%s Dinf=%s res=%s res50=%s V''=%s" % (
        name, ctx.nstr(s["kappa"], 13), ctx.nstr(s["delta0"], 13),
        ctx.nstr(s["delta_inf"], 13), ctx.nstr(s["residual"], 2), e["residual_norm_dps50"],
        ctx.nstr(ad["V_pp_at_delta_inf"], 4)))
    return e


def _sign_label(k):
    return "central" if abs(k) < ctx.mpf("1e-25") else ("plus" if k > 0 else "minus")


def _labels(p, sols, i):
    """plus/minus/central without input; with input, by rank of kappa."""
    if p.MI == 0 and p.SnI == 0 and p.SI == 0 and p.SmI == 0:
        return _sign_label(sols[i]["kappa"])
    n = len(sols)
    if n == 1:
        return "only"
    names = {2: ["lower", "upper"], 3: ["lower", "middle", "upper"]}.get(n)
    return names[i] if names else "k%d" % i


def all_stationary(p, kmin, kmax, nk, tag, phase_of):
    sols = []
    for st in scan_stationary(p, kmin, kmax, nk):
        try:
            sols.append(R.solve_stationary(p, st))
        except (ValueError, ZeroDivisionError) as exc:
            log("  polish failed from %s: %s" % ([ctx.nstr(v, 5) for v in st], exc))
    sols = _dedup(sols, ["kappa", "delta0"])
    sols.sort(key=lambda s: (s["kappa"], s["delta0"]))
    out = []
    for i, s in enumerate(sols):
        lab = _labels(p, sols, i)
        if abs(s["kappa"]) < ctx.mpf("1e-25") and s["delta0"] == 0:
            lab = "central_D0zero"
        out.append(stationary_entry("%s_%s" % (tag, lab), phase_of(s), p, s))
    return out


def all_chaotic(p, kmin, kmax, nk, D0_guess, tag, phase_of):
    sols = []
    for st in scan_chaotic(p, kmin, kmax, nk, D0_guess):
        try:
            sols.append(R.solve_chaotic(p, st))
        except (ValueError, ZeroDivisionError) as exc:
            log("  polish failed from %s: %s" % ([ctx.nstr(v, 5) for v in st], exc))
    sols = _dedup(sols, ["kappa", "delta0", "delta_inf"])
    sols.sort(key=lambda s: s["kappa"])
    return [chaotic_entry("%s_%s" % (tag, _labels(p, sols, i)), phase_of(s), p, s)
            for i, s in enumerate(sols)]


# ---------------------------------------------------------------------------------------
# verification of the quadrature and of the stability matrix
# ---------------------------------------------------------------------------------------

def verification(quad_nested):
    out = {}
    log("verification: single averages vs mp.quad (tanh-sinh, maxdegree 10)")
    rows = []
    fs = {"tanh": ctx.tanh, "sech^4": lambda x: ctx.sech(x) ** 4,
          "logcosh^2": lambda x: ctx.log(ctx.cosh(x)) ** 2,
          "tanh*sech^2": lambda x: ctx.tanh(x) * ctx.sech(x) ** 2}
    worst = ctx.mpf(0)
    for mu, D in [("0", "0.01"), ("0.3", "1"), ("1.2", "5"), ("-0.7", "30")]:
        for nm, f in fs.items():
            a = R.gauss(f, mu, D)
            b, err = R.quad_gauss(f, mu, D, error=True)
            rows.append({"f": nm, "mu": mu, "D": D, "lattice": F(a, 38),
                         "abs_diff": ctx.nstr(abs(a - b), 3),
                         "quad_error_estimate": ctx.nstr(err, 3)})
            worst = max(worst, abs(a - b) / max(1, abs(a)))
    out["single_vs_mpquad"] = {"points": rows, "max_rel_diff": ctx.nstr(worst, 3)}
    log("  max relative difference %s" % ctx.nstr(worst, 3))

    log("verification: nested erf closed form (2/pi) asin(2a^2 Dinf / (1 + 2a^2 D0))")
    rows, worst = [], ctx.mpf(0)
    for a in ["1", "2"]:
        for D0, Dinf in [("2", "1"), ("1", "0.999"), ("3", "0.001"), ("0.5", "0.25"),
                         ("4", "3")]:
            am = ctx.mpf(a)
            v = R.nested2(lambda x: ctx.erf(am * x), None, 0, D0, Dinf)
            ex = 2 / ctx.pi * ctx.asin(2 * am ** 2 * ctx.mpf(Dinf) / (1 + 2 * am ** 2 * ctx.mpf(D0)))
            rows.append({"a": a, "D0": D0, "Dinf": Dinf, "lattice": F(v, 38),
                         "abs_diff": ctx.nstr(abs(v - ex), 3)})
            worst = max(worst, abs(v - ex))
    out["nested_erf_closed_form"] = {"points": rows, "max_abs_diff": ctx.nstr(worst, 3)}
    log("  max abs difference %s" % ctx.nstr(worst, 3))

    log("verification: nested limits D0-Dinf -> 0 and Dinf -> 0")
    # d/dDinf [[f,f]]_2 = [[f',f']]_2: at Dinf = D0 it is [f'^2], at Dinf = 0 it is [f']^2
    mu, D0 = ctx.mpf("0.4"), ctx.mpf(2)
    P2, Q2, P, Q, P1sq, P1 = R.gauss_tanh([("phi", "phi"), ("Phi", "Phi"), ("phi",), ("Phi",),
                                           ("dphi", "dphi"), ("dphi",)], mu, D0)
    lim = {"predicted slopes": {"phi, Dinf->D0": F(-P1sq, 10), "Phi, Dinf->D0": F(-P2, 10),
                                "phi, Dinf->0": F(P1 ** 2, 10), "Phi, Dinf->0": F(P ** 2, 10)}}
    for eps in ["1e-4", "1e-8"]:
        e = ctx.mpf(eps)
        a = R.nested2_tanh([("phi", "phi"), ("Phi", "Phi")], mu, D0, D0 - e)
        b = R.nested2_tanh([("phi", "phi"), ("Phi", "Phi")], mu, D0, e)
        lim["eps=" + eps] = {"phi, Dinf->D0": F((a[0] - P2) / e, 10),
                             "Phi, Dinf->D0": F((a[1] - Q2) / e, 10),
                             "phi, Dinf->0": F((b[0] - P ** 2) / e, 10),
                             "Phi, Dinf->0": F((b[1] - Q ** 2) / e, 10)}
    out["nested_limits (mu=0.4, D0=2): ([[f]]_2 - limit)/eps vs predicted slope"] = lim
    log("  %s" % lim)

    log("verification: lattice self-convergence (dps 40 vs dps 60 settings)")
    x = ("0.4", "3", "1.5")
    a = R.nested2_tanh([("phi", "phi"), ("Phi", "Phi"), ("dphi", "dphi")], *x)
    with ctx.workdps(60):
        b = R.nested2_tanh([("phi", "phi"), ("Phi", "Phi"), ("dphi", "dphi")], *x)
    out["nested_dps40_vs_dps60"] = [ctx.nstr(abs(u - v), 3) for u, v in zip(a, b)]
    log("  %s" % out["nested_dps40_vs_dps60"])

    if quad_nested:
        log("verification: nested mp.quad for [[tanh]]_2(0.4, 3, 1.5) (slow)")
        q = R.quad_nested2(ctx.tanh, None, "0.4", "3", "1.5")
        out["nested_vs_mpquad"] = {"point": x, "lattice": F(a[0], 38), "mpquad": F(q, 38),
                                   "abs_diff": ctx.nstr(abs(q - a[0]), 3)}
        log("  %s" % out["nested_vs_mpquad"])
    else:
        out["nested_vs_mpquad"] = {
            "point": x, "lattice": F(a[0], 38),
            "note": "run with --quad-nested (about 10 min); at writing it gave "
                    "0.2775974544459660125133751110531381729143 vs the lattice value, "
                    "abs diff 5.7e-42"}
    return out


def check_outlier_matrix(p, s):
    """The 2x2 outlier matrix against (i) central finite differences of the fixed-point map
    and (ii) the authors' EigStationary 3x3 matrix (no input, Smn = 0)."""
    st = R.stationary_stability(p, s)
    M = st["matrix"]
    k0 = s["kappa"]
    Dq0 = s["delta0"] - R.V_s(p, k0)

    def G(k, Dq):
        mu = p.Mm * k + p.MI
        D0 = Dq + R.V_s(p, k)
        P, P1, PP = R.gauss_tanh([("phi",), ("dphi",), ("phi", "phi")], mu, D0)
        return [p.Mn * P + (p.Smn * k + p.SnI) * P1, p.g ** 2 * PP]

    h = ctx.mpf("1e-12")
    fd = [[None, None], [None, None]]
    for j, (dk, dq) in enumerate([(h, 0), (0, h)]):
        a, b = G(k0 + dk, Dq0 + dq), G(k0 - dk, Dq0 - dq)
        for i in range(2):
            fd[i][j] = (a[i] - b[i]) / (2 * h)
    fd_err = max(abs(fd[i][j] - M[i][j]) for i in range(2) for j in range(2))
    out = {"kappa": F(k0), "fd_max_abs_err (h=1e-12, central)": ctx.nstr(fd_err, 3),
           "ours_2x2_eigs": [_c(z) for z in st["outlier_matrix_eigs"]]}
    if not (p.MI == 0 and p.SnI == 0 and p.SmI == 0 and p.SI == 0 and p.Smn == 0):
        return out
    # authors' 3x3 (variables mu, delta0, kappa), valid for no input and Smn = 0
    a = R.gauss_tanh([("dphi",), ("d2phi",), ("phi", "dphi"), ("dphi", "dphi"),
                      ("phi", "d2phi"), ("phi",)], s["mu"], s["delta0"])
    P1, P2, PP1, P1P1, PP2, P = a
    g2 = p.g ** 2
    aa, bb = p.Mm * p.Mn * P1, p.Mn * P2 / 2
    r1 = [2 * g2 * PP1, g2 * (P1P1 + PP2), 2 * p.Sm ** 2 * p.Mn * P]
    A = ctx.matrix([[0, 0, p.Mm], r1, [bb * r1[0], bb * r1[1], bb * r1[2] + aa]])
    out["authors_3x3_eigs"] = [_c(z) for z in ctx.eig(A)[0]]
    return out


# ---------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "solutions.json"))
    ap.add_argument("--quad-nested", action="store_true")
    ap.add_argument("--skip-verification", action="store_true")
    args = ap.parse_args()

    base = dict(Mm="1.1", Mn="2", Sm="1", Sn="1")
    points = []
    transitions = {}
    timing = {}

    def phase_stat(s):
        return ("homogeneous stationary" if abs(s["kappa"]) < ctx.mpf("1e-25")
                else "structured stationary")

    def phase_chaos(s):
        return ("homogeneous chaotic" if abs(s["kappa"]) < ctx.mpf("1e-25")
                else "structured chaotic")

    t = time.time()
    log("homogeneous stationary, g = 0.5, overlap 0.55 (Mn = 0.5)")
    p = R.Params(g="0.5", Mm="1.1", Mn="0.5", Sm="1", Sn="1")
    points += all_stationary(p, -1, 1, 41, "homstat_g0.5_ov0.55", phase_stat)

    for g in ["0.5", "1.5"]:
        log("structured stationary, g = %s, overlap 2.2 (all branches)" % g)
        p = R.Params(g=g, **base)
        points += all_stationary(p, -2.5, 2.5, 51, "stat_g%s" % g, phase_stat)
    timing["stationary (no input)"] = time.time() - t

    t = time.time()
    log("stationary with input, g = 0.8")
    inp = dict(base, Smn="0.3", MI="0.3", SnI="0.5", SmI="0.2", SI="0.8")
    p = R.Params(g="0.8", **inp)
    assert p.covariance_is_psd()
    points += all_stationary(p, -3.5, 3.5, 71, "input_stat_g0.8", phase_stat)

    log("bistable with input, g = 0.6 (SnI = 0.2, SmI = 0.1, SI = 0.5)")
    pb = R.Params(g="0.6", **dict(base, SnI="0.2", SmI="0.1", SI="0.5"))
    assert pb.covariance_is_psd()
    points += all_stationary(pb, -2.5, 2.5, 51, "bistable_input_g0.6", phase_stat)
    timing["stationary (input)"] = time.time() - t

    t = time.time()
    log("homogeneous chaotic, g = 3 (and the kappa = 0 chaotic solution at g = 2)")
    for g, D0s in [("3", "5"), ("2", "2.5")]:
        p = R.Params(g=g, **base)
        s = R.homogeneous_chaotic(p, D0s)
        note = None if g == "3" else ("coexists with the structured chaotic states; "
                                      "unstable to kappa since overlap*[phi'](0,D0) > 1")
        ph = "homogeneous chaotic"
        e = chaotic_entry("chaotic_g%s_central" % g, ph, p, s, note)
        e["kappa_stability (overlap*[phi'](0,delta0); >1: kappa grows)"] = F(
            p.overlap * R.gauss_tanh([("dphi",)], 0, s["delta0"])[0])
        points.append(e)

    log("structured chaotic, g = 2.0 (scan kappa > 0, minus branch by symmetry)")
    p = R.Params(g="2.0", **base)
    starts = scan_chaotic(p, "0.05", "1.0", 20, "1.9", kseed="0.05")
    plus = [R.solve_chaotic(p, st) for st in starts]
    plus = _dedup(plus, ["kappa", "delta0", "delta_inf"])
    for s in plus:
        points.append(chaotic_entry("chaotic_g2.0_plus", "structured chaotic", p, s))
        m = R.solve_chaotic(p, [-s["mu"], s["delta0"], s["delta_inf"], -s["kappa"]])
        points.append(chaotic_entry("chaotic_g2.0_minus", "structured chaotic", p, m))
    timing["chaotic (no input)"] = time.time() - t

    t = time.time()
    log("with input, g = 2.5: chaotic solutions (scan) and stationary solutions")
    p = R.Params(g="2.5", **inp)
    points += all_chaotic(p, -3.5, 3.5, 36, "3.5", "input_chaotic_g2.5", phase_chaos)
    points += all_stationary(p, -3.5, 3.5, 36, "input_stat_g2.5", phase_stat)
    timing["input g=2.5"] = time.time() - t

    t = time.time()
    log("transition g_C (structured stationary branch, chaos onset)")
    p = R.Params(g="1.8", **base)
    s = R.solve_stationary(p, ["0.65", "2.17", "0.59"])
    c = R.solve_gC(p, [s["mu"], s["delta0"], s["kappa"], ctx.mpf("1.8")])
    transitions["g_C"] = {
        "definition": "stationary equations + g^2 [phi'^2](mu, delta0) = 1 on the kappa>0 "
                      "branch (the kappa<0 branch is its mirror image)",
        "parameters": {k: v for k, v in p.as_strings().items() if k != "g"},
        "unknowns": ["mu", "delta0", "kappa", "g"],
        "g": F(c["g"]), "state": {"mu": F(c["mu"]), "delta0": F(c["delta0"]),
                                  "kappa": F(c["kappa"])},
        "residual_norm": ctx.nstr(c["residual"], 3)}
    log("  g_C = %s  (res %s)" % (F(c["g"]), ctx.nstr(c["residual"], 3)))

    log("transition g_B (structured chaotic kappa -> 0)")
    b = R.solve_gB(R.Params(g="2", **base))
    gB = b["g"]
    checks = []
    prev = None
    for d in ["0.1", "0.01", "0.001", "0.0001"]:
        q = R.Params(g="2", **base).replace(g=gB - ctx.mpf(d))
        if prev is None:
            found = scan_chaotic(q, "0.05", "1.0", 20, "2.2", kseed="0.05")
            assert len(found) == 1, found
            start = found[0]
        else:   # kappa^2 ~ (g_B - g): rescale the previous solution
            r = ctx.sqrt(ctx.mpf(d) / prev[0])
            ps = prev[1]
            start = [ps["mu"] * r, ps["delta0"], ps["delta_inf"] * r * r, ps["kappa"] * r]
        s = R.solve_chaotic(q, start)
        checks.append({"g_B_minus_g": d, "kappa": F(s["kappa"]), "delta0": F(s["delta0"]),
                       "delta_inf": F(s["delta_inf"]),
                       "kappa^2/(g_B-g)": F(s["kappa"] ** 2 / ctx.mpf(d), 12),
                       "residual_norm": ctx.nstr(s["residual"], 3)})
        log("  g_B - g = %s: kappa = %s, kappa^2/(g_B-g) = %s, Dinf = %s" % (
            d, ctx.nstr(s["kappa"], 12), ctx.nstr(s["kappa"] ** 2 / ctx.mpf(d), 8),
            ctx.nstr(s["delta_inf"], 8)))
        prev = (ctx.mpf(d), s)
    transitions["g_B"] = {
        "definition": "homogeneous chaotic solution (mu = kappa = delta_inf = 0) with "
                      "overlap * [phi'](0, delta0) = 1 (linearised kappa equation; pitchfork)",
        "parameters": {k: v for k, v in R.Params(g="2", **base).as_strings().items()
                       if k != "g"},
        "unknowns": ["delta0", "g"],
        "g": F(gB), "state": {"mu": "0.0", "delta0": F(b["delta0"]), "delta_inf": "0.0",
                              "kappa": "0.0"},
        "residual_norm": ctx.nstr(b["residual"], 3),
        "check_chaotic_kappa_below_g_B": checks}
    log("  g_B = %s  (res %s)" % (F(gB), ctx.nstr(b["residual"], 3)))

    log("homogeneous -> structured stationary boundary at g < 1")
    hb = []
    for g in ["0.3", "0.7"]:
        r = R.hom_struct_boundary(g)
        # check: structured kappa -> 0 as overlap -> 1+ (vary Mn at Mm = 1.1)
        chk = []
        for d in ["0.01", "0.001"]:
            Mn = (1 + ctx.mpf(d)) / ctx.mpf("1.1")
            q = R.Params(g=g, Mm="1.1", Mn="2", Sm="1", Sn="1").replace(Mn=Mn)
            k = ctx.sqrt(ctx.mpf(d))
            s = R.solve_stationary(q, [ctx.mpf("1.1") * k, k * k, k])
            chk.append({"overlap_minus_1": d, "kappa": F(s["kappa"]),
                        "kappa^2/(overlap-1)": F(s["kappa"] ** 2 / ctx.mpf(d), 12)})
        hb.append({"g": g, "delta0_hom": F(r["delta0_hom"]), "overlap_c": F(r["overlap_c"]),
                   "check_structured_kappa_above": chk})
        log("  g = %s: overlap_c = %s; %s" % (g, F(r["overlap_c"]), chk))
    transitions["homogeneous_to_structured_stationary"] = {
        "definition": "overlap * [phi'](0, delta0_hom(g)) = 1; for g < 1 delta0_hom = 0 so "
                      "overlap_c = 1 exactly", "points": hb}
    timing["transitions"] = time.time() - t

    t = time.time()
    ver = {} if args.skip_verification else verification(args.quad_nested)
    # outlier matrix checks on a no-input structured state and on the bistable middle state
    p = R.Params(g="1.5", **base)
    s = R.solve_stationary(p, ["0.92", "2.02", "0.83"])
    ver["outlier_matrix"] = [check_outlier_matrix(p, s)]
    s = R.solve_stationary(pb, ["-0.2357", "0.3384", "-0.2143"])   # bistable middle state
    ver["outlier_matrix"].append(check_outlier_matrix(pb, s))
    log("  outlier matrix check: %s" % ver["outlier_matrix"])
    timing["verification"] = time.time() - t

    total = time.time() - T0
    doc = {
        "description": "High-precision reference solutions of the unit-rank DMF (current "
                       "model, phi = tanh), generated by tests/reference/generate.py from "
                       "mp_reference.py (pure mpmath, independent of dmftools).",
        "conventions": {
            "Mm, Mn, MI": "means of m, n, I",
            "Sm, Sn": "standard deviations of m, n",
            "SI": "STANDARD DEVIATION of I (Var(I) = SI^2)",
            "Smn, SmI, SnI": "covariances Cov(m,n), Cov(m,I), Cov(n,I)",
            "overlap": "m^T n / N = Mm Mn + Smn",
            "mu": "Mm kappa + MI",
            "V_s": "Var(kappa m + I) = Sm^2 kappa^2 + 2 kappa SmI + SI^2",
            "delta0": "total variance of x over units (and time, in chaos)",
            "delta0_quenched": "delta0 - V_s = g^2 [phi^2] (stationary)",
            "kappa": "Mn [phi] + (Smn kappa + SnI) [phi'], averages at (mu, delta0)",
            "stationary": "delta0 = g^2 [phi^2] + V_s",
            "chaotic": "delta_inf = g^2 [[phi]]_2 + V_s;  (delta0^2 - delta_inf^2)/2 = "
                       "g^2 ([Phi^2] - [[Phi]]_2) + V_s (delta0 - delta_inf), Phi = log cosh",
            "stability": "bulk radius^2 = g^2 [phi'^2]; outliers = eigenvalues of the "
                         "Jacobian of (kappa, delta0_quenched) -> (Mn[phi] + (Smn kappa + "
                         "SnI)[phi'], g^2 [phi^2]) (authors' EigStationary reduced to 2x2); "
                         "stable iff bulk < 1 and outliers outside the bulk have Re < 1. "
                         "At kappa = mu = 0 the matrix is diagonal: overlap [phi'] (the "
                         "kappa outlier) and g^2([phi'^2] + [phi phi'']) (the variance "
                         "mode; it can leave the disc only when bulk > 1 already).",
            "admissibility": "chaotic solution admissible iff V''(delta_inf) = -1 + g^2 "
                             "[[phi',phi']]_2 < 0",
            "residual_norm": "max-norm of the residual of the equations in 'unknowns' "
                             "(chaotic: energy equation divided by delta0 - delta_inf)",
        },
        "precision": {"working_dps": R.WORK_DPS, "reported_significant_digits": R.REPORT_DIGITS},
        "points": points,
        "transitions": transitions,
        "verification": ver,
        "timing_seconds": {k: round(v, 1) for k, v in timing.items()},
        "total_seconds": round(total, 1),
    }
    with open(args.out, "w") as fh:
        json.dump(doc, fh, indent=1)
    log("wrote %s (%d points); timing %s; total %.1f s" % (
        args.out, len(points), {k: round(v, 1) for k, v in timing.items()}, total))


if __name__ == "__main__":
    main()
