import json
import math
import re

import numpy as np
import pytest

import cnnkit
from cnnkit.callbacks import Callback, EarlyStopping, RunTracker, list_runs, load_run
from tests.callbacks.common import ScriptedLogs, data, make_model


def fit(model, callbacks, epochs=3, **kwargs):
    x, y = data()
    return model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=callbacks, **kwargs)


def test_a_run_folder_holds_config_metrics_and_results(tmp_path):
    model = make_model()
    tracker = RunTracker(tmp_path / "runs", name="exp", config={"lr": 0.01, "layers": np.int64(2), "tags": ("a",)})
    history = fit(model, [tracker], validation_split=0.25)

    run_dir = tracker.run_dir
    assert run_dir.parent == tmp_path / "runs"
    assert re.fullmatch(r"\d{8}-\d{6}-exp", run_dir.name)
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "metrics.csv", "metrics.jsonl",
                                                          "results.json"]

    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"] == {"lr": 0.01, "layers": 2, "tags": ["a"]}
    assert config["model"]["class_name"] == "Sequential"
    assert config["model"]["params"] == {"total": model.count_params(), "trainable": model.count_params(),
                                         "non_trainable": 0}
    assert [layer["class_name"] for layer in config["model"]["layers"]] == ["Dense", "Dense"]
    assert config["optimizer"]["class_name"] == "Adam" and config["optimizer"]["config"]["learning_rate"] == 0.01
    assert config["loss"]["class_name"] == "SparseCategoricalCrossentropy"
    assert config["loss"]["config"]["from_logits"] is True
    assert config["fit"]["epochs"] == 3 and config["fit"]["batch_size"] == 16
    assert config["versions"]["numpy"] == np.__version__ and config["versions"]["cnnkit"] == cnnkit.__version__
    assert config["device"] == "cpu"

    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["val_loss"] for line in lines] == history.history["val_loss"]
    assert (run_dir / "metrics.csv").read_text().splitlines()[0] == "epoch,accuracy,loss,val_accuracy,val_loss"

    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs_run"] == 3 and results["last_epoch"] == 2 and not results["stopped_early"]
    assert results["wall_time_s"] >= 0
    assert results["final"]["val_loss"] == history.history["val_loss"][-1]
    losses, accuracies = history.history["val_loss"], history.history["accuracy"]
    assert results["best"]["val_loss"] == {"value": min(losses), "epoch": int(np.argmin(losses))}
    assert results["best"]["accuracy"] == {"value": max(accuracies), "epoch": int(np.argmax(accuracies))}


def test_load_run_gives_lists_for_plotting(tmp_path):
    model = make_model()
    tracker = RunTracker(tmp_path, config={"note": "x"})
    history = fit(model, [ScriptedLogs("extra", [None, 1.0, 2.0]), tracker])
    run = load_run(tracker.run_dir)
    assert run["name"] == tracker.run_dir.name and run["name"].endswith(model.name)
    assert run["config"]["config"] == {"note": "x"}
    assert run["epochs"] == [0, 1, 2] and len(run["elapsed_s"]) == 3
    assert run["metrics"]["loss"] == history.history["loss"]
    assert run["metrics"]["extra"] == [None, 1.0, 2.0]
    assert run["results"]["final"]["extra"] == 2.0 and run["results"]["best"]["extra"]["epoch"] == 1


def test_best_ignores_nan_and_early_stopping_is_recorded(tmp_path):
    tracker = RunTracker(tmp_path, name="nan")
    fit(make_model(), [ScriptedLogs("score", [math.nan, 2.0, 3.0, 4.0]), EarlyStopping("score", patience=1),
                       tracker], epochs=4)
    results = load_run(tracker.run_dir)["results"]
    assert results["stopped_early"] and results["epochs_run"] == 3
    assert results["best"]["score"] == {"value": 2.0, "epoch": 1}
    assert math.isnan(load_run(tracker.run_dir)["metrics"]["score"][0])


def test_an_interrupted_run_has_no_results_and_runs_are_listed_in_order(tmp_path):
    class Interrupt(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    model = make_model()
    first, second = RunTracker(tmp_path, name="same"), RunTracker(tmp_path, name="same")
    with pytest.raises(KeyboardInterrupt):
        fit(model, [first, Interrupt()])
    fit(model, [second], epochs=1)
    assert first.run_dir != second.run_dir  # same name within the same second gets a suffix
    assert list_runs(tmp_path) == sorted([first.run_dir, second.run_dir])
    interrupted = load_run(first.run_dir)
    assert interrupted["results"] is None and interrupted["epochs"] == [0, 1]
    assert list_runs(tmp_path / "missing") == []
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        load_run(tmp_path)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="name must be a non-empty string without path separators"):
        RunTracker(tmp_path, name="a/b")
    with pytest.raises(TypeError, match="config must be a dict"):
        RunTracker(tmp_path, config=[1])
