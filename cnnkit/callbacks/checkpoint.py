"""Callbacks that write the model to disk: ModelCheckpoint, and BackupAndRestore to resume a run.

Both write through ``model.save`` / ``model.save_weights``, which write a temporary
file and rename it, so an interruption never leaves a half-written file behind.
"""
from __future__ import annotations

import os
import string
from pathlib import Path

from ..models import saving
from .base import Callback
from .monitoring import Monitor, check_int


def _field_names(pattern: str) -> set[str]:
    """The names of the format fields in ``pattern``: ``"ckpt-{epoch:02d}"`` -> {"epoch"}."""
    names = set()
    for _, field, _, _ in string.Formatter().parse(pattern):
        if field:
            names.add(field.split(".")[0].split("[")[0])
    return names


class ModelCheckpoint(Callback):
    """Save the model (or its weights) after every epoch, or every ``save_freq`` batches.

    Args:
        filepath: where to save; may hold format fields filled from ``epoch`` (1-based,
            as in Keras), ``batch`` (1-based, with an integer ``save_freq``) and the log
            keys, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``.
        monitor: the log key that decides what is best, with ``save_best_only``.
        save_best_only: save only when the monitored value improves on the best so far
            (kept across ``fit`` calls). When the key is missing from the logs, a warning
            is given and the model is saved anyway.
        save_weights_only: write ``model.save_weights(path)`` (read back with
            ``load_weights``) instead of ``model.save(path)`` (read back with
            :func:`cnnkit.load_model`, optimizer state included).
        mode: ``"auto"``, ``"min"`` or ``"max"``, for ``save_best_only``.
        save_freq: ``"epoch"``, or save every this many batches, counted across epochs
            (the logs are then the batch logs: the running loss).
        verbose: 1 prints every save.

    Attributes:
        best: the best monitored value seen so far.
        saved: the paths written, in order.
    """

    main_process_only = True  # writes files: rank 0 only in distributed training

    def __init__(self, filepath: "str | os.PathLike", monitor: str = "val_loss", save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", save_freq: "str | int" = "epoch",
                 verbose: int = 0):
        super().__init__()
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"ModelCheckpoint: filepath must be a path, got {filepath!r}")
        self.filepath = os.fspath(saving.check_file_name(filepath, "ModelCheckpoint"))
        self.monitor = Monitor("ModelCheckpoint", monitor, mode)
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        if save_freq != "epoch":
            save_freq = check_int("ModelCheckpoint", "save_freq ('epoch' or a number of batches)", save_freq, 1)
        self.save_freq = save_freq
        self.verbose = verbose
        self.best = self.monitor.worst
        self.saved: list[Path] = []
        self._epoch = 0
        self._batches_since_save = 0

    def on_train_begin(self, logs=None):
        self._batches_since_save = 0
        if not self.save_weights_only:
            _check_savable(self.model, "ModelCheckpoint", "or use save_weights_only=True")
        if "log_keys" in self.params:
            self._check_fields(self.params["log_keys"])

    def _check_fields(self, log_keys: list[str]) -> None:
        """Fail before training when the file name needs a value the logs will not have."""
        if self.save_freq == "epoch":
            available = {"epoch", *log_keys}
        else:  # batch logs: the running losses only
            available = {"epoch", "batch", *(key for key in log_keys if key.endswith("loss")
                                               and not key.startswith("val_"))}
        missing = sorted(_field_names(self.filepath) - available)
        if missing:
            hint = (" (validation values need validation_data or validation_split)"
                    if any(name.startswith("val_") for name in missing) else "")
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} names {', '.join(missing)}, which "
                             f"{'is' if len(missing) == 1 else 'are'} not in the "
                             f"{'epoch' if self.save_freq == 'epoch' else 'batch'} logs{hint}; available fields: "
                             f"{', '.join(sorted(available))}")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _save(self, epoch: int, batch: int | None, logs: dict) -> None:
        path = self._format_path(epoch, batch, logs)
        if self.save_best_only:
            current = self.monitor.value(logs)
            if current is not None:
                if not self.monitor.improved(current, self.best):
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: {self.monitor.name} did not improve from {self.best:.5f}",
                              flush=True)
                    return
                if self.verbose:
                    print(f"Epoch {epoch + 1}: {self.monitor.name} improved from {self.best:.5f} to "
                          f"{current:.5f}", flush=True)
                self.best = current
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.saved.append(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved the {'weights' if self.save_weights_only else 'model'} to {path}",
                  flush=True)

    def _format_path(self, epoch: int, batch: int | None, logs: dict) -> Path:
        fields = {**logs, "epoch": epoch + 1}
        if batch is not None:
            fields["batch"] = batch + 1
        missing = sorted(_field_names(self.filepath) - set(fields))
        if missing:
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} names {', '.join(missing)}, which "
                             f"{'is' if len(missing) == 1 else 'are'} not in the logs; available fields: "
                             f"{', '.join(sorted(fields))}")
        return Path(self.filepath.format(**fields))


def _check_savable(model, owner: str, hint: str) -> None:
    """Fail before the first epoch, not after it, when ``model.save`` cannot work."""
    try:
        model.get_config()
        if model.objective is not None:
            model.objective.get_config()
    except TypeError as error:
        raise TypeError(f"{owner}: cannot save {model.who} with model.save(): {error} ({hint})") from None


class BackupAndRestore(Callback):
    """Back the training state up after every epoch, and resume from it after an interruption.

    At the end of every epoch the full model is saved to ``backup_dir``: weights,
    optimizer state, the number of epochs completed and the state of cnnkit's random
    generator. When ``fit`` starts and a backup exists, it is loaded into the model
    being trained (weights, optimizer state, random generator) and ``fit`` continues
    after the last completed epoch, drawing the same shuffles and dropout masks as an
    uninterrupted run would: the result is the same, bit for bit.

    Run the interrupted script again with the same ``backup_dir``; the model is built
    as before (its initial weights do not matter, they are replaced). It needs
    ``model.save``, so a functional or ``Sequential`` model.

    Args:
        backup_dir: the folder for the backup (created if needed); one run per folder.
        delete_checkpoint: delete the backup when ``fit`` completes (not when it is
            interrupted by an exception, which is what the backup is for).

    Attributes:
        resumed_from: the epochs completed in the backup this run resumed from; None
            when it started afresh.
    """

    main_process_only = True  # writes files: rank 0 only in distributed training

    FILE_NAME = "backup.safetensors"

    def __init__(self, backup_dir: "str | os.PathLike", delete_checkpoint: bool = True):
        super().__init__()
        if not isinstance(backup_dir, (str, os.PathLike)):
            raise TypeError(f"BackupAndRestore: backup_dir must be a path, got {backup_dir!r}")
        self.backup_dir = Path(backup_dir)
        self.delete_checkpoint = bool(delete_checkpoint)
        self.resumed_from: int | None = None

    @property
    def backup_path(self) -> Path:
        return self.backup_dir / self.FILE_NAME

    def on_train_begin(self, logs=None):
        _check_savable(self.model, "BackupAndRestore", "it backs up functional and Sequential models")
        self.resumed_from = None
        if self.backup_path.exists():
            self.resumed_from = saving.restore_training_state(self.model, self.backup_path)
            # fit reads this after on_train_begin and starts from it.
            self.model.initial_epoch = self.resumed_from

    def on_epoch_end(self, epoch, logs=None):
        self.model.save(self.backup_path)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and self.backup_path.exists():
            self.backup_path.unlink()


