"""Result objects of the reference simulator and the statistics measured on them.

All statistics use the time points ``t >= transient``. Population averages are over units
``i`` (written ``<.>_i``) and time; "total" variances include the static (quenched) spread
of the units' time averages, as in the mean-field ``Delta_0`` and ``Delta_inf``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np

from ._network import NetworkRealisation

__all__ = ["Simulation", "SimulationEnsemble", "Estimate", "GridSimulation"]


@dataclass(frozen=True, repr=False)
class Simulation:
    """One simulated network: the recorded trajectory and statistics measured on it.

    Attributes
    ----------
    times : ndarray, shape (S,)
        ``0, dt, ..., T``.
    trajectory : ndarray, shape (S, N)
        The recorded variable (``record``: ``x`` for the current model, ``r`` or
        ``y = J r + I`` for the rate model) at every time point.
    kappa_trajectory : ndarray, shape (S, R)
        ``kappa_k(t) = n_k^T phi(x) / N`` (current) or ``n_k^T r / N`` (rate), every time point.
    network : NetworkRealisation
        The drawn ``chi``, loadings, input and initial condition.
    overlap : ndarray, shape (R, R)
        Realised ``m_k^T n_l / N``; compare with ``nominal_overlap`` (the model's).
    seed : int
        Reproduces the run: ``simulate(..., rng=seed)``.
    record : str
        Which variable ``trajectory`` holds: ``"x"``, ``"r"`` or ``"y"`` (see
        :attr:`record_meaning`).
    tau : float
        The time constant.
    readout : ndarray, shape (S,) or (S, Q), or None
        ``z(t) = W r(t)`` at every time point when a readout ``W`` was given
        (``r = phi(x)`` in the current model, the state ``r`` in the rate model).
    """

    times: np.ndarray
    trajectory: np.ndarray
    kappa_trajectory: np.ndarray
    network: NetworkRealisation
    g: float
    N: int
    T: float
    dt: float
    transient: float
    regime: str
    method: str
    record: str
    seed: int
    overlap: np.ndarray
    nominal_overlap: np.ndarray
    tau: float = 1.0
    readout: Optional[np.ndarray] = None

    @property
    def record_meaning(self) -> str:
        """What the recorded variable is, in words (``x``, ``r`` or ``y = J r + e``)."""
        from ._integrate import RECORD_MEANING

        return RECORD_MEANING[self.record]

    # -- selection -------------------------------------------------------------------
    @property
    def _after(self) -> np.ndarray:
        return self.times >= self.transient - 1e-9 * self.dt

    @property
    def stationary_times(self) -> np.ndarray:
        """The time points used by the statistics (``t >= transient``)."""
        return self.times[self._after]

    def _traj(self) -> np.ndarray:
        return np.asarray(self.trajectory[self._after], dtype=np.float64)

    # -- structure -------------------------------------------------------------------
    def kappa_t(self) -> np.ndarray:
        """``kappa_k(t)`` after the transient, shape (S', R)."""
        return self.kappa_trajectory[self._after]

    def kappa(self, absolute: bool = False) -> np.ndarray:
        """Time average of ``kappa_k(t)`` after the transient, shape (R,).

        ``absolute=True`` returns ``|kappa_k|`` of the time average, invariant under the
        ``x -> -x`` symmetry of odd ``phi`` (whose sign a network picks spontaneously).

        Examples
        --------
        >>> import dmftools as dmf
        >>> from dmftools.simulate import simulate
        >>> net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
        >>> sim = simulate(net, g=0.5, N=400, T=40, transient=20, rng=1)
        >>> sim.kappa().shape
        (1,)
        """
        kappa = np.asarray(self.kappa_t(), dtype=np.float64).mean(axis=0)
        return np.abs(kappa) if absolute else kappa

    def activity_along(self, direction: Union[str, np.ndarray] = "m", average: bool = True):
        """Projection ``v^T x(t) / N`` of the recorded variable on ``m_k``, ``n_k`` or a vector.

        Parameters
        ----------
        direction : {"m", "n", "input"} or array_like of shape (N,) or (N, K)
        average : bool, default True
            Time average after the transient; ``False`` returns the time series.

        Returns
        -------
        ndarray
            Shape (R,) / (K,) / () when averaged, with a leading time axis otherwise.
        """
        if isinstance(direction, str):
            vectors = {"m": self.network.m, "n": self.network.n, "input": self.network.input}
            if direction not in vectors:
                raise ValueError(f"direction: expected 'm', 'n', 'input' or a vector, got {direction!r}")
            vec = vectors[direction]
        else:
            vec = np.asarray(direction, dtype=float)
            if vec.shape[:1] != (self.N,) or vec.ndim > 2:
                raise ValueError(f"direction: expected shape ({self.N},) or ({self.N}, K), got {vec.shape}")
        series = self._traj() @ vec / self.N
        return series.mean(axis=0) if average else series

    # -- fluctuations ----------------------------------------------------------------
    def mean(self) -> float:
        """Population and time average ``mu = <x_i(t)>``."""
        return float(self._traj().mean())

    def temporal_std(self) -> float:
        """``<std_t(x_i)>_i``, the chaoticity of seed 004 (0 at a fixed point).

        Examples
        --------
        >>> import dmftools as dmf
        >>> from dmftools.simulate import simulate
        >>> net = dmf.RankOne(Mm=1.0, Mn=0.0, Sm=1.0, Sn=1.0)
        >>> simulate(net, g=0.5, N=200, T=60, transient=40, rng=0).temporal_std() < 1e-3
        True
        """
        return float(self._traj().std(axis=0).mean())

    def delta0(self) -> float:
        """Total variance at lag 0, ``<(x_i(t) - mu)^2>_{i,t}`` (the mean-field ``Delta_0``)."""
        traj = self._traj()
        return float(((traj - traj.mean()) ** 2).mean())

    def delta_inf(self) -> float:
        """Long-lag total autocovariance: the spread of the units' time averages.

        ``<(xbar_i - mu)^2>_i`` with ``xbar_i`` the time average of unit ``i``: the limit of
        the population autocovariance at lags long compared with its decay time
        (``Delta_inf``; equal to :meth:`delta0` at a fixed point).
        """
        traj = self._traj()
        return float(((traj.mean(axis=0) - traj.mean()) ** 2).mean())

    def autocorrelation(self, max_lag: Optional[float] = None):
        """Population autocovariance ``Delta(tau) = <(x_i(t) - mu)(x_i(t + tau) - mu)>_{i,t}``.

        Total (including the static spread across units), so ``Delta(0) = delta0()``.
        Computed with an FFT over time, unbiased in the number of pairs per lag.

        Parameters
        ----------
        max_lag : float, optional
            Largest lag in time units; default half the recorded duration.

        Returns
        -------
        lags : ndarray, shape (L,)
            ``0, dt, ..., max_lag``.
        delta : ndarray, shape (L,)
        """
        traj = self._traj()
        S = traj.shape[0]
        if max_lag is None:
            max_lag = 0.5 * (S - 1) * self.dt
        if not np.isfinite(max_lag) or max_lag < 0:
            raise ValueError(f"max_lag: must be a finite time >= 0, got {max_lag}")
        L = int(round(max_lag / self.dt))
        if L > S - 1:
            raise ValueError(
                f"max_lag: {max_lag} is longer than the recorded duration after the transient "
                f"({(S - 1) * self.dt:g})"
            )
        centred = traj - traj.mean()
        size = 1 << int(np.ceil(np.log2(2 * S)))
        spectrum = np.fft.rfft(centred, n=size, axis=0)
        power = (spectrum * spectrum.conj()).real.sum(axis=1)
        raw = np.fft.irfft(power, n=size)[: L + 1]
        delta = raw / (self.N * (S - np.arange(L + 1)))
        return np.arange(L + 1) * self.dt, delta

    def __repr__(self):
        return (
            f"Simulation(regime={self.regime!r}, method={self.method!r}, N={self.N}, g={self.g}, "
            f"T={self.T}, dt={self.dt}, tau={self.tau}, transient={self.transient}, record={self.record!r}, "
            f"seed={self.seed}, overlap={np.round(self.overlap, 4).tolist()} "
            f"(nominal {np.round(self.nominal_overlap, 4).tolist()}))"
        )


def _sem(samples: np.ndarray) -> np.ndarray:
    """Standard error of the mean over axis 0 (NaN with a single sample)."""
    count = samples.shape[0]
    if count < 2:
        return np.full(samples.shape[1:], np.nan)
    return samples.std(axis=0, ddof=1) / math.sqrt(count)


@dataclass(frozen=True, repr=False)
class Estimate:
    """A statistic measured on several independent networks (one per seed).

    Attributes
    ----------
    mean : float or ndarray
        Mean over seeds.
    sem : float or ndarray
        Standard error of that mean, ``std(ddof=1) / sqrt(n_seeds)`` (NaN for one seed).
    samples : ndarray, shape (n_seeds, ...)
        The per-seed values.

    Examples
    --------
    >>> est = Estimate.from_samples([1.0, 2.0, 3.0])
    >>> est.mean, round(est.sem, 6), est.n_seeds
    (2.0, 0.57735, 3)
    >>> est
    Estimate(2 ± 0.57735, 3 seeds)
    """

    mean: Union[float, np.ndarray]
    sem: Union[float, np.ndarray]
    samples: np.ndarray

    @classmethod
    def from_samples(cls, samples) -> "Estimate":
        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim == 0 or samples.shape[0] == 0:
            raise ValueError(f"samples: expected at least one sample along axis 0, got shape {samples.shape}")
        mean, sem = samples.mean(axis=0), _sem(samples)
        if mean.ndim == 0:
            mean, sem = float(mean), float(sem)
        return cls(mean=mean, sem=sem, samples=samples)

    @property
    def n_seeds(self) -> int:
        return self.samples.shape[0]

    def __repr__(self):
        if np.ndim(self.mean) == 0:
            return f"Estimate({self.mean:.6g} ± {self.sem:.6g}, {self.n_seeds} seeds)"
        return f"Estimate(mean={np.round(self.mean, 6).tolist()}, sem={np.round(self.sem, 6).tolist()}, " \
               f"{self.n_seeds} seeds)"


class SimulationEnsemble(Sequence):
    """Independent networks of one model, one per seed: statistics with standard errors.

    Returned by :func:`dmftools.simulate.simulate` when ``rng`` is a sequence of seeds. It is
    a sequence of :class:`Simulation` (``len``, indexing, iteration), and each statistic
    method of :class:`Simulation` returns here an :class:`Estimate`: the mean over seeds, its
    standard error and the per-seed values.

    Examples
    --------
    >>> import dmftools as dmf
    >>> from dmftools.simulate import simulate
    >>> net = dmf.RankOne(Mm=1.0, Mn=0.0, Sm=1.0, Sn=1.0)
    >>> runs = simulate(net, g=2.0, N=200, T=40, transient=20, rng=range(4))
    >>> len(runs), runs.seeds
    (4, (0, 1, 2, 3))
    >>> chaos = runs.temporal_std()
    >>> chaos.samples.shape, bool(chaos.mean > 0.3), bool(0 < chaos.sem < chaos.mean)
    ((4,), True, True)
    """

    def __init__(self, runs: Sequence[Simulation]):
        runs = tuple(runs)
        if not runs or not all(isinstance(run, Simulation) for run in runs):
            raise TypeError("runs: expected a non-empty sequence of Simulation")
        self.runs = runs

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, index):
        return self.runs[index]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(run.seed for run in self.runs)

    def statistic(self, fn: Callable[[Simulation], object]) -> Estimate:
        """Apply ``fn`` to every run and return the mean over seeds and its standard error.

        Examples
        --------
        >>> import dmftools as dmf
        >>> from dmftools.simulate import simulate
        >>> runs = simulate(dmf.RankOne(Mm=1.0, Mn=0.0, Sm=1.0, Sn=1.0), g=0.5, N=50, T=2, rng=[5, 6])
        >>> runs.statistic(lambda run: run.trajectory[0].mean()).samples.shape
        (2,)
        """
        return Estimate.from_samples([fn(run) for run in self.runs])

    def kappa(self, absolute: bool = False) -> Estimate:
        """``kappa_k`` over seeds, shape (R,); ``absolute=True`` averages ``|kappa_k|``.

        Odd ``phi`` makes the sign of ``kappa`` a spontaneous choice of each network, so on a
        structured branch the signed mean over seeds tends to 0; ``absolute=True`` measures
        the branch.
        """
        return self.statistic(lambda run: run.kappa(absolute=absolute))

    def activity_along(self, direction: Union[str, np.ndarray] = "m") -> Estimate:
        """Time-averaged ``v^T x / N`` over seeds (``"m"``, ``"n"``, ``"input"``: each run's own)."""
        return self.statistic(lambda run: run.activity_along(direction))

    def mean(self) -> Estimate:
        """``mu = <x_i(t)>`` over seeds."""
        return self.statistic(Simulation.mean)

    def temporal_std(self) -> Estimate:
        """``<std_t(x_i)>_i`` over seeds."""
        return self.statistic(Simulation.temporal_std)

    def delta0(self) -> Estimate:
        """Total lag-0 variance ``Delta_0`` over seeds."""
        return self.statistic(Simulation.delta0)

    def delta_inf(self) -> Estimate:
        """Long-lag autocovariance ``Delta_inf`` over seeds."""
        return self.statistic(Simulation.delta_inf)

    def overlap(self) -> Estimate:
        """Realised ``m_k^T n_l / N`` over seeds, shape (R, R)."""
        return self.statistic(lambda run: run.overlap)

    def autocorrelation(self, max_lag: Optional[float] = None) -> tuple[np.ndarray, Estimate]:
        """``(lags, Estimate of Delta(tau))`` over seeds; see :meth:`Simulation.autocorrelation`."""
        pairs = [run.autocorrelation(max_lag) for run in self.runs]
        return pairs[0][0], Estimate.from_samples([delta for _, delta in pairs])

    def __repr__(self):
        first = self.runs[0]
        return (
            f"SimulationEnsemble({len(self)} seeds {list(self.seeds)}, regime={first.regime!r}, "
            f"N={first.N}, g={first.g}, T={first.T}, dt={first.dt}, record={first.record!r})"
        )


@dataclass(frozen=True, repr=False)
class GridSimulation:
    """A (g, overlap) or (g, overlap, input strength) sweep: one network per grid point and seed.

    Statistics are measured after the transient. Per-seed values are stored (``*_samples``,
    leading axis over seeds); the properties without suffix are means over seeds and those
    ending in ``_sem`` their standard errors (NaN with a single seed). The grid's shape
    (:attr:`shape`) is (G, O), or (G, O, K) when the input strength was swept (``K``
    values, :attr:`input_strength` an array).

    Attributes
    ----------
    g : ndarray, shape (G,)
    overlap : ndarray, shape (O,)
        Nominal structure strength ``m_1^T n_1 / N`` (set by scaling the mean of ``n_1``).
    seeds : tuple of int, length S
        One realisation per seed, shared by all grid points of that seed.
    chaoticity_samples : ndarray, shape (S,) + shape
        ``<std_t(x_i)>_i`` of the recorded variable.
    kappa_samples : ndarray, shape (S,) + shape + (R,)
        Time average of ``kappa_k(t)``.
    realised_overlap_samples : ndarray, shape (S,) + shape
        ``m_1^T n_1 / N`` of the realisation at each point (the same for every input strength).
    mean_n : ndarray, shape (O,)
        The mean of ``n_1`` used for each overlap.
    input_strength : float or ndarray of shape (K,)
        Factor ``c`` of the model's input vector (input ``c I``): a float for a 2-d grid
        (default 1, the model's input), an array for the third grid axis.
    """

    g: np.ndarray
    overlap: np.ndarray
    seeds: tuple
    chaoticity_samples: np.ndarray
    kappa_samples: np.ndarray
    realised_overlap_samples: np.ndarray
    mean_n: np.ndarray
    N: int
    T: float
    dt: float
    transient: float
    regime: str
    method: str
    record: str
    dtype: str
    meta: dict = field(default_factory=dict)
    input_strength: Union[float, np.ndarray] = 1.0

    @property
    def input_axis(self) -> bool:
        """Whether the grid has an input-strength axis (``input_strength`` was an array)."""
        return np.ndim(self.input_strength) == 1

    @property
    def shape(self) -> tuple:
        """The grid's shape: (G, O), or (G, O, K) with an input-strength axis."""
        return self.chaoticity_samples.shape[1:]

    @property
    def diverged(self) -> np.ndarray:
        """Boolean, shape (S,) + shape: networks whose state became non-finite (statistics NaN)."""
        return np.isnan(self.chaoticity_samples)

    # -- means over seeds and standard errors ------------------------------------------
    @property
    def seed(self) -> Optional[int]:
        """The seed of a single-seed sweep (``None`` when several seeds were run)."""
        return self.seeds[0] if len(self.seeds) == 1 else None

    @property
    def chaoticity(self) -> np.ndarray:
        """``<std_t(x_i)>_i``, mean over seeds, shape :attr:`shape`."""
        return self.chaoticity_samples.mean(axis=0)

    @property
    def chaoticity_sem(self) -> np.ndarray:
        return _sem(self.chaoticity_samples)

    @property
    def kappa(self) -> np.ndarray:
        """Signed ``kappa_k``, mean over seeds, shape :attr:`shape` + (R,)."""
        return self.kappa_samples.mean(axis=0)

    @property
    def kappa_sem(self) -> np.ndarray:
        return _sem(self.kappa_samples)

    @property
    def abs_kappa(self) -> np.ndarray:
        """``|kappa_k|``, mean over seeds (the structure panel; sign-symmetric), shape :attr:`shape` + (R,)."""
        return np.abs(self.kappa_samples).mean(axis=0)

    @property
    def abs_kappa_sem(self) -> np.ndarray:
        return _sem(np.abs(self.kappa_samples))

    @property
    def realised_overlap(self) -> np.ndarray:
        """Realised ``m_1^T n_1 / N``, mean over seeds, shape :attr:`shape`."""
        return self.realised_overlap_samples.mean(axis=0)

    @property
    def realised_overlap_sem(self) -> np.ndarray:
        return _sem(self.realised_overlap_samples)

    def to_xarray(self):
        """The sweep as an :class:`xarray.Dataset` with dimensions ``g``, ``overlap``, ``k``, ``seed``.

        Variables: ``chaoticity``, ``kappa``, ``abs_kappa``, ``realised_overlap`` (means over
        seeds), the same names with ``_sem`` (standard errors; NaN for one seed) and with
        ``_samples`` (per seed, leading dimension ``seed``), and ``mean_n``. A grid with an
        input-strength axis has the dimension and coordinate ``input_strength`` after
        ``overlap``; otherwise the scalar input strength is the attribute ``input_strength``.

        Raises
        ------
        ImportError
            If xarray is not installed (``pip install "dmftools[xarray]"``).
        """
        try:
            import xarray as xr
        except ImportError:
            raise ImportError(
                "to_xarray needs xarray: pip install xarray (or pip install 'dmftools[xarray]')"
            ) from None
        R = self.kappa_samples.shape[-1]
        plane = ("g", "overlap") + (("input_strength",) if self.input_axis else ())
        kdims = plane + ("k",)
        data = {"mean_n": (("overlap",), self.mean_n)}
        for name, dims, samples in (
            ("chaoticity", plane, self.chaoticity_samples),
            ("kappa", kdims, self.kappa_samples),
            ("abs_kappa", kdims, np.abs(self.kappa_samples)),
            ("realised_overlap", plane, self.realised_overlap_samples),
        ):
            data[name] = (dims, samples.mean(axis=0))
            data[f"{name}_sem"] = (dims, _sem(samples))
            data[f"{name}_samples"] = (("seed",) + dims, samples)
        coords = {"g": self.g, "overlap": self.overlap, "k": np.arange(1, R + 1),
                  "seed": np.asarray(self.seeds, dtype=np.int64)}
        attrs = {
            "N": self.N, "T": self.T, "dt": self.dt, "transient": self.transient,
            "regime": self.regime, "method": self.method, "record": self.record,
            "n_seeds": len(self.seeds), "dtype": self.dtype,
        }
        if self.input_axis:
            coords["input_strength"] = np.asarray(self.input_strength, dtype=float)
        else:
            attrs["input_strength"] = float(self.input_strength)
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def plot(self, ax: Optional[Sequence] = None, boundaries=None, input_index: Optional[int] = None):
        """Seed 004's two panels: chaoticity and ``|kappa_1|`` over (g, overlap), theory overlaid.

        Both panels show means over seeds; a grid with an input-strength axis shows the
        (g, overlap) plane at one input strength, chosen with ``input_index``.

        Parameters
        ----------
        ax : sequence of two matplotlib Axes, optional
            Created (one figure, two panels) when not given.
        boundaries : mapping or object with ``boundary_curves()``, optional
            Theory phase boundaries drawn as lines on both panels, with a legend:
            ``{name: (g values, overlap values)}`` in the sweep's coordinates, or any object
            whose ``boundary_curves()`` returns such a mapping (a theory phase diagram).
            NaNs break a curve. The panels keep the sweep's extent.
        input_index : int, optional
            Index into :attr:`input_strength` of the plane to draw: required when the grid
            has an input-strength axis, not accepted otherwise.

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import numpy as np, dmftools as dmf
        >>> from dmftools.simulate import simulate_grid
        >>> grid = simulate_grid(dmf.RankOne(Mm=1.0, Mn=0.0, Sm=1.0, Sn=1.0), g=[0.5, 1.5],
        ...                      overlap=[0.0, 2.0], N=50, T=4, transient=2)
        >>> fig = grid.plot(boundaries={"onset of chaos": ([1.0, 1.0], [0.0, 1.0])})
        >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        ['onset of chaos']
        """
        curves = _boundary_curves(boundaries)
        chaoticity, abs_kappa = self.chaoticity, self.abs_kappa[..., 0]
        note = ""
        if self.input_axis:
            K = len(self.input_strength)
            if input_index is None:
                raise ValueError(
                    f"input_index: this grid has an input-strength axis ({K} values); choose the "
                    f"(g, overlap) plane to draw with input_index=0..{K - 1}"
                )
            if isinstance(input_index, (bool, np.bool_)) or not isinstance(input_index, (int, np.integer)) \
                    or not -K <= input_index < K:
                raise ValueError(f"input_index: expected an integer index into the {K} input strengths "
                                 f"(-{K} <= input_index < {K}), got {input_index!r}")
            chaoticity, abs_kappa = chaoticity[..., input_index], abs_kappa[..., input_index]
            note = f", input strength {self.input_strength[input_index]:g}"
        elif input_index is not None:
            raise ValueError("input_index: this grid has no input-strength axis (input_strength was a scalar)")
        import matplotlib.pyplot as plt

        if ax is None:
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), constrained_layout=True)
        else:
            axes = list(ax)
            if len(axes) != 2:
                raise ValueError(f"ax: expected two Axes (chaoticity, kappa), got {len(axes)}")
            fig = axes[0].figure
        panels = [
            (chaoticity, r"chaoticity $\langle \mathrm{std}_t(x_i) \rangle_i$" + note),
            (abs_kappa, r"structure $|\kappa|$" + note),
        ]
        for index, (a, (values, title)) in enumerate(zip(axes, panels)):
            mesh = a.pcolormesh(self.g, self.overlap, values.T, shading="auto")
            fig.colorbar(mesh, ax=a)
            limits = a.get_xlim(), a.get_ylim()
            for j, (name, (gs, overlaps)) in enumerate(curves.items()):
                a.plot(gs, overlaps, color=BOUNDARY_COLOURS[j % len(BOUNDARY_COLOURS)], lw=1.8,
                       label=name if index == 0 else None)
            a.set_xlim(limits[0])
            a.set_ylim(limits[1])
            a.set_xlabel("random strength $g$")
            a.set_ylabel(r"structure strength $m^T n / N$")
            a.set_title(title)
        if curves:
            axes[0].legend(loc="best", fontsize="small", framealpha=0.7)
        return fig

    def __repr__(self):
        seeds = f"seed={self.seeds[0]}" if len(self.seeds) == 1 else f"{len(self.seeds)} seeds {list(self.seeds)}"
        if self.input_axis:
            values = np.round(np.asarray(self.input_strength), 6).tolist()
            size = f"{len(self.g)} x {len(self.overlap)} x {len(values)} points (input_strength {values})"
        else:
            size = f"{len(self.g)} x {len(self.overlap)} points"
            if self.input_strength != 1.0:
                size += f", input_strength={self.input_strength:g}"
        return (
            f"GridSimulation({self.regime!r}, {size}, N={self.N}, "
            f"T={self.T}, dt={self.dt}, transient={self.transient}, method={self.method!r}, "
            f"dtype={self.dtype}, {seeds})"
        )


