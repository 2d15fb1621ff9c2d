"""A tiny model, tiny data and recording callbacks shared by the callback tests."""
import numpy as np

import cnnkit
from cnnkit.callbacks import Callback
from cnnkit.layers import Dense, Dropout


def data(n=64, features=4, seed=0):
    """Two linearly separable-ish classes: float32 inputs, int64 labels."""
    generator = np.random.default_rng(seed)
    x = generator.standard_normal((n, features)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")
    return x, y


def make_model(dropout=0.0, optimizer="adam", learning_rate=0.01, metrics=("accuracy",)):
    """Dense(8) -> [Dropout] -> Dense(2), compiled with a from-logits cross-entropy."""
    layers = [Dense(8, activation="relu", input_shape=(4,))]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(2))
    model = cnnkit.Sequential(layers)
    model.compile(optimizer=cnnkit.optimizers.get(optimizer), loss=cnnkit.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=list(metrics))
    model.optimizer.learning_rate = learning_rate
    return model


class ScriptedLogs(Callback):
    """Puts ``values[epoch]`` into the epoch logs under ``key``, so a monitored quantity is exactly known."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        if epoch < len(self.values) and self.values[epoch] is not None:
            logs[self.key] = self.values[epoch]


class Recorder(Callback):
    """Keeps a copy of the epoch logs and of every weight at the end of each epoch."""

    def __init__(self):
        super().__init__()
        self.logs, self.weights, self.epochs = [], [], []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.logs.append(dict(logs or {}))
        self.weights.append([w.numpy().copy() for w in self.model.weights])


def weights_of(model):
    return [w.numpy().copy() for w in model.weights]


def assert_same_weights(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)
