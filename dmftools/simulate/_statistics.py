"""Result objects of the reference simulator and the statistics measured on them.

All statistics use the time points ``t >= transient``. Population averages are over units
``i`` (written ``<.>_i``) and time; "total" variances include the static (quenched) spread
of the units' time averages, as in the mean-field ``Delta_0`` and ``Delta_inf``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from ._network import NetworkRealisation

__all__ = ["Simulation", "GridSimulation"]


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

    def kappa(self) -> np.ndarray:
        """Time average of ``kappa_k(t)`` after the transient, shape (R,).

        Examples
        --------
        >>> import dmftools as dmf
        >>> from dmftools.simulate import simulate
        >>> net = dmf.RankOne(Mm=1.1, Mn=2.0, Sm=1.0, Sn=1.0)
        >>> sim = simulate(net, g=0.5, N=400, T=40, transient=20, rng=1)
        >>> sim.kappa().shape
        (1,)
        """
        return np.asarray(self.kappa_t(), dtype=np.float64).mean(axis=0)

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
            f"T={self.T}, dt={self.dt}, transient={self.transient}, record={self.record!r}, "
            f"seed={self.seed}, overlap={np.round(self.overlap, 4).tolist()} "
            f"(nominal {np.round(self.nominal_overlap, 4).tolist()}))"
        )


@dataclass(frozen=True, repr=False)
class GridSimulation:
    """A (g, overlap) sweep: one network per grid point, statistics after the transient.

    Attributes
    ----------
    g : ndarray, shape (G,)
    overlap : ndarray, shape (O,)
        Nominal structure strength ``m_1^T n_1 / N`` (set by scaling the mean of ``n_1``).
    chaoticity : ndarray, shape (G, O)
        ``<std_t(x_i)>_i`` of the recorded variable.
    kappa : ndarray, shape (G, O, R)
        Time average of ``kappa_k(t)``.
    realised_overlap : ndarray, shape (G, O)
        ``m_1^T n_1 / N`` of the realisation at each point.
    mean_n : ndarray, shape (O,)
        The mean of ``n_1`` used for each overlap.
    seed : int
    """

    g: np.ndarray
    overlap: np.ndarray
    chaoticity: np.ndarray
    kappa: np.ndarray
    realised_overlap: np.ndarray
    mean_n: np.ndarray
    N: int
    T: float
    dt: float
    transient: float
    regime: str
    method: str
    record: str
    seed: int
    dtype: str
    meta: dict = field(default_factory=dict)

    def to_xarray(self):
        """The sweep as an :class:`xarray.Dataset` with dimensions ``g``, ``overlap``, ``k``.

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
        R = self.kappa.shape[-1]
        return xr.Dataset(
            {
                "chaoticity": (("g", "overlap"), self.chaoticity),
                "kappa": (("g", "overlap", "k"), self.kappa),
                "realised_overlap": (("g", "overlap"), self.realised_overlap),
                "mean_n": (("overlap",), self.mean_n),
            },
            coords={"g": self.g, "overlap": self.overlap, "k": np.arange(1, R + 1)},
            attrs={
                "N": self.N, "T": self.T, "dt": self.dt, "transient": self.transient,
                "regime": self.regime, "method": self.method, "record": self.record,
                "seed": self.seed, "dtype": self.dtype,
            },
        )

    def plot(self, ax: Optional[Sequence] = None):
        """Seed 004's two panels: chaoticity and ``|kappa_1|`` over (g, overlap).

        Parameters
        ----------
        ax : sequence of two matplotlib Axes, optional
            Created (one figure, two panels) when not given.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), constrained_layout=True)
        else:
            axes = list(ax)
            if len(axes) != 2:
                raise ValueError(f"ax: expected two Axes (chaoticity, kappa), got {len(axes)}")
            fig = axes[0].figure
        panels = [
            (self.chaoticity, r"chaoticity $\langle \mathrm{std}_t(x_i) \rangle_i$"),
            (np.abs(self.kappa[..., 0]), r"structure $|\kappa|$"),
        ]
        for a, (values, title) in zip(axes, panels):
            mesh = a.pcolormesh(self.g, self.overlap, values.T, shading="auto")
            fig.colorbar(mesh, ax=a)
            a.set_xlabel("random strength $g$")
            a.set_ylabel(r"structure strength $m^T n / N$")
            a.set_title(title)
        return fig

    def __repr__(self):
        return (
            f"GridSimulation({self.regime!r}, {len(self.g)} x {len(self.overlap)} points, N={self.N}, "
            f"T={self.T}, dt={self.dt}, transient={self.transient}, method={self.method!r}, "
            f"dtype={self.dtype}, seed={self.seed})"
        )
