"""Learning-rate schedules: callables mapping the optimizer's step count to a learning rate.

An optimizer given a schedule evaluates it at ``optimizer.iterations``, the number
of steps already taken (0 for the first update). Schedules are plain Python: they
return floats and hold no arrays, so they serve CPU and GPU alike and serialise
with :func:`serialize` / :func:`deserialize`.
"""
from __future__ import annotations

import abc
import bisect
import math
import numbers
from typing import Any, Callable, Sequence


def _check_number(owner: str, name: str, value: Any, condition: str) -> float:
    """``value`` as a float, checked against ``condition``: ">= 0" or "> 0"."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{owner}: {name} must be a finite number, got {value!r}")
    if (condition == ">= 0" and value < 0) or (condition == "> 0" and value <= 0):
        raise ValueError(f"{owner}: {name} must be {condition}, got {value!r}")
    return float(value)


def _check_steps(owner: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class LearningRateSchedule(abc.ABC):
    """Base class: ``schedule(step) -> learning rate`` plus a plain-data config."""

    @abc.abstractmethod
    def __call__(self, step: int) -> float:
        """The learning rate for the update that follows ``step`` completed steps."""

    @abc.abstractmethod
    def get_config(self) -> dict:
        """The constructor arguments as JSON-able data."""

    @classmethod
    def from_config(cls, config: dict) -> "LearningRateSchedule":
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class ExponentialDecay(LearningRateSchedule):
    """lr(step) = initial_learning_rate · decay_rate ^ (step / decay_steps).

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``, so the
    rate drops in steps every ``decay_steps`` updates.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: the number of steps over which the rate is multiplied by ``decay_rate``.
        decay_rate: the factor per ``decay_steps`` (below 1 decays).
        staircase: decay in discrete jumps.
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False):
        owner = type(self).__name__
        self.initial_learning_rate = _check_number(owner, "initial_learning_rate", initial_learning_rate, ">= 0")
        self.decay_steps = _check_steps(owner, "decay_steps", decay_steps, 1)
        self.decay_rate = _check_number(owner, "decay_rate", decay_rate, "> 0")
        self.staircase = bool(staircase)

    def __call__(self, step: int) -> float:
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * self.decay_rate ** exponent

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class StepDecay(LearningRateSchedule):
    """lr(step) = initial_learning_rate · factor ^ floor(step / step_size).

    PyTorch's ``StepLR``: the rate is multiplied by ``factor`` every ``step_size`` steps.

    Args:
        initial_learning_rate: the rate for the first ``step_size`` steps.
        step_size: steps between two drops.
        factor: the multiplier at each drop.
    """

    def __init__(self, initial_learning_rate: float, step_size: int, factor: float = 0.1):
        owner = type(self).__name__
        self.initial_learning_rate = _check_number(owner, "initial_learning_rate", initial_learning_rate, ">= 0")
        self.step_size = _check_steps(owner, "step_size", step_size, 1)
        self.factor = _check_number(owner, "factor", factor, "> 0")

    def __call__(self, step: int) -> float:
        return self.initial_learning_rate * self.factor ** (step // self.step_size)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "step_size": self.step_size,
                "factor": self.factor}


class PiecewiseConstantDecay(LearningRateSchedule):
    """A constant rate between boundaries.

    lr(step) = values[0] for step <= boundaries[0], values[i] for
    boundaries[i-1] < step <= boundaries[i], and values[-1] after the last boundary.

    Args:
        boundaries: strictly increasing step counts.
        values: one more rate than there are boundaries.
    """

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]):
        owner = type(self).__name__
        self.boundaries = [_check_steps(owner, "each boundary", b, 0) for b in boundaries]
        self.values = [_check_number(owner, "each value", v, ">= 0") for v in values]
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(f"{owner}: values must have one more entry than boundaries, got "
                             f"{len(self.boundaries)} boundaries and {len(self.values)} values")
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"{owner}: boundaries must be strictly increasing, got {self.boundaries}")

    def __call__(self, step: int) -> float:
        return self.values[bisect.bisect_left(self.boundaries, step)]

    def get_config(self) -> dict:
        return {"boundaries": list(self.boundaries), "values": list(self.values)}


