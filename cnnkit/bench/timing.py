"""Timing a callable properly: first call apart, warm-up, repeats, median and spread.

One measurement of ``fn`` is

1. the first call, timed on its own: on a GPU it pays for compiling or loading
   kernels, creating library handles and growing memory pools, so it is reported as
   ``first_call_ms`` and never mixed into the run time;
2. ``warmup`` untimed-for-the-statistics calls (caches, clocks and autotuners settle);
3. ``repeat`` timed calls, each timed separately, so the spread is visible.

Each call is timed by a *clock*: :class:`HostClock` reads ``time.perf_counter``
around a CPU call; :class:`CudaEventClock` records CUDA events on the current
stream before and after the call and reads the time between them on the device,
so asynchronous launches are timed by when the GPU finished, not when Python
returned. The statistics are the median (the figure reported), min, max, quartiles,
the interquartile range (the spread reported) and mean/stdev.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np


class Clock(Protocol):
    """Times one call of a function, in milliseconds."""

    def time_ms(self, fn: Callable[[], Any]) -> float: ...


class HostClock:
    """Wall-clock time of a host call with ``time.perf_counter`` (or any ``now`` in seconds)."""

    def __init__(self, now: Callable[[], float] = time.perf_counter):
        self.now = now

    def time_ms(self, fn: Callable[[], Any]) -> float:
        start = self.now()
        fn()
        return (self.now() - start) * 1e3


class CudaEventClock:
    """Device time of a call: CUDA events recorded around it on the current stream.

    Works for CuPy and, because both use the legacy default stream unless told
    otherwise, for work that PyTorch enqueues on its default stream; PyTorch cases
    still use their own event pair (see :mod:`cnnkit.bench.torch_ref`).

    Args:
        cupy: the CuPy module (from :func:`cnnkit.backend.cupy`).
    """

    def __init__(self, cupy):
        self.cupy = cupy
        self.start, self.end = cupy.cuda.Event(), cupy.cuda.Event()

    def time_ms(self, fn: Callable[[], Any]) -> float:
        stream = self.cupy.cuda.get_current_stream()
        self.start.record(stream)
        fn()
        self.end.record(stream)
        self.end.synchronize()
        return float(self.cupy.cuda.get_elapsed_time(self.start, self.end))


@dataclass
class Timing:
    """Times of one measured function, in milliseconds.

    Attributes:
        times_ms: every timed repeat, in order (warm-up and first call excluded).
        first_call_ms: the first call, which includes compilation and one-time set-up.
        warmup: warm-up calls made between the first call and the timed ones.
        requested_repeat: repeats asked for; fewer ran when the time budget ran out.
    """

    times_ms: list[float]
    first_call_ms: float
    warmup: int
    requested_repeat: int

    @property
    def repeats(self) -> int:
        return len(self.times_ms)

    def _percentile(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.times_ms, dtype=np.float64), q))

    @property
    def median_ms(self) -> float:
        return self._percentile(50)

    @property
    def q1_ms(self) -> float:
        return self._percentile(25)

    @property
    def q3_ms(self) -> float:
        return self._percentile(75)

    @property
    def iqr_ms(self) -> float:
        """Interquartile range: the spread of the middle half of the repeats."""
        return self.q3_ms - self.q1_ms

    @property
    def min_ms(self) -> float:
        return float(min(self.times_ms))

    @property
    def max_ms(self) -> float:
        return float(max(self.times_ms))

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.times_ms))

    @property
    def stdev_ms(self) -> float:
        """Sample standard deviation (0 for a single repeat)."""
        return float(np.std(self.times_ms, ddof=1)) if self.repeats > 1 else 0.0

    @property
    def spread(self) -> float:
        """IQR relative to the median (0.02 means the middle half lies within 2 % of it)."""
        median = self.median_ms
        return self.iqr_ms / median if median > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "median_ms": self.median_ms, "min_ms": self.min_ms, "max_ms": self.max_ms,
            "q1_ms": self.q1_ms, "q3_ms": self.q3_ms, "iqr_ms": self.iqr_ms,
            "mean_ms": self.mean_ms, "stdev_ms": self.stdev_ms, "spread": self.spread,
            "repeats": self.repeats, "requested_repeat": self.requested_repeat, "warmup": self.warmup,
            "first_call_ms": self.first_call_ms, "times_ms": list(self.times_ms),
        }


def measure(fn: Callable[[], Any], clock: Clock, warmup: int, repeat: int, *, max_seconds: float | None = None,
            min_repeat: int = 3, before_each: Callable[[], Any] | None = None) -> Timing:
    """Time ``fn``: the first call apart, then ``warmup`` calls, then ``repeat`` timed calls.

    Args:
        fn: the work to time; its result is ignored.
        clock: how one call is timed (:class:`HostClock`, :class:`CudaEventClock`).
        warmup: calls after the first one whose times are thrown away.
        repeat: timed calls wanted.
        max_seconds: time budget. Warm-up stops after half of it (at least one call
            is made); the timed calls stop once it is spent on them and at least
            ``min_repeat`` are in. ``Timing.warmup`` and ``Timing.repeats`` say how
            many ran. ``None``: no budget.
        min_repeat: the fewest timed calls made, whatever the budget.
        before_each: called untimed before every warm-up and timed call (e.g. to flush
            the caches so that a memory-bound kernel reads from DRAM each time).

    Returns:
        A :class:`Timing`.
    """
    if warmup < 0 or repeat < 1 or min_repeat < 1:
        raise ValueError(f"measure: need warmup >= 0, repeat >= 1 and min_repeat >= 1, "
                         f"got warmup={warmup}, repeat={repeat}, min_repeat={min_repeat}")
    if before_each is not None:
        before_each()
    first_call_ms = clock.time_ms(fn)
    warmed, warmup_ms = 0, 0.0
    while warmed < warmup and not (warmed and max_seconds is not None and warmup_ms / 1e3 >= max_seconds / 2):
        if before_each is not None:
            before_each()
        warmup_ms += clock.time_ms(fn)
        warmed += 1
    times: list[float] = []
    for _ in range(repeat):
        if before_each is not None:
            before_each()
        times.append(clock.time_ms(fn))
        if max_seconds is not None and len(times) >= min_repeat and sum(times) / 1e3 >= max_seconds:
            break
    return Timing(times, first_call_ms, warmed, repeat)
