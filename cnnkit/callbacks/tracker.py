"""A local, offline run tracker: every ``fit`` gets a folder of plain files that plots can read back.

    runs/20250114-093012-digits_cnn/
        config.json     what was trained: the given config, model, optimizer, loss, fit
                        parameters, versions and device
        metrics.csv     one row per epoch (as CSVLogger writes it)
        metrics.jsonl   one JSON object per epoch: epoch, elapsed seconds and the logs
        results.json    written when fit returns: final and best value of every
                        metric, epochs run, wall time (absent if the run was interrupted)

:func:`load_run` reads a folder back into lists ready for plotting, :func:`list_runs`
lists the runs under a root.
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..version import __version__
from ..models.saving import atomic_write
from .base import Callback
from .loggers import CSVLogger
from .monitoring import infer_mode

CONFIG_FILE = "config.json"
METRICS_CSV = "metrics.csv"
METRICS_JSONL = "metrics.jsonl"
RESULTS_FILE = "results.json"


def _plain(value: Any) -> Any:
    """A JSON-able stand-in for values json cannot write (NumPy scalars and arrays, paths, ...)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2, default=_plain)
    atomic_write(path, lambda temporary: Path(temporary).write_text(text + "\n"))


def _describe(obj: Any) -> dict | None:
    """Class name and config of an optimizer, loss or metric; the name alone for a plain function."""
    if obj is None:
        return None
    if hasattr(obj, "get_config"):
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    return {"class_name": getattr(obj, "__name__", type(obj).__name__)}


def _describe_losses(objective) -> Any:
    """The loss, or each output's loss by output name."""
    if objective is None:
        return None
    if isinstance(objective.loss, dict):
        return {name: _describe(loss) for name, loss in objective.loss.items()}
    return _describe(objective.loss)


class RunTracker(Callback):
    """Record each ``fit`` in its own folder ``root/<YYYYmmdd-HHMMSS>-<name>/``.

    Place it after callbacks that add log keys (such as ``ReduceLROnPlateau``'s
    ``lr``) so that it records them.

    Args:
        root: the folder holding all runs (created if needed).
        name: the run's name; the model's name if omitted.
        config: anything worth recording with the run (hyperparameters, data set,
            notes); must be JSON-able, with NumPy values and paths converted.

    Attributes:
        run_dir: the folder of the current (or last) run.
    """

    main_process_only = True  # writes files: rank 0 only in distributed training

    def __init__(self, root: "str | os.PathLike" = "runs", name: str | None = None, config: dict | None = None):
        super().__init__()
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"RunTracker: root must be a path, got {root!r}")
        if name is not None and (not isinstance(name, str) or not name or os.sep in name or "/" in name):
            raise ValueError(f"RunTracker: name must be a non-empty string without path separators, got {name!r}")
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"RunTracker: config must be a dict, got {type(config).__name__}")
        self.root = Path(root)
        self.name = name
        self.config = dict(config or {})
        self.run_dir: Path | None = None
        self._csv: CSVLogger | None = None
        self._history: dict[str, list] = {}
        self._epochs: list[int] = []
        self._started = 0.0

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter()
        self._history, self._epochs = {}, []
        self.run_dir = self._make_run_dir(self.name or self.model.name)
        _write_json(self.run_dir / CONFIG_FILE, self._run_config())
        (self.run_dir / METRICS_JSONL).write_text("")
        self._csv = CSVLogger(self.run_dir / METRICS_CSV)
        self._csv.on_train_begin()

    def _make_run_dir(self, name: str) -> Path:
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
        self.root.mkdir(parents=True, exist_ok=True)
        candidate, copy = self.root / stem, 1
        while True:
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:  # two runs of the same name in one second
                copy += 1
                candidate = self.root / f"{stem}-{copy}"

    def _run_config(self) -> dict:
        model = self.model
        trainable = sum(w.size for w in model.trainable_weights)
        total = model.count_params()
        return {
            "name": self.run_dir.name,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": self.config,
            "model": {"class_name": type(model).__name__, "name": model.name,
                      "params": {"total": total, "trainable": int(trainable), "non_trainable": total - int(trainable)},
                      "layers": [{"name": layer.name, "class_name": type(layer).__name__,
                                  "params": layer.count_params()} for layer in model.layers]},
            "optimizer": _describe(model.optimizer),
            "loss": _describe_losses(model.objective),
            "metrics": list(model.objective.metric_logs()) if model.objective is not None else [],
            "fit": dict(self.params),
            "versions": {"cnnkit": __version__, "numpy": np.__version__, "python": platform.python_version(),
                         **({"cupy": sys.modules["cupy"].__version__} if "cupy" in sys.modules else {})},
            "device": str(model.device),
        }

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        self._epochs.append(epoch)
        for key, value in logs.items():
            self._history.setdefault(key, []).append((epoch, value))
        record = {"epoch": epoch, "elapsed_s": round(time.perf_counter() - self._started, 3), **logs}
        with open(self.run_dir / METRICS_JSONL, "a") as stream:
            stream.write(json.dumps(record, default=_plain) + "\n")
        self._csv.on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        final, best = {}, {}
        for key, values in self._history.items():
            final[key] = values[-1][1]
            finite = [(epoch, value) for epoch, value in values
                      if isinstance(value, (int, float)) and math.isfinite(value)]
            if finite:
                pick = min if infer_mode(key) == "min" else max
                epoch, value = pick(finite, key=lambda pair: pair[1])
                best[key] = {"value": value, "epoch": epoch}
        _write_json(self.run_dir / RESULTS_FILE, {
            "epochs_run": len(self._epochs),
            "last_epoch": self._epochs[-1] if self._epochs else None,
            "stopped_early": bool(self.model.stop_training),
            "wall_time_s": round(time.perf_counter() - self._started, 3),
            "final": final,
            "best": best,
        })


def load_run(path: "str | os.PathLike") -> dict:
    """Read a run folder written by :class:`RunTracker`.

    Returns:
        ``{"path", "name", "config", "epochs", "elapsed_s", "metrics", "results"}``:
        ``epochs`` and ``elapsed_s`` list one entry per epoch, ``metrics`` maps every
        log key to its per-epoch values (None where an epoch lacks the key), so
        ``plt.plot(run["epochs"], run["metrics"]["val_loss"])`` works; ``results`` is
        None for a run that was interrupted.
    """
    folder = Path(path)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"load_run: {str(folder)!r} is not a run folder (it has no {CONFIG_FILE})")
    records = []
    metrics_path = folder / METRICS_JSONL
    if metrics_path.is_file():
        records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    keys = sorted({key for record in records for key in record} - {"epoch", "elapsed_s"})
    results_path = folder / RESULTS_FILE
    return {
        "path": folder,
        "name": folder.name,
        "config": json.loads(config_path.read_text()),
        "epochs": [record["epoch"] for record in records],
        "elapsed_s": [record.get("elapsed_s") for record in records],
        "metrics": {key: [record.get(key) for record in records] for key in keys},
        "results": json.loads(results_path.read_text()) if results_path.is_file() else None,
    }


def list_runs(root: "str | os.PathLike" = "runs") -> list[Path]:
    """The run folders under ``root``, oldest first (their names start with the start time)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(entry for entry in root.iterdir() if (entry / CONFIG_FILE).is_file())
