"""Phase diagrams: solutions over a (g, overlap) grid, regions and located boundaries.

``solvers -> phase``: this is the first layer that imports matplotlib (inside ``plot``).
"""

from ._diagram import REGIONS, PhaseDiagram, phase_diagram

__all__ = ["phase_diagram", "PhaseDiagram", "REGIONS"]
