"""Argument checks shared by the solver entry points (errors name the argument)."""

from __future__ import annotations

import numpy as np

from ..model import GaussianLowRank
from ..symbolic.derive import REGIMES

STATES = ("stationary", "chaotic")


def check_net(net):
    if not isinstance(net, GaussianLowRank):
        raise TypeError(f"net: expected a GaussianLowRank (e.g. dmftools.RankOne(...)), got {type(net).__name__}")


def check_states(states) -> tuple:
    if isinstance(states, str):
        states = (states,)
    for s in states:
        if s not in STATES:
            raise ValueError(f"states: each must be one of {STATES}, got {s!r}")
    return tuple(states)


def check_regime(regime):
    if regime not in REGIMES:
        raise ValueError(f"regime: must be one of {REGIMES}, got {regime!r}")


def check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_span(span, param) -> tuple[float, float]:
    """An increasing, finite ``(start, stop)``; ``g`` spans must start at >= 0."""
    try:
        lo, hi = (float(v) for v in span)
    except (TypeError, ValueError):
        raise TypeError(f"span: expected two numbers (start, stop), got {span!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"span: must be finite, got {span!r}")
    if not lo < hi:
        raise ValueError(f"span: must be increasing (start < stop), got {span!r}")
    if param == "g" and lo < 0:
        raise ValueError(f"span: g must be >= 0, got {span!r}")
    return lo, hi


def check_param(param, g, parameters) -> None:
    """``param`` is ``"g"`` (then no ``g``) or a model parameter (then ``g`` is required)."""
    if param == "g":
        if g is not None:
            raise TypeError("g: do not pass g when param='g' (it is the swept parameter)")
        return
    if param not in parameters:
        raise ValueError(f"param: must be 'g' or one of {tuple(parameters)[1:]}, got {param!r}")
    if g is None:
        raise TypeError(f"g: required when param={param!r}")
