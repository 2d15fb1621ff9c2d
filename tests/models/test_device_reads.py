"""No host round trip inside a training step: counted with a recording fake of the device layer."""
import numpy as np
import pytest

import cnnkit
from cnnkit.callbacks import Callback, TerminateOnNaN
from cnnkit.layers import Conv2D, Dense, Flatten, MaxPool2D
from cnnkit.models import training
from tests.cuda.launch_recorder import FakeCudaArray
from tests.fake_gpu import fake_gpu  # noqa: F401  (the fixture)

STEPS = 12
REFRESH = 4


def data(n=STEPS * 8, classes=3):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 1, 6, 6)).astype(np.float32), rng.integers(0, classes, n)


def model(final_activation=None):
    cnnkit.manual_seed(0)
    return cnnkit.Sequential([cnnkit.Input((1, 6, 6)), Conv2D(4, 3, padding="same", activation="gelu"),
                              MaxPool2D(), Flatten(), Dense(3, activation=final_activation)])


class ReadsPerStep(Callback):
    """The host reads made during each step (from its begin hook to its end hook)."""

    def __init__(self, reads):
        super().__init__()
        self.reads, self.per_step, self.start = reads, [], 0

    def on_train_batch_begin(self, batch, logs=None):
        self.start = len(self.reads)

    def on_train_batch_end(self, batch, logs=None):
        self.per_step.append(self.reads[self.start:])


@pytest.mark.parametrize("loss, final_activation", [
    (cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), None),
    ("sparse_categorical_crossentropy", "softmax"),  # its probability and label checks stay on the device
])
def test_training_steps_read_nothing_between_refreshes(fake_gpu, monkeypatch, loss, final_activation):
    monkeypatch.setattr(training, "DEVICE_REFRESH_STEPS", REFRESH)
    network = model(final_activation)
    network.compile(cnnkit.optimizers.Adam(learning_rate=0.01, clipnorm=1.0), loss)
    recorder = ReadsPerStep(fake_gpu.host_reads)
    x, y = data()
    history = network.fit(x, y, batch_size=8, epochs=2, verbose=0, device="cuda", callbacks=[recorder])
    assert isinstance(network.weights[0].data, FakeCudaArray)
    assert len(recorder.per_step) == 2 * STEPS
    for step, reads in enumerate(recorder.per_step):
        refresh = (step % STEPS + 1) % REFRESH == 0
        # One read of the loss sums and one of the steps' checks, at refreshes only.
        assert len(reads) == (2 if refresh else 0), (step, reads)
    assert np.isfinite(history.history["loss"]).all()


def test_metrics_are_read_at_refreshes_only(fake_gpu, monkeypatch):
    monkeypatch.setattr(training, "DEVICE_REFRESH_STEPS", REFRESH)
    network = model()
    network.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    recorder = ReadsPerStep(fake_gpu.host_reads)
    history = network.fit(*data(), batch_size=8, epochs=1, verbose=0, device="cuda", callbacks=[recorder])
    counts = [len(reads) for reads in recorder.per_step]
    assert all(count == 0 for step, count in enumerate(counts) if (step + 1) % REFRESH)
    # At a refresh: the loss sums, the checks, and y_true and y_pred of each pending batch for the metric.
    assert all(count == 2 + 2 * REFRESH for step, count in enumerate(counts) if not (step + 1) % REFRESH)
    assert 0 <= history.history["accuracy"][0] <= 1


