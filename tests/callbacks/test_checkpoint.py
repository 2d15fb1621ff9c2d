import pytest

import cnnkit
from cnnkit.callbacks import BackupAndRestore, Callback, ModelCheckpoint
from tests.callbacks.common import Recorder, ScriptedLogs, assert_same_weights, data, make_model, weights_of


def fit(model, callbacks, epochs=3, **kwargs):
    x, y = data()
    return model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=callbacks, **kwargs)


# ---------------------------------------------------------------- ModelCheckpoint

def test_checkpoint_names_files_from_the_epoch_and_the_logs(tmp_path):
    model = make_model()
    history = fit(model, [ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}-{val_loss:.3f}.safetensors")],
                  validation_split=0.25)
    expected = {f"ckpt-{epoch + 1:02d}-{loss:.3f}.safetensors"
                for epoch, loss in zip(history.epoch, history.history["val_loss"])}
    assert {path.name for path in tmp_path.iterdir()} == expected


def test_checkpoint_saves_the_full_model(tmp_path):
    model = make_model()
    fit(model, [ModelCheckpoint(tmp_path / "model.safetensors")], epochs=2)
    loaded = cnnkit.load_model(tmp_path / "model.safetensors")
    assert loaded.epoch == 2
    assert loaded.optimizer.iterations == model.optimizer.iterations == 8
    assert_same_weights(weights_of(loaded), weights_of(model))


def test_checkpoint_save_best_only_saves_on_improvement(tmp_path):
    model = make_model()
    recorder = Recorder()
    scores = ScriptedLogs("score", [3.0, 1.0, 2.0, 0.5, 0.7])
    every = ModelCheckpoint(tmp_path / "e{epoch}.safetensors", monitor="score", save_best_only=True)
    best = ModelCheckpoint(tmp_path / "best.safetensors", monitor="score", save_best_only=True,
                           save_weights_only=True)
    fit(model, [scores, every, best, recorder], epochs=5)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best.safetensors", "e1.safetensors",
                                                                "e2.safetensors", "e4.safetensors"]
    assert best.best == 0.5 and [path.name for path in best.saved] == ["best.safetensors"] * 3
    fresh = make_model()
    fresh.load_weights(tmp_path / "best.safetensors")
    assert_same_weights(weights_of(fresh), recorder.weights[3])


def test_checkpoint_keeps_the_best_across_fit_calls(tmp_path):
    model = make_model()
    checkpoint = ModelCheckpoint(tmp_path / "best.safetensors", monitor="score", mode="max", save_best_only=True)
    fit(model, [ScriptedLogs("score", [0.5, 0.9]), checkpoint], epochs=2)
    fit(model, [ScriptedLogs("score", [0.8, 0.95]), checkpoint], epochs=2)
    assert len(checkpoint.saved) == 3 and checkpoint.best == 0.95


def test_checkpoint_weights_only_file_holds_no_architecture(tmp_path):
    model = make_model()
    fit(model, [ModelCheckpoint(tmp_path / "w.safetensors", save_weights_only=True)], epochs=1)
    with pytest.raises(ValueError, match="holds only weights"):
        cnnkit.load_model(tmp_path / "w.safetensors")


def test_checkpoint_every_n_batches_counts_across_epochs(tmp_path):
    model = make_model()
    checkpoint = ModelCheckpoint(tmp_path / "b-{epoch}-{batch}.safetensors", save_freq=3, save_weights_only=True)
    fit(model, [checkpoint], epochs=2)  # 4 batches per epoch: saves after batches 3 and 6 overall
    assert [path.name for path in checkpoint.saved] == ["b-1-3.safetensors", "b-2-2.safetensors"]


def test_checkpoint_warns_and_saves_when_the_monitored_key_is_missing(tmp_path):
    model = make_model()
    checkpoint = ModelCheckpoint(tmp_path / "m.safetensors", save_best_only=True)
    with pytest.warns(RuntimeWarning, match="monitor='val_loss' is not in the logs.*available keys: accuracy, loss"):
        fit(model, [checkpoint], epochs=1)
    assert (tmp_path / "m.safetensors").exists()


