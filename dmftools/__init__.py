"""dmftools: dynamical mean-field theory of low-rank plus random recurrent networks.

The data path reads like the physics, one subpackage per step::

    model  ->  symbolic (SymPy derivation)  ->  numeric (lambdify + quadrature)  ->  solvers
    model  ->  simulate (finite networks)   ->  statistics

Examples
--------
>>> import dmftools as dmf
>>> net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
>>> eqs = dmf.derive(net, state="stationary", regime="current")
>>> eqs.unknown_names
('mu', 'delta0', 'kappa')
"""

from .model import GaussianLowRank, RankOne, TransferFunction, X, transfer_function
from .numeric import CompiledEquations
from .simulate import (Estimate, GridSimulation, Simulation, SimulationEnsemble, pulse_input, simulate,
                       simulate_grid, step_input)
from .phase import PhaseDiagram, phase_diagram
from .solvers import Branch, ContinuationResult, Event, Solution, SolveResult, Transition, continuation, solve, transitions
from .symbolic import GaussAvg, GaussCov, MeanFieldEquations, derive
from .symbolic.stability import StabilityEquations, derive_stability

__version__ = "0.1.0"

__all__ = [
    "GaussianLowRank", "RankOne", "TransferFunction", "transfer_function", "X",
    "derive", "MeanFieldEquations", "GaussAvg", "GaussCov", "derive_stability", "StabilityEquations",
    "solve", "Solution", "SolveResult", "transitions", "Transition",
    "continuation", "ContinuationResult", "Branch", "Event", "phase_diagram", "PhaseDiagram",
    "CompiledEquations",
    "simulate", "simulate_grid", "Simulation", "GridSimulation", "SimulationEnsemble", "Estimate",
    "step_input", "pulse_input",
    "__version__",
]