class CosineDecay(LearningRateSchedule):
    """Cosine annealing (Loshchilov & Hutter 2017, "SGDR"), with optional linear warm-up.

    Without ``warmup_target``, with d = min(step, decay_steps) / decay_steps:

        lr(step) = initial_learning_rate · ((1 − alpha) · ½ (1 + cos(π d)) + alpha)

    With ``warmup_target`` (Keras 3 semantics), the rate first rises linearly from
    ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps`` steps
    (Goyal et al. 2017), then the cosine above runs from ``warmup_target`` over the
    next ``decay_steps`` steps (step counted from the end of the warm-up).

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: length of the cosine part, in steps.
        alpha: the final rate as a fraction of the rate the cosine starts from.
        warmup_target: the rate reached at the end of the warm-up; None for no warm-up.
        warmup_steps: length of the warm-up (needs ``warmup_target``).
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 warmup_target: float | None = None, warmup_steps: int = 0):
        owner = type(self).__name__
        self.initial_learning_rate = _check_number(owner, "initial_learning_rate", initial_learning_rate, ">= 0")
        self.decay_steps = _check_steps(owner, "decay_steps", decay_steps, 1)
        self.alpha = _check_number(owner, "alpha", alpha, ">= 0")
        self.warmup_target = (None if warmup_target is None
                              else _check_number(owner, "warmup_target", warmup_target, ">= 0"))
        self.warmup_steps = _check_steps(owner, "warmup_steps", warmup_steps, 0)
        # Keras ignores warmup_steps without a target; a warm-up to nowhere is surely a mistake.
        if self.warmup_steps > 0 and self.warmup_target is None:
            raise ValueError(f"{owner}: warmup_steps={warmup_steps} needs warmup_target, the rate to warm up to")

    def _cosine(self, step: int, start: float) -> float:
        fraction = min(step, self.decay_steps) / self.decay_steps
        return start * ((1.0 - self.alpha) * 0.5 * (1.0 + math.cos(math.pi * fraction)) + self.alpha)

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            return self._cosine(step, self.initial_learning_rate)
        if step < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return self.initial_learning_rate + rise * step / self.warmup_steps
        return self._cosine(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class LinearWarmup(LearningRateSchedule):
    """lr(step) = min(1, step / warmup_steps) · base(step).

    Ramps linearly from 0 at step 0 to the wrapped rate at ``warmup_steps``, then
    follows it (Goyal et al. 2017). The wrapped schedule sees the same step count,
    so a decay it describes is not delayed by the warm-up.

    Args:
        schedule: a constant rate or a schedule to warm up into.
        warmup_steps: length of the ramp, in steps.
    """

    def __init__(self, schedule: "float | Callable[[int], float]", warmup_steps: int):
        owner = type(self).__name__
        if not callable(schedule):
            schedule = _check_number(owner, "schedule", schedule, ">= 0")
        self.schedule = schedule
        self.warmup_steps = _check_steps(owner, "warmup_steps", warmup_steps, 1)

    def __call__(self, step: int) -> float:
        base = self.schedule(step) if callable(self.schedule) else self.schedule
        return min(1.0, step / self.warmup_steps) * base

    def get_config(self) -> dict:
        schedule = serialize(self.schedule) if callable(self.schedule) else self.schedule
        return {"schedule": schedule, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config: dict) -> "LinearWarmup":
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = deserialize(config["schedule"])
        return cls(**config)


_SCHEDULES = {cls.__name__: cls for cls in
              (ExponentialDecay, StepDecay, PiecewiseConstantDecay, CosineDecay, LinearWarmup)}


def serialize(schedule: LearningRateSchedule) -> dict:
    """``{"class_name": ..., "config": ...}`` for a schedule, the form :func:`deserialize` reads."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"only LearningRateSchedule objects can be serialised, got {schedule!r}; "
                        f"use one of {', '.join(_SCHEDULES)} instead of a plain function")
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(data: dict) -> LearningRateSchedule:
    """Build a schedule from the output of :func:`serialize`."""
    if not isinstance(data, dict) or "class_name" not in data:
        raise TypeError(f"a serialised schedule must be a dict with 'class_name' and 'config', got {data!r}")
    name = data["class_name"]
    if name not in _SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; valid: {', '.join(_SCHEDULES)}")
    return _SCHEDULES[name].from_config(data.get("config", {}))
