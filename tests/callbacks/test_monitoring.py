import math

import numpy as np
import pytest

import cnnkit
from cnnkit.callbacks import EarlyStopping, LearningRateScheduler, ReduceLROnPlateau, TerminateOnNaN
from cnnkit.callbacks.monitoring import Monitor, infer_mode
from tests.callbacks.common import Recorder, ScriptedLogs, assert_same_weights, data, make_model, weights_of


def fit(model, callbacks, epochs, **kwargs):
    x, y = data()
    return model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=callbacks, **kwargs)


# ---------------------------------------------------------------- Monitor

@pytest.mark.parametrize("name, mode", [("val_loss", "min"), ("loss", "min"), ("val_accuracy", "max"),
                                        ("sparse_categorical_accuracy", "max"), ("val_auc", "max"),
                                        ("f1_score", "max"), ("val_precision", "max"), ("recall", "max"),
                                        ("mae", "min"), ("lr", "min")])
def test_auto_mode_follows_the_name(name, mode):
    assert infer_mode(name) == mode
    assert Monitor("T", name).mode == mode


def test_improvement_needs_more_than_min_delta():
    low = Monitor("T", "val_loss", min_delta=-0.1)  # the sign is ignored, as in Keras
    assert low.improved(0.85, 1.0) and not low.improved(0.9, 1.0) and not low.improved(math.nan, 1.0)
    high = Monitor("T", "score", mode="max", min_delta=0.1)
    assert high.improved(1.15, 1.0) and not high.improved(1.1, 1.0)
    assert low.worst == math.inf and high.worst == -math.inf


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="mode must be one of 'auto', 'min', 'max', got 'up'"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience must be an integer >= 0, got -1"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="factor must be in \\(0, 1\\)"):
        ReduceLROnPlateau(factor=1.5)
    with pytest.raises(TypeError, match="schedule must be a function"):
        LearningRateScheduler(0.1)


# ---------------------------------------------------------------- EarlyStopping

def test_early_stopping_stops_after_patience_and_restores_the_best_weights_exactly(device):
    model = make_model()
    recorder = Recorder()
    stopper = EarlyStopping(monitor="score", patience=2, restore_best_weights=True)
    # best at epoch 1; epochs 2 and 3 do not improve -> stop at the end of epoch 3
    history = fit(model, [ScriptedLogs("score", [5.0, 3.0, 4.0, 3.0, 1.0, 0.5]), stopper, recorder], epochs=6,
                  device=device)
    assert model.weights[0].device == device
    assert history.epoch == [0, 1, 2, 3]
    assert stopper.stopped_epoch == 3 and stopper.best_epoch == 1 and stopper.best == 3.0
    assert not all(np.array_equal(a, b) for a, b in zip(recorder.weights[1], recorder.weights[3]))
    assert_same_weights(weights_of(model), recorder.weights[1])


def test_early_stopping_without_restoring_keeps_the_last_weights():
    model = make_model()
    recorder = Recorder()
    fit(model, [ScriptedLogs("score", [5.0, 3.0, 4.0, 4.0]), EarlyStopping("score", patience=1), recorder],
        epochs=4)
    assert recorder.epochs == [0, 1, 2]
    assert_same_weights(weights_of(model), recorder.weights[2])


def test_early_stopping_in_max_mode_with_min_delta():
    model = make_model()
    stopper = EarlyStopping(monitor="val_accuracy", patience=1, min_delta=0.05)
    # +0.01 is no improvement with min_delta 0.05
    history = fit(model, [ScriptedLogs("val_accuracy", [0.5, 0.7, 0.71, 0.9]), stopper], epochs=4)
    assert stopper.monitor.mode == "max"
    assert history.epoch == [0, 1, 2]


@pytest.mark.parametrize("baseline, epochs_run", [(None, 5), (1.0, 3), (2.5, 5)])
def test_early_stopping_counts_patience_from_the_last_epoch_beating_the_baseline(baseline, epochs_run):
    model = make_model()
    stopper = EarlyStopping(monitor="score", patience=3, baseline=baseline)
    history = fit(model, [ScriptedLogs("score", [3.0, 2.0, 2.5, 2.5, 2.5, 2.5]), stopper], epochs=6)
    assert history.epoch == list(range(epochs_run))


def test_early_stopping_waits_for_start_from_epoch():
    model = make_model()
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    history = fit(model, [ScriptedLogs("score", values), EarlyStopping("score", start_from_epoch=3)], epochs=6)
    assert history.epoch == [0, 1, 2, 3, 4]  # epoch 3 sets the best, epoch 4 is worse


def test_early_stopping_warns_with_the_available_keys_and_keeps_training():
    model = make_model()
    with pytest.warns(RuntimeWarning, match="monitor='val_loss' is not in the logs.*available keys: accuracy, loss"):
        history = fit(model, [EarlyStopping()], epochs=2)
    assert history.epoch == [0, 1]


def test_early_stopping_on_real_validation_loss(device):
    model = make_model(learning_rate=0.05)
    stopper = EarlyStopping(patience=0, restore_best_weights=True)
    recorder = Recorder()
    history = fit(model, [stopper, recorder], epochs=6, validation_split=0.25, device=device)
    losses = history.history["val_loss"]
    best = int(np.argmin(losses))
    assert stopper.best_epoch == best and stopper.best == losses[best]
    assert_same_weights(weights_of(model), recorder.weights[best])


# ---------------------------------------------------------------- ReduceLROnPlateau

