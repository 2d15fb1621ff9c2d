"""The progress bar: Keras' layout on a terminal, plain lines elsewhere, metrics that do not flicker."""
import io
import os

import pytest

from cnnkit.callbacks import ProgressBar
from cnnkit.callbacks import base


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True

    def fileno(self):
        return 99


def run_epoch(bar, batch_logs, epoch_logs):
    bar.set_params({"epochs": 2, "steps": len(batch_logs)})
    bar.on_epoch_begin(0)
    postfixes = []
    for step, logs in enumerate(batch_logs):
        bar.on_train_batch_end(step, logs)
        postfixes.append(bar.bar.postfix if bar.bar is not None else None)
    bar.on_epoch_end(0, epoch_logs)
    return postfixes


BATCHES = [{"loss": 0.9, "accuracy": 0.5}, {"loss": 0.8}, {"loss": 0.7}, {"loss": 0.6, "accuracy": 0.7}]
EPOCH = {"loss": 0.6, "accuracy": 0.7, "val_loss": 0.5, "val_accuracy": 0.75}


@pytest.fixture
def columns(monkeypatch):
    """Set the width the fake terminal reports."""
    def set_columns(count):
        monkeypatch.setattr(base.os, "get_terminal_size", lambda fd: os.terminal_size((count, 24)))
    return set_columns


def test_a_terminal_gets_one_bar_per_epoch_ending_with_the_epoch_s_metrics(columns):
    columns(100)
    stream = FakeTerminal()
    postfixes = run_epoch(ProgressBar(1, stream), BATCHES, EPOCH)
    assert all("accuracy" in postfix for postfix in postfixes)           # shown once computed, never dropped
    assert "accuracy: 0.5000" in postfixes[2] and "accuracy: 0.7000" in postfixes[3]
    last_line = stream.getvalue().replace("\r", "\n").rstrip("\n").splitlines()[-1]
    assert last_line.startswith("Epoch 1/2") and "4/4" in last_line
    assert "val_accuracy: 0.7500" in last_line and "val_loss: 0.5000" in last_line


@pytest.mark.parametrize("width", [0, 10])
def test_an_unknown_or_tiny_terminal_width_falls_back_to_plain_lines(columns, width):
    columns(width)
    stream = FakeTerminal()
    assert run_epoch(ProgressBar(1, stream), BATCHES, EPOCH) == [None] * 4
    assert stream.getvalue().startswith("Epoch 1/2 - ") and "val_accuracy: 0.7500" in stream.getvalue()


def test_a_terminal_without_a_size_falls_back_to_plain_lines(monkeypatch):
    def no_size(fd):
        raise OSError("inappropriate ioctl for device")

    monkeypatch.setattr(base.os, "get_terminal_size", no_size)
    stream = FakeTerminal()
    run_epoch(ProgressBar(1, stream), BATCHES, EPOCH)
    assert stream.getvalue().count("\n") == 1 and "val_accuracy" in stream.getvalue()
