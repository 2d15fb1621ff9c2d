"""Callbacks that watch the logs and act on them: early stopping, learning-rate control, NaN guard.

Every callback that watches a quantity names it with ``monitor`` (a key of the epoch
logs, such as ``"val_loss"`` or ``"val_accuracy"``) and a ``mode``: ``"min"`` when
lower is better, ``"max"`` when higher is better, ``"auto"`` to infer it from the name
(see :func:`infer_mode`). Keys that callbacks add to the logs (``lr``) are seen only by
the callbacks after them in the ``callbacks`` list.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Callable

from ..optimizers.base import check_float
from .base import Callback

_MAXIMIZED_NAMES = ("acc", "auc", "f1", "precision", "recall")
_MODES = ("auto", "min", "max")


def infer_mode(monitor: str) -> str:
    """``"max"`` for names containing acc, auc, f1, precision or recall; ``"min"`` otherwise (losses)."""
    name = monitor.lower()
    return "max" if any(part in name for part in _MAXIMIZED_NAMES) else "min"


def check_int(owner: str, name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or a clear error if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Monitor:
    """A quantity of the logs and which direction counts as an improvement.

    Args:
        owner: the callback's name, for messages.
        monitor: the log key to watch.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        min_delta: an improvement must beat the reference by more than ``|min_delta|``.
    """

    def __init__(self, owner: str, monitor: str, mode: str = "auto", min_delta: float = 0.0):
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"{owner}: monitor must be a log key such as 'val_loss', got {monitor!r}")
        if mode not in _MODES:
            raise ValueError(f"{owner}: mode must be one of {', '.join(map(repr, _MODES))}, got {mode!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) or not math.isfinite(min_delta):
            raise TypeError(f"{owner}: min_delta must be a finite number, got {min_delta!r}")
        self.owner = owner
        self.name = monitor
        self.mode = infer_mode(monitor) if mode == "auto" else mode
        self.min_delta = abs(float(min_delta))

    @property
    def worst(self) -> float:
        """A starting reference that any finite value improves on."""
        return math.inf if self.mode == "min" else -math.inf

    def improved(self, current: float, reference: float) -> bool:
        """Whether ``current`` beats ``reference`` by more than ``min_delta`` (never for NaN)."""
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def value(self, logs: dict | None) -> float | None:
        """The monitored value in ``logs``, or None with a warning naming the keys there are."""
        logs = logs or {}
        value = logs.get(self.name)
        if value is None:
            available = ", ".join(sorted(logs)) or "none"
            warnings.warn(f"{self.owner}: monitor={self.name!r} is not in the logs, so this epoch is skipped; "
                          f"available keys: {available}", RuntimeWarning, stacklevel=3)
            return None
        return float(value)


class EarlyStopping(Callback):
    """Stop training when the monitored quantity stops improving.

    After each epoch the monitored value is compared with the best so far; when
    ``patience`` epochs in a row bring no improvement, ``fit`` stops.

    Args:
        monitor: the log key to watch.
        min_delta: a change of at most ``|min_delta|`` does not count as an improvement.
        patience: epochs without improvement after which training stops.
        mode: ``"auto"``, ``"min"`` or ``"max"`` (see :func:`infer_mode`).
        baseline: if given, the patience counter restarts only for values that beat
            it as well as the best so far, so training stops after ``patience``
            epochs unless the baseline is beaten.
        restore_best_weights: at the end of training, copy back the weights of the
            epoch with the best monitored value (kept as device arrays, so this is exact).
        start_from_epoch: epochs of warm-up before the quantity is watched.
        verbose: 1 prints when training stops and when weights are restored.

    Attributes:
        stopped_epoch: the epoch (0-based) at which training was stopped; 0 if it was not.
        best_epoch: the epoch (0-based) with the best monitored value.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0, mode: str = "auto",
                 baseline: float | None = None, restore_best_weights: bool = False, start_from_epoch: int = 0,
                 verbose: int = 0):
        super().__init__()
        self.monitor = Monitor("EarlyStopping", monitor, mode, min_delta)
        self.patience = check_int("EarlyStopping", "patience", patience, 0)
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = check_int("EarlyStopping", "start_from_epoch", start_from_epoch, 0)
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.best = self.monitor.worst
        self.best_epoch = 0
        self.best_weights: list | None = None
        self.stopped_epoch = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        current = self.monitor.value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # Until some epoch improves (a NaN value never does), the first watched one is the best.
            self._keep_weights(epoch)
        self.wait += 1
        if self.monitor.improved(current, self.best):
            self.best = current
            self._keep_weights(epoch)
            if self.baseline is None or self.monitor.improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def _keep_weights(self, epoch: int) -> None:
        self.best_epoch = epoch
        if self.restore_best_weights:
            self.best_weights = [weight.data.copy() for weight in self.model.weights]

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping; {self.monitor.name} has not improved on "
                  f"{self.best:.6g} for {self.wait} epoch(s)", flush=True)
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring the weights from the end of the best epoch: {self.best_epoch + 1}", flush=True)
            # In place, so that anything holding the weight arrays (optimizer, CUDA graphs) sees the change.
            for weight, best in zip(self.model.weights, self.best_weights):
                weight.data[...] = best


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when the monitored quantity stops improving.

    Adds ``lr``, the rate used during the epoch, to the epoch logs.

    Args:
        monitor: the log key to watch.
        factor: new_lr = max(lr · factor, min_lr); in (0, 1).
        patience: epochs without improvement after which the rate is reduced.
        mode: ``"auto"``, ``"min"`` or ``"max"`` (see :func:`infer_mode`).
        min_delta: a change of at most ``|min_delta|`` does not count as an improvement.
        cooldown: epochs after a reduction that are not counted towards the next one.
            (Keras' code counts the last cooldown epoch; this follows its documentation.)
        min_lr: the rate is never reduced below this.
        verbose: 1 prints each reduction.
    """

    adds_log_keys = ("lr",)  # fit lists it among the epoch logs' keys

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, mode: str = "auto",
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0, verbose: int = 0):
        super().__init__()
        owner = "ReduceLROnPlateau"
        self.monitor = Monitor(owner, monitor, mode, min_delta)
        self.factor = check_float(owner, "factor", factor, "(0, inf)")
        if self.factor >= 1.0:
            raise ValueError(f"{owner}: factor must be in (0, 1) so that the rate decreases, got {factor!r}")
        self.patience = check_int(owner, "patience", patience, 0)
        self.cooldown = check_int(owner, "cooldown", cooldown, 0)
        self.min_lr = check_float(owner, "min_lr", min_lr, "[0, inf)")
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self.best = self.monitor.worst
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = float(optimizer.learning_rate)
        if logs is not None:
            logs["lr"] = lr
        current = self.monitor.value(logs)
        if current is None:
            return
        in_cooldown = self.cooldown_counter > 0
        if in_cooldown:
            self.cooldown_counter -= 1
        if self.monitor.improved(current, self.best):
            self.best = current
            self.wait = 0
            return
        if in_cooldown:
            return
        self.wait += 1
        if self.wait >= self.patience and lr > self.min_lr:
            new_lr = max(lr * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr
            if self.verbose:
                print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing the learning rate from {lr:.6g} "
                      f"to {new_lr:.6g}", flush=True)
            self.cooldown_counter = self.cooldown
            self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule(epoch, lr)``.

    Adds ``lr``, the rate used during the epoch, to the epoch logs.

    Args:
        schedule: a function of the epoch index (0-based) and the current rate that
            returns the rate for this epoch, e.g. ``lambda epoch, lr: lr * 0.9``.
        verbose: 1 prints the rate at each epoch.
    """

    adds_log_keys = ("lr",)  # fit lists it among the epoch logs' keys

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function (epoch, lr) -> lr, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = float(optimizer.learning_rate)
        new_lr = self.schedule(epoch, lr)
        if isinstance(new_lr, bool) or not isinstance(new_lr, numbers.Real) or not math.isfinite(new_lr) \
                or new_lr < 0:
            raise ValueError(f"LearningRateScheduler: schedule(epoch={epoch}, lr={lr!r}) must return a finite "
                             f"non-negative float, got {new_lr!r}")
        optimizer.learning_rate = float(new_lr)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting the learning rate to {float(new_lr):.6g}",
                  flush=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.learning_rate)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite, saying which batch it was.

    ``fit`` checks every batch's loss itself, before that batch's update is applied:
    without this callback a non-finite loss raises ``FloatingPointError``; with it,
    training stops instead (the weights are those from before the bad batch) and the
    epoch ends as usual. On a GPU the loss is read at the progress refreshes, so the
    message comes a few batches later, but the batches in between were not applied either.
    It also stops on a non-finite ``loss`` in the batch logs it is given.
    """

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def stop(self, epoch: int, batch: int, reason: str) -> None:
        """Called by ``fit`` when the loss of ``batch`` in ``epoch`` is not finite."""
        print(f"TerminateOnNaN: epoch {epoch + 1}, batch {batch}: {reason}; stopping training", flush=True)
        self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.stop(self.epoch, batch, f"the loss is {loss}")
