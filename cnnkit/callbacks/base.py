"""The callback protocol of ``Model.fit``, the History it returns, and the progress bar."""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable

from tqdm.auto import tqdm


class Callback:
    """Hooks ``fit`` calls at the start and end of training, epochs and batches.

    ``self.model`` is the model being trained; ``self.params`` holds ``epochs``,
    ``steps`` (batches per epoch), ``batch_size`` and ``verbose``. ``logs`` are dicts
    of floats: per batch the running ``loss``; per epoch the loss and metrics, with
    ``val_`` versions when there is validation data. A callback stops training by
    setting ``self.model.stop_training = True``.

    In data-parallel training (``fit(distributed=True)``) every rank runs the
    callbacks with the same global logs; those with ``main_process_only = True``
    (the ones that print or write files) run on rank 0 only.
    """

    main_process_only = False

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass


class CallbackList:
    """Calls each hook on every callback, in order."""

    def __init__(self, callbacks: Iterable[Callback], model, params: dict):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be Callback instances, got {callback!r}")
            callback.set_model(model)
            callback.set_params(params)

    def __getattr__(self, hook: str):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call_all(*args, **kwargs):
            for callback in self.callbacks:
                getattr(callback, hook)(*args, **kwargs)

        return call_all


class History(Callback):
    """Records every epoch's logs: ``history.history["val_accuracy"][-1]``, ``history.epoch``."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def format_logs(logs: dict) -> str:
    return " - ".join(f"{key}: {value:.4f}" for key, value in logs.items() if isinstance(value, (int, float)))


class ProgressBar(Callback):
    """Keras' layout: one tqdm bar per epoch whose last state shows the epoch's final metrics.

    Used with verbose=1 on a terminal at least ``MIN_COLUMNS`` wide; otherwise (a file,
    a pipe, verbose=2, or a terminal whose width is unknown or tiny, where a bar would
    wrap or vanish) one plain line per epoch. Metrics computed only at some batches stay
    on the bar with their latest value instead of flickering in and out.
    """

    MIN_COLUMNS = 40

    main_process_only = True

    def __init__(self, verbose: int = 1, stream: Any = None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream or sys.stderr
        self.bar = None
        self.started = 0.0
        self.shown: dict = {}

    def _terminal_columns(self) -> int | None:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):  # not a terminal, or no file descriptor
            return None

    def _interactive(self) -> bool:
        if self.verbose != 1 or not (hasattr(self.stream, "isatty") and self.stream.isatty()):
            return False
        columns = self._terminal_columns()
        return columns is not None and columns >= self.MIN_COLUMNS

    def on_train_begin(self, logs=None):
        placement = self.params.get("data_placement")
        if placement:  # on a GPU: whether the data was moved there whole or is streamed
            print(placement, file=self.stream, flush=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.shown = {}
        if self._interactive():
            self.bar = tqdm(total=self.params.get("steps"), desc=f"Epoch {epoch + 1}/{self.params['epochs']}",
                            unit="batch", file=self.stream, leave=True, dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        if self.bar is not None:
            self.shown.update(logs or {})
            self.bar.update(1)
            self.bar.set_postfix_str(format_logs(self.shown), refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        if self.bar is not None:
            self.bar.set_postfix_str(format_logs(logs or {}), refresh=False)
            # The final line keeps every metric (as Keras' does) rather than being cut at the terminal's width.
            self.bar.dynamic_ncols, self.bar.ncols = None, None
            self.bar.close()
            self.bar = None
        elif self.verbose:
            print(f"Epoch {epoch + 1}/{self.params['epochs']} - {seconds:.1f}s - {format_logs(logs or {})}",
                  file=self.stream, flush=True)

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
