"""Bad data is refused before the first optimizer step, in cnnkit's words, naming the argument and sample."""
import numpy as np
import pytest

import cnnkit
from cnnkit.callbacks import Callback
from cnnkit.data import DataLoader, Dataset
from cnnkit.layers import Dense


def classifier(classes=3):
    model = cnnkit.Sequential([cnnkit.Input((4,)), Dense(classes)])
    model.compile("sgd", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def blobs(n=64, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, classes, n)


class Steps(Callback):
    def __init__(self):
        super().__init__()
        self.count = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.count += 1


def test_a_label_out_of_range_anywhere_in_y_is_refused_before_the_first_step():
    model = classifier()
    x, y = blobs()
    y[50] = 3  # in the last batch
    steps = Steps()
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(ValueError, match=r"fit: y must hold class indices in \[0, 3\) for a model with 3 output "
                                         r"classes, got values from 0 to 3 \(the first out of range at sample 50\)"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[steps])
    assert steps.count == 0
    assert all(np.array_equal(w.numpy(), b) for w, b in zip(model.weights, before))


def test_validation_data_is_checked_as_thoroughly_as_the_training_data():
    model = classifier()
    x, y = blobs()
    steps = Steps()
    bad_labels = y[:16].copy()
    bad_labels[3] = -1
    with pytest.raises(ValueError, match=r"fit \(validation_data\): y must hold class indices in \[0, 3\).*sample 3"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x[:16], bad_labels), callbacks=[steps])
    with pytest.raises(ValueError, match=r"fit \(validation_data\): the first sample does not fit the model"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x[:16, :3], y[:16]), callbacks=[steps])
    with pytest.raises(TypeError, match=r"fit \(validation_data\): the first sample does not fit.*integer class"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x[:16], y[:16].astype(np.float32)),
                  callbacks=[steps])
    nan_inputs = x[:16].copy()
    nan_inputs[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"fit \(validation_data\): x contains NaN or Inf \(first at sample 7\)"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(nan_inputs, y[:16]), callbacks=[steps])
    assert steps.count == 0


def test_nan_in_evaluate_inputs_is_blamed_on_x_not_on_the_predictions():
    model = classifier()
    x, y = blobs()
    x[9, 2] = np.inf
    with pytest.raises(ValueError, match=r"evaluate: x contains NaN or Inf \(first at sample 9\)"):
        model.evaluate(x, y, verbose=0)


def test_ragged_lists_as_x_name_the_sample_that_differs():
    model = classifier()
    x = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8], [0.9, 1.0, 1.1]]
    with pytest.raises(ValueError, match=r"x must hold samples of one shape, but x\[0\] has shape \(4,\) and x\[2\] "
                                         r"has shape \(3,\)"):
        model.fit(x, [0, 1, 2], epochs=1, verbose=0)


class Ragged(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        features = np.zeros(3 if index == 5 else 4, np.float32)
        return features, np.int64(index % 3)


def test_ragged_samples_in_a_dataloader_batch_name_the_sample():
    model = classifier()
    with pytest.raises(ValueError, match=r"DataLoader: field 0 of sample 5 has shape \(3,\), but sample 4 of the "
                                         r"same batch has \(4,\)"):
        model.fit(DataLoader(Ragged(), batch_size=4, shuffle=False), epochs=1, verbose=0)


def test_probability_loss_on_logits_is_refused_before_training():
    model = cnnkit.Sequential([cnnkit.Input((4,)), Dense(3)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    steps = Steps()
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy: y_pred holds values from .* "
                                         "SparseCategoricalCrossentropy\\(from_logits=True\\)"):
        model.fit(*blobs(), epochs=1, verbose=0, callbacks=[steps])
    assert steps.count == 0
