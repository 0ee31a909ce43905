"""Command-line interface: ``dmftools derive ...`` (also ``python -m dmftools``).

Bad input exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import json
import sys

from .model import RankOne
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
    return parser


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
    try:
        text = _derive(args)
    except (ValueError, TypeError) as exc:
        print(f"dmftools: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