#: Line colours for theory boundaries: visible on the viridis panels.
BOUNDARY_COLOURS = ("white", "tab:red", "tab:orange", "cyan", "magenta", "black")


def _boundary_curves(boundaries) -> dict:
    """Normalise ``boundaries`` to ``{name: (g array, overlap array)}``, validating shapes."""
    if boundaries is None:
        return {}
    if callable(getattr(boundaries, "boundary_curves", None)):
        boundaries = boundaries.boundary_curves()
    if not isinstance(boundaries, Mapping):
        raise TypeError(
            "boundaries: expected a mapping name -> (g values, overlap values) or an object with a "
            f"boundary_curves() method returning one, got {type(boundaries).__name__}"
        )
    curves = {}
    for name, curve in boundaries.items():
        try:
            gs, overlaps = curve
            gs, overlaps = np.asarray(gs, dtype=float), np.asarray(overlaps, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"boundaries: curve {name!r} must be a pair (g values, overlap values) of real arrays") \
                from None
        if gs.ndim != 1 or gs.shape != overlaps.shape or gs.size == 0:
            raise ValueError(
                f"boundaries: curve {name!r} needs two 1-d arrays of the same non-zero length, "
                f"got shapes {gs.shape} and {overlaps.shape}"
            )
        curves[str(name)] = (gs, overlaps)
    return curves
