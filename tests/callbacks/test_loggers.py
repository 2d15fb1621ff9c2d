import csv

import pytest

from cnnkit.callbacks import Callback, CSVLogger, ReduceLROnPlateau
from tests.callbacks.common import ScriptedLogs, data, make_model


def fit(model, callbacks, epochs=3, **kwargs):
    x, y = data()
    return model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=callbacks, **kwargs)


def read(path, separator=","):
    with open(path, newline="") as stream:
        rows = list(csv.reader(stream, delimiter=separator))
    return rows[0], rows[1:]


def test_one_row_per_epoch_with_epoch_and_sorted_keys(tmp_path):
    path = tmp_path / "logs" / "train.csv"
    history = fit(make_model(), [CSVLogger(path)], validation_split=0.25)
    header, rows = read(path)
    assert header == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(row[0]) for row in rows] == [0, 1, 2]
    for column, key in enumerate(header[1:], start=1):
        assert [float(row[column]) for row in rows] == history.history[key]  # full precision


def test_the_file_is_complete_after_every_epoch(tmp_path):
    path = tmp_path / "train.csv"
    seen = []

    class Reader(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(len(read(path)[1]))

    fit(make_model(), [CSVLogger(path), Reader()])
    assert seen == [1, 2, 3]


def test_a_key_appearing_later_adds_a_column(tmp_path):
    path = tmp_path / "train.csv"
    fit(make_model(), [ScriptedLogs("extra", [None, 1.5, 2.5]), CSVLogger(path)])
    header, rows = read(path)
    assert header == ["epoch", "accuracy", "extra", "loss"]
    assert [row[2] for row in rows] == ["", "1.5", "2.5"]
    assert all(row[1] and row[3] for row in rows)


def test_lr_is_logged_when_the_logger_comes_after_the_lr_callback(tmp_path):
    path = tmp_path / "train.csv"
    fit(make_model(learning_rate=0.02), [ReduceLROnPlateau("loss", patience=100), CSVLogger(path)])
    header, rows = read(path)
    assert "lr" in header and [float(row[header.index("lr")]) for row in rows] == [0.02] * 3


def test_append_continues_the_file_and_overwrite_replaces_it(tmp_path):
    path = tmp_path / "train.csv"
    model = make_model()
    fit(model, [CSVLogger(path, separator=";")], epochs=2)
    fit(model, [CSVLogger(path, separator=";", append=True)], epochs=2)
    header, rows = read(path, ";")
    assert header == ["epoch", "accuracy", "loss"] and [row[0] for row in rows] == ["0", "1", "0", "1"]

    fit(model, [ScriptedLogs("extra", [None, 7.0]), CSVLogger(path, separator=";", append=True)], epochs=2)
    header, rows = read(path, ";")
    assert header == ["epoch", "accuracy", "extra", "loss"] and len(rows) == 6
    assert [row[2] for row in rows] == ["", "", "", "", "", "7.0"]

    fit(model, [CSVLogger(path)], epochs=1)
    assert len(read(path)[1]) == 1


def test_bad_separator_is_named(tmp_path):
    with pytest.raises(ValueError, match="separator must be one character"):
        CSVLogger(tmp_path / "x.csv", separator=", ")
