"""CSVLogger: one row of epoch logs per epoch in a CSV file."""
from __future__ import annotations

import csv
import os
from pathlib import Path

from ..models.saving import atomic_write
from .base import Callback


class CSVLogger(Callback):
    """Write the epoch index and the epoch logs to a CSV file, one row per epoch.

    The header is ``epoch`` and then the log keys, sorted. The file is complete after
    every epoch (it is flushed and closed), so it can be read while training runs. A
    key that first appears in a later epoch (as ``lr`` from a callback added midway,
    or validation keys) adds a column: the file is rewritten with the wider header,
    earlier rows leaving that cell empty.

    Args:
        filename: the CSV file; its folder is created if needed.
        separator: the one-character field delimiter.
        append: continue an existing file (its header and rows are kept) instead of
            overwriting it, e.g. when resuming training.
    """

    main_process_only = True  # writes files: rank 0 only in distributed training

    def __init__(self, filename: "str | os.PathLike", separator: str = ",", append: bool = False):
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"CSVLogger: filename must be a path, got {filename!r}")
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"":
            raise ValueError(f"CSVLogger: separator must be one character other than a quote or a line break, "
                             f"got {separator!r}")
        self.filename = Path(filename)
        self.separator = separator
        self.append = bool(append)
        self.columns: list[str] = []
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        self.columns, self.rows = [], []
        if self.append and self.filename.exists() and self.filename.stat().st_size > 0:
            with open(self.filename, newline="") as stream:
                reader = csv.DictReader(stream, delimiter=self.separator)
                self.columns = list(reader.fieldnames or [])
                self.rows = list(reader)
        else:
            # Start the file now, so that a stale one from an earlier run is not mistaken for this run's.
            self.filename.parent.mkdir(parents=True, exist_ok=True)
            self.filename.write_text("")

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, **(logs or {})}
        self.rows.append(row)
        new_keys = set(row) - set(self.columns)
        if new_keys or len(self.rows) == 1:
            old = [column for column in self.columns if column != "epoch"]
            self.columns = ["epoch", *sorted(set(old) | new_keys - {"epoch"})]
            atomic_write(self.filename, self._write_all)
        else:
            with open(self.filename, "a", newline="") as stream:
                self._writer(stream).writerow(row)

    def _writer(self, stream) -> csv.DictWriter:
        return csv.DictWriter(stream, fieldnames=self.columns, delimiter=self.separator, restval="",
                              lineterminator="\n")

    def _write_all(self, path: str) -> None:
        with open(path, "w", newline="") as stream:
            writer = self._writer(stream)
            writer.writeheader()
            writer.writerows(self.rows)
