"""Theoretical phase diagrams in the (g, structure strength) plane."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import GaussianLowRank
from ..solvers._results import classify_stationary
from ..solvers._solve import compiled, prepare_parameters, solve, solve_parallel
from .._progress import ProgressBar
from ._boundaries import line_indices, trace_boundaries

__all__ = ["PhaseDiagram", "phase_diagram", "REGIONS"]

#: Region codes of :attr:`PhaseDiagram.region` (M&O 2018, Fig. 1).
REGIONS = {0: "homogeneous stationary", 1: "structured stationary", 2: "homogeneous chaotic",
           3: "structured chaotic", -1: "no solution found"}
#: Overlap values per band at least (executor path): each band is solved as a grid of its own.
OVERLAP_PER_BAND = 4


def _default_bands(workers: int, n_overlap: int) -> int:
    """Bands for a pool of ``workers`` processes: one per worker, within the bound of
    :data:`OVERLAP_PER_BAND` (CLI ``--workers`` and the benchmark)."""
    return min(workers, max(1, n_overlap // OVERLAP_PER_BAND))


@dataclass
class PhaseDiagram:
    """A theoretical phase diagram over ``g`` x overlap ``m^T n / N``.

    Attributes
    ----------
    g, overlap : ndarray
        Grid axes.
    region : ndarray of int, shape (len(g), len(overlap))
        Codes of :data:`REGIONS`.
    solutions : SolveResult
        Every solution on the grid (both states), with stability.
    boundaries : dict
        ``name -> (g array, overlap array)``: boundary curves traced by two-parameter
        continuation of the augmented systems (every point exact to the corrector
        tolerance), named by transition kind and by the branch they lie on; separate
        curves of one boundary are joined with NaN. Plotted as lines.
    net, regime : model and regime; ``varied`` names the parameter that sets the overlap.
    """

    g: np.ndarray
    overlap: np.ndarray
    region: np.ndarray
    solutions: object
    boundaries: dict
    net: GaussianLowRank
    regime: str
    varied: str

    def boundary_curves(self) -> dict:
        """``{name: (g, overlap)}`` for overlays (e.g. :meth:`GridSimulation.plot`)."""
        return dict(self.boundaries)

    def plot(self, ax=None, *, boundaries: bool = True, legend: bool = True):
        """Regions as a colour map and the located boundary curves; returns ``(fig, ax)``.

        Never calls ``plt.show()``.

        Examples
        --------
        >>> import numpy as np, dmftools as dmf
        >>> pd = dmf.phase_diagram(dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0),
        ...                        g=np.linspace(0.2, 2.6, 7), overlap=np.linspace(0.2, 3.4, 5))
        >>> fig, ax = pd.plot()
        >>> ax.get_xlabel()
        'g'
        """
        import matplotlib.pyplot as plt
        from matplotlib.colors import BoundaryNorm, ListedColormap

        if ax is None:
            fig, ax = plt.subplots(figsize=(8.5, 4.5), layout="constrained")
        else:
            fig = ax.figure
        colors = ["#d9d9d9", "#f2f2f2", "#9ecae1", "#fdae6b", "#fd8d3c"]  # -1, 0, 1, 2, 3
        cmap = ListedColormap(colors)
        norm = BoundaryNorm(np.arange(-1.5, 4.5), cmap.N)
        ax.pcolormesh(self.g, self.overlap, self.region.T, cmap=cmap, norm=norm, shading="nearest")
        if boundaries:
            for name, (gb, ob) in self.boundaries.items():
                if len(gb):
                    ax.plot(gb, ob, "-", lw=1.5, label=name)
        ax.set_xlabel("g")
        ax.set_ylabel("structure strength $m^T n / N$")
        present = sorted(set(np.unique(self.region)))
        handles = [plt.Rectangle((0, 0), 1, 1, color=colors[c + 1]) for c in present]
        labels = [REGIONS[c] for c in present]
        if legend:
            lines, line_labels = ax.get_legend_handles_labels()
            ax.legend(handles + lines, labels + line_labels, fontsize=7, loc="upper left",
                      bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        ax.set_xlim(self.g.min(), self.g.max())
        ax.set_ylim(self.overlap.min(), self.overlap.max())
        return fig, ax

    def to_xarray(self):
        """A labelled :class:`xarray.Dataset`: ``region`` over ``(g, overlap)``, every
        solution variable, branch labels and ``found`` masks, boundary points, and attrs.

        Needs the ``xarray`` extra.
        """
        ds = self.solutions.to_xarray()
        ds = ds.rename({d: n for d, n in zip(self._dims(ds), ("g", "overlap")) if d != n})
        ds = ds.assign_coords(g=("g", self.g), overlap=("overlap", self.overlap))
        ds["region"] = (("g", "overlap"), self.region)
        ds["region"].attrs["codes"] = "; ".join(f"{k}: {v}" for k, v in REGIONS.items())
        for i, (name, (gb, ob)) in enumerate(self.boundaries.items()):
            dim = f"boundary{i}_point"
            ds[f"boundary{i}_g"] = ((dim,), np.asarray(gb))
            ds[f"boundary{i}_overlap"] = ((dim,), np.asarray(ob))
            ds[f"boundary{i}_g"].attrs["name"] = name
        ds.attrs["overlap_varied_through"] = self.varied
        return ds

    def _dims(self, ds):
        for name in ("stationary_found", "chaotic_found"):
            if name in ds:
                return ds[name].dims[1:]
        return ()


def phase_diagram(net: GaussianLowRank, g=None, overlap=None, *, regime: str = "current",
                  spacing: float | None = None, boundaries: bool = True, progress=None,
                  executor=None, bands: int | None = None, **params) -> PhaseDiagram:
    r"""Theoretical phase diagram over ``g`` x structure strength ``m^T n / N``.

    Every grid point is solved (stationary and chaotic, all branches, stability) by
    :func:`dmftools.solve` in one vectorised pass, and labelled with the four regions of
    M&O 2018 Fig. 1. Boundaries are curves: transitions located along a few grid rows
    and columns (augmented systems of :func:`dmftools.transitions`) seed a two-parameter
    pseudo-arclength continuation of each transition condition in ``(g, Mn)``, so every
    point of a curve solves its augmented system to ~1e-13, independent of the grid.

    The overlap is varied through ``Mn`` (unit rank): ``Mn = (overlap - Cov(m, n)) / Mm``.

    Parameters
    ----------
    net : GaussianLowRank
        Unit-rank model with ``Mm != 0``.
    g, overlap : array_like
        Increasing 1-D axes (defaults: ``linspace(0.01, 4, 41)`` and ``linspace(0, 4, 41)``).
    regime : {"current", "rate"}
    spacing : float, optional
        Quadrature lattice spacing.
    boundaries : bool
        Trace the boundary curves.
    progress : bool or None
        Progress bar (tqdm, extra ``progress``) over the stages; default: only when
        stderr is a terminal.
    executor : object with ``.map(fn, iterable)``, optional
        Run the solve as tasks on this executor: one per state (stationary, chaotic) and
        band. A ``concurrent.futures.ProcessPoolExecutor`` uses the cores of one machine
        (threads do not help: the solver is bound by the interpreter); a
        ``dask.distributed.Client`` goes beyond it. Workers that do not inherit this
        process (spawn, dask) derive and compile the equations once each. Default: one
        in-process solve.
    bands : int, optional
        With an executor: split the overlap axis into this many contiguous bands (at most
        one per 4 overlap values), so that ``2 * bands`` tasks run. Default 1: the result
        is then identical to the in-process solve's. With more bands the roots of the bands
        are joined and flooded across the seams in-process; each band has its own coarse
        multi-start, so results may differ where that finds different roots, but they do
        not depend on the executor.
    **params
        Other model parameters (scalars).

    Returns
    -------
    PhaseDiagram

    Examples
    --------
    >>> import numpy as np, dmftools as dmf
    >>> net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
    >>> pd = dmf.phase_diagram(net, g=np.linspace(0.2, 2.6, 7), overlap=np.linspace(0.2, 3.4, 5))
    >>> pd.region.shape
    (7, 5)
    >>> sorted(pd.boundaries)[0]
    'chaotic bifurcation (structured chaos ends)'
    """
    if not isinstance(net, GaussianLowRank):
        raise TypeError(f"net: expected a GaussianLowRank, got {type(net).__name__}")
    if net.rank != 1:
        raise ValueError(f"net: phase diagrams over the overlap need a unit-rank model, got rank {net.rank}")
    mm = float(params.get("Mm", net.means[0]))
    if mm == 0:
        raise ValueError("Mm: must be non-zero (the overlap is varied through Mn = (overlap - Cov(m, n)) / Mm)")
    g = np.linspace(0.01, 4.0, 41) if g is None else g
    overlap = np.linspace(0.0, 4.0, 41) if overlap is None else overlap
    axes = {}
    for name, a in (("g", g), ("overlap", overlap)):
        try:
            arr = np.asarray(a, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"{name}: expected a 1-D array of numbers") from None
        if arr.ndim != 1 or arr.size < 2:
            raise ValueError(f"{name}: must be a 1-D array with at least 2 values, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: must be finite")
        if not np.all(np.diff(arr) > 0):
            raise ValueError(f"{name}: must be strictly increasing")
        axes[name] = arr
    g, overlap = axes["g"], axes["overlap"]
    if g[0] < 0:
        raise ValueError("g: must be >= 0")
    if g.size * overlap.size > 250_000:
        raise ValueError(f"g/overlap: {g.size} x {overlap.size} points is more than one diagram handles "
                         "(250000); use a coarser grid")
    if "Mn" in params:
        raise TypeError("Mn: set by the overlap axis in a phase diagram; do not pass it")
    cov_mn = float(net.cov[0, 1])
    mn = (overlap - cov_mn) / mm
    gg, mnn = np.meshgrid(g, mn, indexing="ij")
    stages = 1 + (len(line_indices(g.size, 9)) + len(line_indices(mn.size, 9)) + 1 if boundaries else 0)
    bar = ProgressBar(stages, "phase_diagram", "stage", progress)
    bar.update(0, f"solving {g.size} x {overlap.size} points")
    if executor is None:
        if bands is not None:
            raise ValueError("bands: applies with an executor only")
        result = solve(net, g=gg, regime=regime, spacing=spacing, Mn=mnn, **params)
    else:
        if not callable(getattr(executor, "map", None)):
            raise TypeError(f"executor: expected an object with a .map method, got {type(executor).__name__}")
        bands = 1 if bands is None else bands
        if isinstance(bands, bool) or not isinstance(bands, (int, np.integer)) or bands < 1:
            raise ValueError(f"bands: must be a positive integer, got {bands!r}")
        if bands > overlap.size // OVERLAP_PER_BAND:
            raise ValueError(f"bands: at most one band per {OVERLAP_PER_BAND} overlap values "
                             f"({max(1, overlap.size // OVERLAP_PER_BAND)} here), got {bands}")
        cf = compiled(net, "stationary", regime, spacing)
        shape, flat = prepare_parameters(cf, gg, {"Mn": mnn, **params})
        result = solve_parallel(net, flat, shape, executor=executor, bands=int(bands), regime=regime, spacing=spacing)
    bar.update(1, "solved the grid")
    region = classify_stationary(result["stationary"], result["chaotic"])
    boundaries_out = {}
    if boundaries:
        flat = {k: v.reshape(-1) for k, v in result.parameters.items()}
        curves = trace_boundaries(net, result, g, mn, flat, mm=mm, cov_mn=cov_mn, regime=regime, spacing=spacing,
                                  bar=bar)
        for name in sorted(curves):
            # separate curves of one boundary are joined with NaN (lines break there)
            parts = [np.vstack([c, [np.nan, np.nan]]) for c in curves[name]]
            joined = np.vstack(parts)[:-1]
            boundaries_out[name] = (joined[:, 0], joined[:, 1])
    bar.close()
    return PhaseDiagram(g, overlap, region, result, boundaries_out, net, regime, "Mn")

