"""Keras habits: sample and class weights, input/output shapes, single samples and channels-last hints."""
import warnings

import numpy as np
import pytest

import cnnkit
from cnnkit import Input, Sequential
from cnnkit.layers import Conv2D, Dense, Flatten


def linear_model(seed=0):
    cnnkit.manual_seed(seed)
    return Sequential([Input((3,)), Dense(2)])


def data(n=12):
    rng = np.random.default_rng(3)
    return rng.standard_normal((n, 3)).astype(np.float32), rng.integers(0, 2, n)


def compiled(model, learning_rate=0.1):
    model.compile(cnnkit.optimizers.SGD(learning_rate=learning_rate),
                  cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def test_evaluate_weighs_each_sample_s_loss_and_divides_by_the_batch_size_as_keras():
    x, y = data()
    model = compiled(linear_model())
    per_sample = cnnkit.losses.sparse_categorical_crossentropy(y, model.predict(x), from_logits=True).numpy()
    weights = np.linspace(0, 2, len(x)).astype(np.float32)
    loss, accuracy = model.evaluate(x, y, sample_weight=weights, batch_size=5, verbose=0)
    assert loss == pytest.approx(float((per_sample * weights).sum() / len(x)), rel=1e-5)
    assert accuracy == model.evaluate(x, y, verbose=0)[1]                       # metrics stay unweighted


def test_fit_with_sample_weight_zero_ignores_those_samples():
    """Full-batch SGD with weights 1 on a subset equals training on the subset at a learning rate scaled by
    subset/N (the weighted loss is still divided by the whole batch)."""
    x, y = data()
    keep = np.arange(len(x)) % 3 != 0
    weighted = compiled(linear_model())
    weighted.fit(x, y, batch_size=len(x), epochs=3, shuffle=False, verbose=0, sample_weight=keep.astype(float))
    subset = compiled(linear_model(), learning_rate=0.1 * keep.sum() / len(x))
    subset.fit(x[keep], y[keep], batch_size=int(keep.sum()), epochs=3, shuffle=False, verbose=0)
    for a, b in zip(weighted.get_weights(), subset.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_class_weight_is_sample_weight_by_class_and_combines_with_it():
    x, y = data()
    by_class = compiled(linear_model())
    by_class.fit(x, y, batch_size=4, epochs=2, verbose=0, class_weight={0: 0.5, 1: 2.0},
                 sample_weight=np.full(len(x), 3.0))
    by_sample = compiled(linear_model())
    by_sample.fit(x, y, batch_size=4, epochs=2, verbose=0, sample_weight=np.where(y == 0, 1.5, 6.0))
    for a, b in zip(by_class.get_weights(), by_sample.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    one_hot = np.eye(2, dtype=np.float32)[y]
    model = linear_model()
    model.compile("sgd", cnnkit.losses.CategoricalCrossentropy(from_logits=True))  # the model outputs logits
    model.fit(x, one_hot, epochs=1, verbose=0, class_weight={0: 1.0, 1: 1.0}, validation_split=0.25)


def test_weights_are_checked_before_training():
    x, y = data()
    model = compiled(linear_model())
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"class_weight gives no weight for classes \[1\]"):
        model.fit(x, y, class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="every array must have the same number of samples"):
        model.fit(x, y, sample_weight=np.ones(len(x) - 1), verbose=0)
    with pytest.raises(ValueError, match="sample_weight must hold finite, non-negative weights"):
        model.fit(x, y, sample_weight=-np.ones(len(x)), verbose=0)
    with pytest.raises(ValueError, match="sample_weight must be a 1-D array"):
        model.evaluate(x, y, sample_weight=np.ones((len(x), 2)), verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_validation_data_may_carry_sample_weights():
    x, y = data()
    model = compiled(linear_model())
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, np.zeros(len(x))))
    assert history.history["val_loss"] == [0.0]


def test_predict_on_one_sample_says_to_add_a_batch_axis():
    model = Sequential([Input((1, 8, 8)), Flatten(), Dense(3)])
    with pytest.raises(ValueError, match=r"got \(1, 8, 8\); this looks like a single sample: add a batch axis, "
                                         r"e\.g\. x\[None\]"):
        model.predict(np.zeros((1, 8, 8), np.float32))
    assert model.predict(np.zeros((1, 8, 8), np.float32)[None]).shape == (1, 3)


def test_channels_last_images_get_the_transpose_hint():
    model = Sequential([Input((1, 28, 28)), Conv2D(4, 3), Flatten(), Dense(3)])
    with pytest.raises(ValueError, match=r"channels-last images \(N, H, W, C\).*x\.transpose\(0, 3, 1, 2\)"):
        model.predict(np.zeros((2, 28, 28, 1), np.float32))
    unshaped = Sequential([Conv2D(4, 3, padding="same"), Flatten(), Dense(3)])
    with pytest.warns(UserWarning, match=r"channels-last images .*x\.transpose\(0, 3, 1, 2\)"):
        unshaped.predict(np.zeros((2, 32, 32, 3), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Sequential([Conv2D(4, 3), Flatten(), Dense(3)]).predict(np.zeros((2, 3, 32, 32), np.float32))


def test_models_report_their_input_and_output_shapes():
    model = Sequential([Input((1, 8, 8)), Conv2D(4, 3), Flatten(), Dense(3)])
    assert model.input_shape == (None, 1, 8, 8) and model.output_shape == (None, 3)
    with pytest.raises(AttributeError, match="no symbolic input shape"):
        Sequential([Dense(3)]).input_shape


def test_train_and_test_on_batch_take_weights_as_keras():
    x, y = data()
    model = compiled(linear_model())
    per_sample = cnnkit.losses.sparse_categorical_crossentropy(y, model.predict(x), from_logits=True).numpy()
    weights = (y == 1).astype(np.float32)
    assert model.test_on_batch(x, y, sample_weight=weights)[0] == pytest.approx(
        float((per_sample * weights).mean()), rel=1e-5)
    assert model.train_on_batch(x, y, class_weight={0: 0.0, 1: 1.0})[0] == pytest.approx(
        float((per_sample * weights).mean()), rel=1e-5)
