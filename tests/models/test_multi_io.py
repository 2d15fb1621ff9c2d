"""Functional models with several inputs and outputs: fit, evaluate, predict, save."""
import numpy as np
import pytest

import cnnkit
from cnnkit import Input, Model
from cnnkit.data import DataLoader
from cnnkit.layers import Concatenate, Dense


def two_in_two_out():
    left, right = Input((3,), name="left"), Input((2,), name="right")
    hidden = Dense(16, activation="tanh", name="hidden")(Concatenate()([left, right]))
    kind = Dense(2, name="kind")(hidden)
    size = Dense(1, name="size")(hidden)
    return Model([left, right], [kind, size])


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    left = rng.standard_normal((n, 3)).astype(np.float32)
    right = rng.standard_normal((n, 2)).astype(np.float32)
    kind = (left[:, 0] + right[:, 1] > 0).astype(np.int64)
    size = (left[:, 1:2] - right[:, :1]).astype(np.float32)
    return [left, right], [kind, size]


def compiled(**kwargs):
    cnnkit.manual_seed(0)
    model = two_in_two_out()
    model.compile(cnnkit.optimizers.Adam(learning_rate=0.02),
                  loss=[cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"], **kwargs)
    return model


def test_fit_trains_both_outputs_and_logs_each_loss_and_metric(device):
    x, y = data()
    model = compiled(metrics={"kind": ["accuracy"]})
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0, validation_split=0.25, device=device)
    assert set(history.history) == {"loss", "kind_loss", "size_loss", "kind_accuracy",
                                    "val_loss", "val_kind_loss", "val_size_loss", "val_kind_accuracy"}
    assert history.history["size_loss"][-1] < 0.5 * history.history["size_loss"][0]
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["kind_loss"] + logs["size_loss"], rel=1e-5)
    assert logs["kind_accuracy"] > 0.8


def test_loss_weights_scale_each_output_in_the_total():
    x, y = data()
    model = compiled(loss_weights={"kind": 0.5, "size": 3.0})
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(0.5 * logs["kind_loss"] + 3.0 * logs["size_loss"], rel=1e-5)


def test_inputs_and_targets_can_be_dicts_by_name():
    x, y = data()
    model = compiled()
    by_list = model.evaluate(x, y, verbose=0)
    by_name = model.evaluate({"right": x[1], "left": x[0]}, {"size": y[1], "kind": y[0]}, verbose=0)
    np.testing.assert_allclose(by_list, by_name, rtol=1e-6)


def test_predict_returns_one_array_per_output_and_accepts_a_loader_with_targets():
    x, y = data(10)
    model = compiled()
    kind, size = model.predict(x, batch_size=4)
    assert kind.shape == (10, 2) and size.shape == (10, 1)
    from_loader = model.predict(DataLoader((*x, *y), batch_size=3, shuffle=False))
    np.testing.assert_allclose(from_loader[1], size, rtol=1e-6)


def mean_prediction(y_true, y_pred):
    return float(y_pred.numpy().mean())


def test_a_flat_metric_list_applies_to_every_output_with_its_own_state():
    x, y = data()
    model = compiled(metrics=[mean_prediction])
    kind, size = model.predict(x)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["kind_mean_prediction"] == pytest.approx(kind.mean(), rel=1e-5)
    assert logs["size_mean_prediction"] == pytest.approx(size.mean(), rel=1e-5)


def test_train_and_test_on_batch_with_several_inputs():
    x, y = data(8)
    model = compiled()
    before = model.test_on_batch(x, y)
    for _ in range(5):
        model.train_on_batch(x, y)
    after = model.test_on_batch(x, y)
    assert len(before) == 3 and after[0] < before[0]


def test_save_and_load_keep_per_output_losses_weights_and_metrics(tmp_path):
    x, y = data()
    model = compiled(metrics={"kind": ["accuracy"]}, loss_weights=[1.0, 2.0])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "multi.safetensors")
    loaded = cnnkit.load_model(tmp_path / "multi.safetensors")
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True), rel=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: m.fit(x[0], y, verbose=0), r"2 x entries \['left', 'right'\]"),
    (lambda m, x, y: m.fit(x, y[0], verbose=0), r"2 y entries \['kind', 'size'\]"),
    (lambda m, x, y: m.fit({"left": x[0]}, y, verbose=0), r"keys \['left', 'right'\]"),
    (lambda m, x, y: m.fit([x[0], x[1][:5]], y, verbose=0), r"same number of samples"),
    (lambda m, x, y: m.fit(DataLoader((x[0], y[0])), verbose=0), r"2 input\(s\) and 2 target\(s\), got 2"),
])
def test_mismatched_inputs_or_targets_get_clear_errors(call, message):
    x, y = data(12)
    with pytest.raises(ValueError, match=message):
        call(compiled(), x, y)


def test_compile_checks_per_output_settings_against_the_outputs():
    model = two_in_two_out()
    with pytest.raises(ValueError, match="3 entries for 2 outputs"):
        model.compile("adam", loss=["mse", "mse", "mse"])
    with pytest.raises(ValueError, match=r"unknown outputs \['colour'\]"):
        model.compile("adam", loss={"kind": "mse", "colour": "mse"})
    with pytest.raises(ValueError, match=r"no loss for outputs \['size'\]"):
        model.compile("adam", loss={"kind": "mse"})
    single = cnnkit.Sequential([Input((2,)), Dense(1)])
    with pytest.raises(ValueError, match="2 per-output entries but the model has one output"):
        single.compile("adam", loss=["mse", "mae"])
    with pytest.raises(ValueError, match="loss_weights need a functional model with several outputs"):
        single.compile("adam", loss="mse", loss_weights=[2.0])


def test_one_entry_input_and_output_lists_take_plain_arrays():
    inputs = Input((4,))
    model = Model([inputs], [Dense(1, name="only")(inputs)])
    model.compile("sgd", "mse")
    x = np.ones((5, 4), np.float32)
    assert model.predict(x)[0].shape == (5, 1)
    model.fit(x, np.zeros((5, 1), np.float32), epochs=1, verbose=0)


def test_cross_validate_with_several_inputs_and_outputs():
    x, y = data(40)

    def build():
        return compiled(metrics={"kind": ["accuracy"]})

    for inputs in (x, {"left": x[0], "right": x[1]}):
        result = cnnkit.models.cross_validate(build, inputs, y, n_splits=2, epochs=1)
        assert len(result["folds"]) == 2 and "kind_accuracy" in result["mean"]


def test_run_tracker_records_each_outputs_loss_and_metric_keys(tmp_path):
    x, y = data(16)
    model = compiled(metrics={"kind": ["accuracy"]})
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cnnkit.callbacks.RunTracker(tmp_path, name="multi")])
    described = cnnkit.callbacks.load_run(cnnkit.callbacks.list_runs(tmp_path)[0])["config"]
    assert set(described["loss"]) == {"kind", "size"}
    assert described["metrics"] == ["kind_accuracy"]