def nan_at(step_to_break):
    """A loss that turns NaN at one step (as after an overflow), counting the calls."""
    mse = cnnkit.losses.MeanSquaredError()
    calls = []

    def loss(y_true, y_pred):
        calls.append(1)
        value = mse(y_true, y_pred)
        return value * np.nan if len(calls) == step_to_break else value

    return loss, calls


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_a_nan_loss_stops_training_before_its_update_naming_epoch_and_batch(fake_gpu, monkeypatch, device):
    monkeypatch.setattr(training, "DEVICE_REFRESH_STEPS", REFRESH)
    loss, calls = nan_at(1 + STEPS + 2)  # after fit's check of one sample: epoch 2, batch 1
    network = cnnkit.Sequential([Dense(1, input_shape=(4,))])
    network.compile(cnnkit.optimizers.SGD(learning_rate=0.1, momentum=0.9), loss)
    x = np.random.default_rng(1).standard_normal((STEPS * 8, 4)).astype(np.float32)
    snapshot = Snapshot()
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 1: the loss is nan; that batch's update was not "
                                                 r"applied. Lower the learning rate \(now 0.1\)"):
        network.fit(x, x[:, :1] * 2.0, batch_size=8, epochs=3, verbose=0, shuffle=False, device=device,
                    callbacks=[snapshot])
    # The weights are those after batch 0 of epoch 2: neither the bad batch nor any later one was applied.
    for weight, expected in zip(network.weights, snapshot.weights[(1, 0)]):
        np.testing.assert_array_equal(weight.numpy(), expected)
    assert network.optimizer.iterations == STEPS + 1
    # On the CPU it stops at once; on the GPU at the next refresh, the steps in between gated on the device.
    assert len(calls) == 1 + (STEPS + 2 if device == "cpu" else STEPS + REFRESH)


class Snapshot(Callback):
    """The weights after every batch, by (epoch, batch)."""

    def __init__(self):
        super().__init__()
        self.weights, self.epoch = {}, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.weights[(self.epoch, batch)] = [w.numpy().copy() for w in self.model.weights]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_terminate_on_nan_stops_instead_of_raising(fake_gpu, monkeypatch, capsys, device):
    monkeypatch.setattr(training, "DEVICE_REFRESH_STEPS", REFRESH)
    loss, _ = nan_at(1 + 2)  # after fit's check of one sample: epoch 1, batch 1
    network = cnnkit.Sequential([Dense(1, input_shape=(4,))])
    network.compile("sgd", loss)
    x = np.random.default_rng(1).standard_normal((STEPS * 8, 4)).astype(np.float32)
    snapshot = Snapshot()
    history = network.fit(x, x[:, :1] * 2.0, batch_size=8, epochs=3, verbose=0, device=device,
                          callbacks=[TerminateOnNaN(), snapshot])
    assert history.epoch == [0]
    assert "TerminateOnNaN: epoch 1, batch 1: the loss is nan" in capsys.readouterr().out
    for weight, expected in zip(network.weights, snapshot.weights[(0, 0)]):
        np.testing.assert_array_equal(weight.numpy(), expected)


def test_train_on_batch_reads_once_and_copies_nothing(fake_gpu):
    network = model()
    network.compile("sgd", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    network.to("cuda")
    x, y = data(8)
    x_device = cnnkit.backend.to_device(x, "cuda")
    network.train_on_batch(x_device, y)
    fake_gpu.host_reads.clear()
    loss = network.train_on_batch(x_device, y)
    assert np.isfinite(loss)
    assert len(fake_gpu.host_reads) == 2, fake_gpu.host_reads  # the loss (the result) and the step's checks; no NaN scan of x


def test_train_on_batch_blames_nan_inputs_after_a_nan_loss(fake_gpu):
    network = model()
    network.compile("sgd", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(8)
    x[5, 0, 2, 2] = np.nan
    network.to("cuda")
    with pytest.raises(ValueError, match="x contains NaN or Inf \\(first at sample 5\\)"):
        network.train_on_batch(x, y)
    assert network.optimizer.iterations == 0


def test_exact_gelu_and_max_pool_backward_read_nothing(fake_gpu):
    from cnnkit.ops import gelu, max_pool
    from tests.fake_gpu import on_device

    x = np.random.default_rng(2).standard_normal((2, 3, 6, 6)) * 4  # both sides of erf's switch
    x[0, 0, 0, 0] = np.nan  # a NaN window, routed on the device
    inputs = cnnkit.Tensor(on_device(x), requires_grad=True)
    max_pool(gelu(inputs), 2).sum().backward()
    assert fake_gpu.host_reads == []
    expected = cnnkit.Tensor(x, requires_grad=True)
    max_pool(gelu(expected), 2).sum().backward()
    np.testing.assert_array_equal(np.asarray(inputs.grad.data), expected.grad.data)
