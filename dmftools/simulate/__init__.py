"""Reference simulator: finite networks drawn from a model, integrated with numpy.

The data path of this layer is ``model -> draw a realisation -> integrate -> statistics``:

- :func:`simulate` integrates one network (current or rate model, optionally seed 000's
  general form with time constant ``tau``, input ``u(t)`` through ``B`` and readout
  ``z = W r``) and returns a :class:`Simulation` with the trajectory and its statistics
  (``kappa``, ``temporal_std``, ``delta0``, ``delta_inf``, ``autocorrelation``,
  ``activity_along``); with a sequence of seeds, a :class:`SimulationEnsemble` whose
  statistics are :class:`Estimate` objects (mean over seeds and standard error);
- :func:`simulate_grid` sweeps (g, overlap), optionally also the input strength, on one shared
  realisation per seed, many networks per GEMM, chunks sent to any executor; it returns a
  :class:`GridSimulation`;
- :func:`draw_network` gives the realisation itself (``chi``, loadings, input, ``x0``);
- :func:`step_input` and :func:`pulse_input` build piecewise-constant time courses.

Examples
--------
>>> import dmftools as dmf
>>> from dmftools.simulate import simulate
>>> sim = simulate(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0), g=0.5, N=200, T=20, rng=0)
>>> sim.overlap.shape, sim.nominal_overlap.shape
((1, 1), (1, 1))
"""

from ._grid import simulate_grid
from ._inputs import PiecewiseConstant, pulse_input, step_input
from ._integrate import simulate
from ._network import NetworkRealisation, draw_network
from ._statistics import Estimate, GridSimulation, Simulation, SimulationEnsemble

__all__ = [
    "simulate", "simulate_grid", "Simulation", "SimulationEnsemble", "Estimate", "GridSimulation",
    "draw_network", "NetworkRealisation", "step_input", "pulse_input", "PiecewiseConstant",
]
