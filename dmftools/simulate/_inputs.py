"""Time-varying inputs: the external drive ``s(t) I + B u(t)`` at every Runge-Kutta stage.

Two ways to give a time course, for the multiplier ``s(t)`` of the model's input vector ``I``
(``input=``) and for the input ``u(t)`` of the seed-000 form (``u=``, through ``B``):

- an array sampled on the time grid, ``steps`` or ``steps + 1`` rows (``t = 0, dt, ...``),
  held constant over each step (zero-order hold: a step given on the grid is represented
  exactly, and Euler sees exactly the samples);
- a callable ``t -> value``, evaluated at every stage time ``(k + c) dt`` of the scheme, so
  smooth inputs keep the order of Heun and RK4. :func:`step_input` and :func:`pulse_input`
  build the usual piecewise-constant ones; they also give their left limits, used at the
  stages that end a step (``c = 1``), so a switch on a grid point acts from that point on
  and not already inside the step before it (which would cost RK4 an O(dt) error).
  A plain callable with a jump on a grid point is seen there by those end-of-step stages.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np

__all__ = ["PiecewiseConstant", "step_input", "pulse_input", "DriveSchedule"]

#: Relative tolerance with which switching times are compared with stage times, so that a
#: switch placed on a grid point (``t = k dt``, computed with round-off) is never missed.
SWITCH_RTOL = 1e-9


class PiecewiseConstant:
    """A right-continuous piecewise-constant time course ``t -> value``.

    ``value(t) = levels[j]`` for ``switch_times[j-1] <= t < switch_times[j]`` (``levels[0]``
    before the first switch). Picklable, so it can travel to executor workers.

    Parameters
    ----------
    switch_times : sequence of float, increasing
    levels : sequence of scalars or arrays, one more than ``switch_times``
        All of the same shape (a scalar for a multiplier ``s(t)``, shape ``(P,)`` for ``u``).

    Examples
    --------
    >>> course = PiecewiseConstant([1.0, 2.0], [0.0, 3.0, 0.5])
    >>> [float(course(t)) for t in (0.5, 1.0, 1.5, 2.0, 9.0)]
    [0.0, 3.0, 3.0, 0.5, 0.5]
    """

    def __init__(self, switch_times: Sequence[float], levels: Sequence):
        times = np.asarray(switch_times, dtype=float)
        if times.ndim != 1 or not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise ValueError(f"switch_times: expected finite, strictly increasing times, got {switch_times!r}")
        values = [np.asarray(level, dtype=float) for level in levels]
        if len(values) != times.size + 1:
            raise ValueError(f"levels: expected {times.size + 1} levels for {times.size} switch times, got {len(values)}")
        shapes = {v.shape for v in values}
        if len(shapes) != 1:
            raise ValueError(f"levels: all levels must have the same shape, got {sorted(shapes)}")
        if not all(np.all(np.isfinite(v)) for v in values):
            raise ValueError("levels: all levels must be finite")
        self.switch_times = times
        self.levels = np.stack(values)
        # stage times k*dt carry round-off: a switch within SWITCH_RTOL of t counts as at t
        slack = SWITCH_RTOL * np.maximum(1.0, np.abs(times))
        self._on_from = times - slack
        self._on_after = times + slack

    def __call__(self, t: float):
        """The value at ``t`` (right-continuous)."""
        return self._level(int(np.searchsorted(self._on_from, t, side="right")))

    def left_limit(self, t: float):
        """The value just before ``t`` (a switch at ``t`` itself is not yet on).

        Examples
        --------
        >>> s = step_input(1.0)
        >>> s(1.0), s.left_limit(1.0), s.left_limit(1.1)
        (1.0, 0.0, 1.0)
        """
        return self._level(int(np.searchsorted(self._on_after, t, side="left")))

    def _level(self, j: int):
        level = self.levels[j]
        return float(level) if level.ndim == 0 else level.copy()

    def __repr__(self):
        return f"PiecewiseConstant(switch_times={self.switch_times.tolist()}, levels={self.levels.tolist()})"


def step_input(onset: float, amplitude=1.0, baseline=0.0) -> PiecewiseConstant:
    """A step: ``baseline`` before ``onset``, ``amplitude`` from ``onset`` on.

    Parameters
    ----------
    onset : float
        Switching time (right-continuous: the value at ``onset`` is ``amplitude``).
    amplitude, baseline : float or array_like
        Levels after and before the step; arrays (shape ``(P,)``) for ``u`` with ``P`` inputs.

    Examples
    --------
    >>> s = step_input(5.0, amplitude=2.0, baseline=1.0)
    >>> s(4.9), s(5.0)
    (1.0, 2.0)
    >>> step_input(1.0, amplitude=[1.0, -1.0])(2.0)
    array([ 1., -1.])
    """
    amplitude = np.asarray(amplitude, dtype=float)
    return PiecewiseConstant([onset], [np.broadcast_to(baseline, amplitude.shape), amplitude])


def pulse_input(onset: float, duration: float, amplitude=1.0, baseline=0.0) -> PiecewiseConstant:
    """A pulse: ``amplitude`` on ``[onset, onset + duration)``, ``baseline`` elsewhere.

    Examples
    --------
    >>> p = pulse_input(1.0, 0.5, amplitude=3.0)
    >>> p(0.9), p(1.0), p(1.4), p(1.5)
    (0.0, 3.0, 3.0, 0.0)
    """
    if not np.isfinite(duration) or duration <= 0:
        raise ValueError(f"duration: must be > 0, got {duration}")
    amplitude = np.asarray(amplitude, dtype=float)
    base = np.broadcast_to(baseline, amplitude.shape)
    return PiecewiseConstant([onset, onset + duration], [base, amplitude, base])


TimeCourse = Union[None, np.ndarray, Sequence, Callable[[float], object]]


class DriveSchedule:
    """The external drive ``s(t) I + B u(t)`` as an (N, 1) column at stage ``(k, c)``.

    ``input`` is the multiplier ``s`` (default 1), ``u`` the seed-000 input through ``B``
    (default none). With neither, the same constant column (``I`` itself) is returned at every
    stage; callers must not modify it.
    """

    def __init__(self, input_vector: np.ndarray, steps: int, dt: float, dtype, input: TimeCourse = None,
                 B: Optional[np.ndarray] = None, u: TimeCourse = None):
        self.dt = dt
        self.steps = steps
        self.dtype = np.dtype(dtype)
        self.vector = np.asarray(input_vector, dtype=self.dtype)[:, None]
        self.multiplier = _time_course("input", input, steps, dt, shape=()) if input is not None else None
        if B is None:
            self.B, self.u = None, None
        else:
            self.B = np.asarray(B, dtype=self.dtype).reshape(B.shape[0], -1)
            self.u = _time_course("u", u, steps, dt, shape=tuple(B.shape[1:]))
        self.constant = self.multiplier is None and self.B is None

    def __call__(self, k: int, frac: float) -> np.ndarray:
        if self.constant:
            return self.vector
        if self.multiplier is None:
            column = self.vector.copy()
        else:
            column = self.multiplier(k, frac) * self.vector
        if self.B is not None:
            u = np.asarray(self.u(k, frac), dtype=self.dtype).reshape(-1, 1)
            column += self.B @ u
        return column


def _time_course(name: str, course: TimeCourse, steps: int, dt: float, shape: tuple):
    """``(k, c) -> value`` for an array on the time grid or a callable of ``t``; validated here."""
    if callable(course):
        try:
            first = np.asarray(course(0.0), dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: the callable must return a real {_describe(shape)} at t = 0: {exc}") from None
        _check_value(name, first, shape, "the callable's value at t = 0")

        ends = getattr(course, "left_limit", None)

        def evaluate(k, frac):
            t = (k + frac) * dt
            value = np.asarray(ends(t) if frac == 1.0 and ends is not None else course(t), dtype=float)
            _check_value(name, value, shape, f"the callable's value at t = {t:g}")
            return value if shape else float(value)

        return evaluate
    try:
        values = np.asarray(course, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}: expected an array sampled on the time grid or a callable t -> {_describe(shape)}, "
            f"got {type(course).__name__}"
        ) from None
    if values.shape not in ((steps,) + shape, (steps + 1,) + shape):
        raise ValueError(
            f"{name}: expected an array of shape ({steps}, {', '.join(map(str, shape))}) or "
            f"({steps + 1}, {', '.join(map(str, shape))}) (one row per step or per time point, "
            f"steps = T/dt = {steps}) or a callable t -> {_describe(shape)}, got shape {values.shape}"
            .replace(", )", ",)")
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: all values must be finite")
    last = values.shape[0] - 1
    if shape:
        return lambda k, frac: values[min(k, last)]
    return lambda k, frac: float(values[min(k, last)])


def _describe(shape: tuple) -> str:
    return "scalar" if not shape else f"array of shape {shape}"


def _check_value(name, value, shape, what):
    if value.shape != shape:
        raise ValueError(f"{name}: expected {_describe(shape)}, {what} has shape {value.shape}")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name}: {what} is not finite")