def test_reduce_lr_after_patience_with_cooldown_and_min_lr():
    model = make_model(optimizer="sgd", learning_rate=0.01)
    recorder = Recorder()
    reducer = ReduceLROnPlateau(monitor="score", factor=0.5, patience=2, cooldown=1, min_lr=0.002)
    fit(model, [ScriptedLogs("score", [1.0] * 10), reducer, recorder], epochs=10)
    # reductions at epochs 2, 5, 8: patience 2, then one cooldown epoch that does not count; min_lr caps the third
    assert [logs["lr"] for logs in recorder.logs] == pytest.approx(
        [0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.0025, 0.0025, 0.0025, 0.002], rel=1e-12)
    assert model.optimizer.learning_rate == 0.002


def test_reduce_lr_without_cooldown_and_improvements_reset_the_wait():
    model = make_model(optimizer="sgd", learning_rate=0.1)
    recorder = Recorder()
    reducer = ReduceLROnPlateau(monitor="score", factor=0.1, patience=2, min_delta=0.0)
    fit(model, [ScriptedLogs("score", [3.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0]), reducer, recorder], epochs=7)
    lrs = [logs["lr"] for logs in recorder.logs]
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01], rel=1e-12)
    assert model.optimizer.learning_rate == pytest.approx(0.001, rel=1e-12)


def test_reduce_lr_replaces_an_optimizer_schedule():
    model = make_model(optimizer="sgd")
    model.optimizer.learning_rate = cnnkit.optimizers.schedules.ExponentialDecay(0.1, decay_steps=100,
                                                                                  decay_rate=0.5)
    fit(model, [ScriptedLogs("score", [1.0, 1.0]), ReduceLROnPlateau("score", factor=0.5, patience=1)], epochs=2)
    assert isinstance(model.optimizer.learning_rate, float)
    assert model.optimizer.learning_rate < 0.05


# ---------------------------------------------------------------- LearningRateScheduler

def test_scheduler_sets_the_rate_every_epoch_and_logs_it():
    model = make_model(optimizer="sgd", learning_rate=0.1)
    calls = []

    def schedule(epoch, lr):
        calls.append((epoch, lr))
        return lr if epoch < 2 else lr / 2

    recorder = Recorder()
    fit(model, [LearningRateScheduler(schedule), recorder], epochs=4)
    assert calls == [(0, 0.1), (1, 0.1), (2, 0.1), (3, 0.05)]
    assert [logs["lr"] for logs in recorder.logs] == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_scheduler_rate_is_the_one_the_optimizer_uses():
    seen = []

    class Spy(cnnkit.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(self.model.optimizer.learning_rate)

    model = make_model(optimizer="sgd")
    fit(model, [LearningRateScheduler(lambda epoch, lr: 0.5 ** epoch), Spy()], epochs=2)
    assert seen == [1.0] * 4 + [0.5] * 4


def test_scheduler_rejects_a_bad_rate():
    model = make_model()
    with pytest.raises(ValueError, match=r"schedule\(epoch=0, lr=0.01\) must return a finite non-negative float, "
                                         r"got nan"):
        fit(model, [LearningRateScheduler(lambda epoch, lr: math.nan)], epochs=1)


# ---------------------------------------------------------------- TerminateOnNaN

class _FakeModel:
    stop_training = False


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_terminate_on_nan_stops_on_a_non_finite_loss(bad, capsys):
    callback = TerminateOnNaN()
    callback.set_model(_FakeModel())
    callback.on_epoch_begin(2)
    callback.on_train_batch_end(0, {"loss": 0.5})
    assert not callback.model.stop_training
    callback.on_train_batch_end(7, {"loss": bad})
    assert callback.model.stop_training
    assert "epoch 3, batch 7" in capsys.readouterr().out


def test_terminate_on_nan_ends_fit_at_the_bad_batch(capsys):
    mse = cnnkit.losses.MeanSquaredError()
    calls = []

    def loss(y_true, y_pred):
        # The loss value itself turns NaN at the 7th batch (epoch 1, batch 2), as after an overflow;
        # fit's check of one sample before training is the first call.
        calls.append(1)
        value = mse(y_true, y_pred)
        return value * math.nan if len(calls) == 1 + 7 else value

    model = cnnkit.Sequential([cnnkit.layers.Dense(1, input_shape=(4,))])
    model.compile(optimizer="sgd", loss=loss)
    x, _ = data()
    history = model.fit(x, x[:, :1] * 2.0, batch_size=16, epochs=5, verbose=0, callbacks=[TerminateOnNaN()])
    assert history.epoch == [0, 1]
    assert math.isnan(history.history["loss"][1]) and math.isfinite(history.history["loss"][0])
    assert len(calls) == 1 + 7
    assert "epoch 2, batch 2" in capsys.readouterr().out


def test_verbose_callbacks_say_what_they_do(capsys):
    model = make_model(optimizer="sgd", learning_rate=0.1)
    fit(model, [ScriptedLogs("score", [1.0, 2.0, 3.0]),
                ReduceLROnPlateau("score", factor=0.5, patience=1, verbose=1),
                LearningRateScheduler(lambda epoch, lr: lr, verbose=1),
                EarlyStopping("score", patience=2, restore_best_weights=True, verbose=1)], epochs=4)
    out = capsys.readouterr().out
    assert "Epoch 2: ReduceLROnPlateau reducing the learning rate from 0.1 to 0.05" in out
    assert "Epoch 3: LearningRateScheduler setting the learning rate to 0.05" in out
    assert "Epoch 3: early stopping; score has not improved on 1 for 2 epoch(s)" in out
    assert "Restoring the weights from the end of the best epoch: 1" in out
