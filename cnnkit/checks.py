"""Validity checks that wait for the next host read instead of forcing one.

A check is a boolean computed where the data lives ("every label is in range", "the
loss is finite"). Reading it on the host costs nothing for a NumPy array, so there
:func:`require` reads it at once and raises. On a GPU a read stops the host until the
device has caught up, which inside a training step would cap throughput; there the
training loop opens a :class:`StepChecks` and the checks of each step are kept on
the device: they gate that step's optimizer update (see ``Optimizer.step(apply_if=...)``)
and are all read together at the loop's next progress refresh, which raises naming the
epoch and batch of the first failure. The design follows PyTorch AMP's ``found_inf``:
a failed step is skipped on the device, and every later step too until the host looks.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from . import backend

_current: "StepChecks | None" = None


def _text(message: Any) -> str:
    return message() if callable(message) else message


def require(ok: Any, message: "str | Callable[[], str]", error: type = ValueError) -> None:
    """Raise ``error(message)`` unless ``ok`` (a 0-d boolean array) holds.

    ``message`` may be a callable, built only on failure (it may read the data then).
    Inside a training step the step's :class:`StepChecks` takes the check instead.
    """
    if _current is not None:
        _current.check(ok, message, error)
    elif not bool(ok):
        raise error(_text(message))


def collecting() -> bool:
    """Whether a training loop collects the checks (it then checked the inputs' values itself)."""
    return _current is not None


@dataclass
class _Step:
    epoch: int
    batch: int
    iterations: int  # the optimizer's step count before this step, restored when it failed
    checks: list = field(default_factory=list)  # (ok on the device, message, error type)


class StepFailure(Exception):
    """A failed check of one step, as read at a refresh (the loop turns it into the user's error)."""

    def __init__(self, step: _Step, message: str, error: type):
        super().__init__(message)
        self.epoch, self.batch, self.iterations = step.epoch, step.batch, step.iterations
        self.message, self.error = message, error


class StepChecks:
    """The device-side checks of the steps since the last refresh, and the flag that gates updates."""

    def __init__(self):
        self.pending: list[_Step] = []
        self.healthy = None  # device boolean: every step so far passed (None: nothing recorded on a device)

    @contextmanager
    def step(self, epoch: int, batch: int, iterations: int) -> Iterator[None]:
        """Collect the checks made while computing one step."""
        global _current
        self.pending.append(_Step(epoch, batch, iterations))
        previous, _current = _current, self
        try:
            yield
        finally:
            _current = previous

    def check(self, ok: Any, message: "str | Callable[[], str]", error: type = ValueError) -> None:
        """Read a host check now (raising :class:`StepFailure`); keep a device check for the refresh."""
        step = self.pending[-1]
        if not backend.is_cuda_array(ok):
            if not bool(ok):
                raise StepFailure(step, _text(message), error)
            return
        step.checks.append((ok, message, error))
        self.healthy = ok if self.healthy is None else self.healthy & ok

    def apply_flag(self) -> Any:
        """The device boolean an update is gated on, or None when every check so far was read on the host."""
        return self.healthy

    def read(self) -> None:
        """Read every pending check in one transfer; raise :class:`StepFailure` for the first that failed."""
        steps, self.pending = self.pending, []
        flags = [ok for step in steps for ok, _, _ in step.checks]
        if not flags:
            return
        xp = backend.get_array_module(flags[0])
        values = iter(backend.to_numpy(xp.stack(flags)).tolist())
        for step in steps:
            for _, message, error in step.checks:
                if not next(values):
                    raise StepFailure(step, _text(message), error)
