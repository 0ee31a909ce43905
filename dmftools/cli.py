"""Command-line interface: ``dmftools derive|solve|transitions|continuation|phase-diagram`` (also ``python -m dmftools``).

Bad input exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import json
import sys

from .model import RankOne
from .phase import REGIONS
from .symbolic import derive
from .symbolic.equations import to_latex

__all__ = ["main", "build_parser"]

_RANK_ONE = {"Mm": 1.1, "Mn": 2.0, "Sm": 1.0, "Sn": 1.0, "Smn": 0.0, "MI": 0.0, "SmI": 0.0, "SnI": 0.0, "SI": 0.0}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmftools", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive", help="derive and print mean-field equations of a unit-rank network")
    d.add_argument("--state", default="stationary", choices=("stationary", "chaotic"))
    d.add_argument("--regime", default="current", choices=("current", "rate"))
    d.add_argument("--phi", default="tanh", help="transfer function: tanh, erf or sigmoid (default tanh)")
    for name, default in _RANK_ONE.items():
        d.add_argument(f"--{name}", type=float, default=default, help=f"RankOne parameter (default {default})")
    d.add_argument("--format", default="text", choices=("text", "latex", "json"), help="output format")
    d.add_argument("--steps", action="store_true", help="also print the derivation steps")

    def model_flags(p):
        p.add_argument("--regime", default="current", choices=("current", "rate"))
        p.add_argument("--phi", default="tanh", help="transfer function: tanh, erf or sigmoid (default tanh)")
        for name, default in _RANK_ONE.items():
            p.add_argument(f"--{name}", type=float, default=default, help=f"RankOne parameter (default {default})")

    s = sub.add_parser("solve", help="every stationary and chaotic solution at one parameter point")
    s.add_argument("--g", type=float, required=True, help="random connectivity strength")
    s.add_argument("--state", default="both", choices=("both", "stationary", "chaotic"))
    s.add_argument("--json", action="store_true", help="print the solutions as JSON")
    model_flags(s)
    t = sub.add_parser("transitions", help="located transitions along one parameter")
    t.add_argument("--param", default="g", help="parameter to vary: g or a RankOne parameter (default g)")
    t.add_argument("--span", type=float, nargs=2, default=(0.01, 4.0), metavar=("START", "STOP"))
    t.add_argument("--samples", type=int, default=41, help="sweep resolution used to bracket transitions")
    t.add_argument("--g", type=float, default=None, help="g, when --param is not g")
    t.add_argument("--json", action="store_true")
    model_flags(t)
    c = sub.add_parser("continuation", help="solution branches along one parameter (pseudo-arclength)")
    c.add_argument("--param", default="g", help="parameter to vary: g or a RankOne parameter (default g)")
    c.add_argument("--span", type=float, nargs=2, default=(0.01, 4.0), metavar=("START", "STOP"))
    c.add_argument("--g", type=float, default=None, help="g, when --param is not g")
    c.add_argument("--state", default="both", choices=("both", "stationary", "chaotic"))
    c.add_argument("--seeds", type=int, default=9, help="parameter values where branches are seeded")
    c.add_argument("--plot", default=None, metavar="PREFIX", help="also write PREFIX.png (kappa against the parameter)")
    c.add_argument("--json", action="store_true", help="print branches (with their points) and events as JSON")
    model_flags(c)
    pd = sub.add_parser("phase-diagram", help="theoretical phase diagram over g x overlap (PNG + NetCDF)")
    pd.add_argument("--g-range", type=float, nargs=2, default=(0.01, 4.0), metavar=("MIN", "MAX"))
    pd.add_argument("--g-num", type=int, default=25)
    pd.add_argument("--overlap-range", type=float, nargs=2, default=(0.0, 4.0), metavar=("MIN", "MAX"))
    pd.add_argument("--overlap-num", type=int, default=25)
    pd.add_argument("--out", default="phase", help="output prefix: PREFIX.png and PREFIX.nc (default 'phase')")
    pd.add_argument("--no-boundaries", action="store_true", help="skip locating the boundary curves")
    pd.add_argument("--workers", type=int, default=1,
                    help="worker processes for the grid solve (default 1: in-process)")
    pd.add_argument("--bands", type=int, default=None,
                    help="bands of the overlap axis solved as separate tasks (needs --workers > 1; "
                         "default: --workers)")
    model_flags(pd)
    return parser


def _net(args):
    return RankOne(**{k: getattr(args, k) for k in _RANK_ONE}, phi=args.phi)


def _solve(args) -> str:
    from .solvers import solve

    states = ("stationary", "chaotic") if args.state == "both" else (args.state,)
    result = solve(_net(args), g=args.g, states=states, regime=args.regime)
    if args.json:
        return json.dumps([s.as_dict() for s in result], indent=2)
    return repr(result)


def _transitions(args) -> str:
    from .solvers import transitions

    ts = transitions(_net(args), args.param, tuple(args.span), g=args.g, regime=args.regime, samples=args.samples)
    if args.json:
        return json.dumps([t.as_dict() for t in ts], indent=2)
    return "\n".join(str(t) for t in ts) if ts else "no transitions found"


def _continuation(args) -> str:
    from .solvers import continuation

    states = ("stationary", "chaotic") if args.state == "both" else (args.state,)
    res = continuation(_net(args), args.param, tuple(args.span), g=args.g, states=states, regime=args.regime,
                       seeds=args.seeds)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        fig, _ = res.plot("kappa")
        fig.savefig(f"{args.plot}.png", dpi=130, bbox_inches="tight")
    if args.json:
        return json.dumps({"param": res.param, "span": list(res.span), "parameters": res.parameters,
                           "branches": [b.as_dict() for b in res], "events": [e.as_dict() for e in res.events]},
                          indent=2)
    return repr(res)


def _phase_diagram(args) -> str:
    import numpy as np

    import matplotlib

    matplotlib.use("Agg")
    from .phase import phase_diagram
    from .phase._diagram import _default_bands

    for name in ("g_num", "overlap_num"):
        if getattr(args, name) < 2:
            raise ValueError(f"--{name.replace('_', '-')}: must be >= 2")
    g = np.linspace(*args.g_range, args.g_num)
    overlap = np.linspace(*args.overlap_range, args.overlap_num)
    if args.workers < 1:
        raise ValueError(f"--workers: must be >= 1, got {args.workers}")
    if args.bands is not None and args.workers == 1:
        raise ValueError("--bands: needs --workers > 1")
    options = dict(regime=args.regime, boundaries=not args.no_boundaries)
    if args.workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers) as executor:
            bands = _default_bands(args.workers, args.overlap_num) if args.bands is None else args.bands
            pd = phase_diagram(_net(args), g=g, overlap=overlap, executor=executor, bands=bands, **options)
    else:
        pd = phase_diagram(_net(args), g=g, overlap=overlap, **options)
    fig, _ = pd.plot()
    fig.savefig(f"{args.out}.png", dpi=130, bbox_inches="tight")
    written = [f"{args.out}.png"]
    try:
        pd.to_xarray().to_netcdf(f"{args.out}.nc")
        written.append(f"{args.out}.nc")
    except ImportError:
        np.savez(f"{args.out}.npz", g=pd.g, overlap=pd.overlap, region=pd.region)
        written.append(f"{args.out}.npz (install the xarray extra for NetCDF)")
    counts = {name: int((pd.region == code).sum()) for code, name in REGIONS.items() if (pd.region == code).any()}
    return "wrote " + ", ".join(written) + "\nregions (grid points): " + json.dumps(counts)


def _derive(args) -> str:
    net = RankOne(**{k: getattr(args, k) for k in _RANK_ONE}, phi=args.phi)
    eqs = derive(net, state=args.state, regime=args.regime)
    if args.format == "json":
        return json.dumps({
            "state": eqs.state, "regime": eqs.regime, "unknowns": list(eqs.unknown_names),
            "equations": [{"lhs": str(e.lhs), "rhs": str(e.rhs), "latex": f"{to_latex(e.lhs)} = {to_latex(e.rhs)}"}
                          for e in eqs.equations],
            "parameters": {k: v for k, v in zip(eqs.parameters, eqs.parameter_values.values())},
        }, indent=2)
    out = eqs.latex() if args.format == "latex" else str(eqs)
    if args.steps:
        out = eqs.describe_steps(latex=args.format == "latex") + "\n\n" + out
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"derive": _derive, "solve": _solve, "transitions": _transitions, "continuation": _continuation,
                "phase-diagram": _phase_diagram}
    try:
        text = handlers[args.command](args)
    except (ValueError, TypeError) as exc:
        print(f"dmftools: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
