"""Solvers: every mean-field solution, its stability, continuation and transitions.

``model -> symbolic -> compiled -> solvers``: the solvers call compiled residuals and
Jacobians only; nothing here imports matplotlib.
"""

from ._continuation import Branch, ContinuationResult, Event, continuation
from ._results import Solution, SolveResult, StateSolutions
from ._solve import solve
from ._transitions import Transition, transitions

__all__ = ["solve", "Solution", "SolveResult", "StateSolutions", "transitions", "Transition",
           "continuation", "ContinuationResult", "Branch", "Event"]