def test_checkpoint_names_a_missing_format_field_before_training(tmp_path):
    model = make_model()
    first_steps = []

    class CountSteps(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            first_steps.append(batch)

    with pytest.raises(ValueError, match=r"names val_loss, which is not in the epoch logs \(validation values need "
                                         r"validation_data or validation_split\); available fields: "
                                         r"accuracy, epoch, loss"):
        fit(model, [ModelCheckpoint(tmp_path / "{epoch}-{val_loss:.2f}.safetensors"), CountSteps()], epochs=1)
    assert first_steps == []
    with pytest.raises(ValueError, match=r"names accuracy, which is not in the batch logs; available fields: "
                                         r"batch, epoch, loss"):
        fit(model, [ModelCheckpoint(tmp_path / "{batch}-{accuracy}.safetensors", save_freq=2)], epochs=1)
    assert first_steps == []


def test_checkpoint_rejects_a_bad_save_freq(tmp_path):
    with pytest.raises(ValueError, match="save_freq"):
        ModelCheckpoint(tmp_path / "m.safetensors", save_freq=0)
    with pytest.raises(TypeError, match="save_freq"):
        ModelCheckpoint(tmp_path / "m.safetensors", save_freq="batch")


# ---------------------------------------------------------------- BackupAndRestore

class Interrupt(Callback):
    """Simulates Ctrl-C at the start of epoch ``at``."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


def _run(seed, callbacks, epochs=5, device="cpu"):
    """A fresh model with dropout (so the random generator matters), shuffled batches, Adam state."""
    cnnkit.manual_seed(seed)
    model = make_model(dropout=0.25)
    history = fit(model, callbacks, epochs=epochs, validation_split=0.25, device=device)
    return model, history


def test_resumed_run_ends_with_exactly_the_weights_of_an_uninterrupted_run(tmp_path, device):
    reference, reference_history = _run(seed=7, callbacks=[], device=device)

    backup = BackupAndRestore(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        _run(seed=7, callbacks=[backup, Interrupt(at=2)], device=device)
    assert backup.backup_path.exists()
    assert cnnkit.load_model(backup.backup_path).epoch == 2

    # A fresh process would build the model from another random state: the backup replaces it all.
    model, history = _run(seed=12345, callbacks=[backup], device=device)
    assert model.weights[0].device == device
    assert backup.resumed_from == 2
    assert history.epoch == [2, 3, 4], "fit must start from model.initial_epoch as set by on_train_begin"
    assert history.history["loss"] == reference_history.history["loss"][2:]
    assert model.epoch == reference.epoch == 5
    assert model.optimizer.iterations == reference.optimizer.iterations
    assert_same_weights(weights_of(model), weights_of(reference))
    assert not backup.backup_path.exists()


def test_backup_is_kept_when_asked_and_a_finished_backup_runs_no_epochs(tmp_path):
    backup = BackupAndRestore(tmp_path, delete_checkpoint=False)
    model, _ = _run(seed=1, callbacks=[backup], epochs=2)
    assert backup.backup_path.exists() and backup.resumed_from is None
    again, history = _run(seed=2, callbacks=[backup], epochs=2)
    assert backup.resumed_from == 2
    assert history.epoch == [], "fit must start from model.initial_epoch as set by on_train_begin"
    assert_same_weights(weights_of(again), weights_of(model))


def test_backup_refuses_a_model_that_model_save_cannot_write(tmp_path):
    class Net(cnnkit.Model):
        def __init__(self):
            super().__init__()
            self.dense = cnnkit.layers.Dense(2)

        def call(self, x, training=False):
            return self.dense(x)

    model = Net()
    model.compile(optimizer="sgd", loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(TypeError, match="BackupAndRestore: cannot save .* subclassed model has no config"):
        fit(model, [BackupAndRestore(tmp_path)], epochs=1)
    assert not any(tmp_path.iterdir())


def test_checkpoint_refuses_an_unsavable_loss_before_the_first_epoch(tmp_path):
    model = make_model()
    model.compile(optimizer="sgd", loss=lambda y_true, y_pred: (y_pred * 0.0).sum())
    recorder = Recorder()
    with pytest.raises(TypeError, match="ModelCheckpoint: cannot save .* cannot save loss"):
        fit(model, [ModelCheckpoint(str(tmp_path / "c.safetensors")), recorder], epochs=2)
    assert recorder.epochs == [] and not any(tmp_path.iterdir())
