"""compile / fit / evaluate / predict and their error messages."""
import numpy as np
import pytest

import cnnkit
from cnnkit import Input, Sequential
from cnnkit.callbacks import Callback
from cnnkit.datasets import load_digits, make_spirals
from cnnkit.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU


def mlp(inputs=2, classes=2):
    return Sequential([Input((inputs,)), Dense(32, activation="relu"), Dense(32, activation="relu"), Dense(classes)])


def blobs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def test_fit_learns_and_returns_a_history(device):
    x, y = blobs(128)
    model = mlp()
    model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=8, validation_split=0.25, verbose=0, device=device)
    assert history.epoch == list(range(8))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["val_accuracy"][-1] > 0.8
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.85 and model.predict(x).shape == (128, 2)


def test_mlp_reaches_97_percent_on_two_spirals():
    cnnkit.manual_seed(0)
    x, y = make_spirals(400, noise=0.0, seed=0)
    model = Sequential([Input((2,)), Dense(64, activation="relu"), Dense(64, activation="relu"), Dense(2)])
    model.compile(cnnkit.optimizers.Adam(learning_rate=0.01),
                  cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=150, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] >= 0.97


def test_hand_written_loop_trains_a_cnn_on_random_images():
    cnnkit.manual_seed(0)
    rng = np.random.default_rng(0)
    x = cnnkit.Tensor(rng.random((32, 1, 8, 8)).astype(np.float32))
    y = rng.integers(0, 4, 32)
    model = Sequential([Input((1, 8, 8)), Conv2D(8, 3, activation="relu"), BatchNormalization(), MaxPool2D(),
                        Flatten(), Dense(4)])
    loss_fn = cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = cnnkit.optimizers.SGD(model.parameters(), learning_rate=0.1, momentum=0.9)
    losses = []
    for _ in range(30):
        loss = loss_fn(y, model(x, training=True))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_digits_cnn_reaches_97_percent():
    cnnkit.manual_seed(0)
    (x, y), (x_test, y_test) = load_digits()
    model = Sequential([Input((1, 8, 8)), Conv2D(32, 3, padding="same"), BatchNormalization(), ReLU(), MaxPool2D(),
                        Conv2D(64, 3, padding="same"), BatchNormalization(), ReLU(), MaxPool2D(), Flatten(),
                        Dense(128, activation="relu"), Dropout(0.25), Dense(10)])
    model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=15, verbose=0)
    assert model.evaluate(x_test, y_test, verbose=0)[1] >= 0.97


def test_train_on_batch_and_test_on_batch():
    x, y = blobs(16)
    model = mlp()
    model.compile("sgd", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    first = model.train_on_batch(x, y)
    assert isinstance(first, list) and len(first) == 2
    assert model.test_on_batch(x, y, return_dict=True).keys() == {"loss", "accuracy"}
    assert model.predict_on_batch(x).shape == (16, 2)


def test_regularizers_add_to_the_training_loss():
    x, y = blobs(16)
    plain = Sequential([Input((2,)), Dense(2, kernel_initializer="ones")])
    penalised = Sequential([Input((2,)), Dense(2, kernel_initializer="ones", kernel_regularizer=cnnkit.regularizers.L2(0.5))])
    for model in (plain, penalised):
        model.compile(cnnkit.optimizers.SGD(learning_rate=0.0), "mse")
    targets = np.zeros((16, 2), np.float32)
    assert penalised.train_on_batch(x, targets) == pytest.approx(plain.train_on_batch(x, targets) + 0.5 * 4, rel=1e-5)


def test_frozen_layers_do_not_change_and_get_no_optimizer_state():
    x, y = blobs(32)
    model = mlp()
    frozen = model.layers[0]
    frozen.trainable = False
    before = [w.numpy().copy() for w in frozen.weights]
    model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    for old, new in zip(before, frozen.weights):
        np.testing.assert_array_equal(old, new.numpy())
    assert all(w not in model.optimizer.params for w in frozen.weights)


def test_callbacks_see_every_hook_and_can_stop_training():
    events = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            events.append("train_begin")

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch", epoch, sorted(logs)))
            if epoch == 1:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            events.append("train_end")

    x, y = blobs(32)
    model = mlp()
    model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(x, y, epochs=5, callbacks=[Recorder()], verbose=0)
    assert events[0] == "train_begin" and events[-1] == "train_end"
    assert events[1] == ("epoch", 0, ["accuracy", "loss"]) and len(history.epoch) == 2


def test_shuffling_is_reproducible_under_manual_seed():
    x, y = blobs(64)
    results = []
    for _ in range(2):
        cnnkit.manual_seed(3)
        model = mlp()
        model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_verbose_one_without_a_terminal_prints_one_line_per_epoch(capsys):
    x, y = blobs(16)
    model = mlp()
    model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=1)
    err = capsys.readouterr().err
    assert err.count("Epoch ") == 2 and "loss:" in err


@pytest.mark.parametrize("x,y,message", [
    (np.zeros((4, 2), np.uint8), np.zeros(4, np.int64), "has dtype uint8; the model needs floating-point inputs"),
    (np.array([[0, 1], [np.nan, 0]], np.float32), np.zeros(2, np.int64), "contains NaN or Inf"),
    (np.zeros((4, 2), np.float32), np.zeros(3, np.int64), "same number of samples, got x: 4, y: 3"),
])
def test_bad_training_data_is_refused_with_a_clear_error(x, y, message):
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises((TypeError, ValueError), match=message):
        model.fit(x, y, verbose=0)


def test_training_before_compile_and_bad_names():
    with pytest.raises(RuntimeError, match=r"call compile\(optimizer=..., loss=...\) before fit"):
        mlp().fit(*blobs(), verbose=0)
    with pytest.raises(ValueError, match="categorical_crossentropy"):
        mlp().compile("adam", loss="cross_entropy")
    with pytest.raises(ValueError, match="adam"):
        mlp().compile("adamm", loss="mse")


def test_cross_validation_trains_one_fresh_model_per_fold():
    from cnnkit.models import cross_validate
    x, y = blobs(60)
    built = []

    def build():
        model = mlp()
        model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        built.append(model)
        return model

    result = cross_validate(build, x, y, n_splits=3, epochs=15, batch_size=8)
    assert len(result["folds"]) == 3 and len({id(m) for m in built}) == 3
    assert set(result["mean"]) == {"loss", "accuracy"} and result["mean"]["accuracy"] > 0.8
    with pytest.raises(ValueError, match="must return a compiled model"):
        cross_validate(mlp, x, y, n_splits=2)


def test_validation_split_takes_a_python_list_of_samples_for_a_one_input_model():
    x, y = blobs(32)
    model = mlp()
    model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(list(x), y, batch_size=8, epochs=1, validation_split=0.25, verbose=0)
    assert "val_loss" in history.history
