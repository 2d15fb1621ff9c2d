import numpy as np
import pytest

from cnnkit.layers import (Add, Average, BatchNormalization, Concatenate, ELU, Input, LeakyReLU, Maxout, Multiply,
                           ReLU, Softmax, Subtract)
from tests.helpers import tensor


def test_batch_norm_normalises_in_training_and_tracks_moving_statistics(device, rng):
    layer = BatchNormalization(momentum=0.5)
    x = tensor((rng.standard_normal((8, 3, 4, 4)) * 3 + 2).astype(np.float32), device)
    y = layer(x, training=True).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-2)
    # the first update is bias-corrected: the moving statistics are the batch's, nothing of the initial 0 and 1
    np.testing.assert_allclose(layer.moving_mean.numpy(), x.numpy().mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), x.numpy().var(axis=(0, 2, 3)), rtol=1e-4)
    assert len(layer.trainable_weights) == 2 and len(layer.non_trainable_weights) == 2


def _batches(rng, count):
    return [(rng.standard_normal((6, 2, 3, 3)) * (1 + i % 3) + i % 5).astype(np.float64) for i in range(count)]


def test_batch_norm_moving_statistics_are_the_momentum_weighted_average_of_the_batches_seen(rng):
    momentum = 0.9
    layer = BatchNormalization(momentum=momentum, dtype="float64")
    batches = _batches(rng, 7)
    for x in batches:
        layer(x, training=True)
    weights = momentum ** np.arange(len(batches))[::-1]           # the newest batch weighs most
    means = np.array([x.mean(axis=(0, 2, 3)) for x in batches])
    variances = np.array([x.var(axis=(0, 2, 3)) for x in batches])
    np.testing.assert_allclose(layer.moving_mean.numpy(), weights @ means / weights.sum(), rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance.numpy(), weights @ variances / weights.sum(), rtol=1e-12)
    assert layer.updates_seen == 7


def test_batch_norm_matches_the_keras_and_pytorch_update_after_many_steps(rng):
    momentum = 0.9
    layer = BatchNormalization(momentum=momentum, dtype="float64")
    keras_mean, keras_var = np.zeros(2), np.ones(2)               # Keras' initial values and update
    for x in _batches(rng, 400):
        layer(x, training=True)
        keras_mean = keras_mean * momentum + x.mean(axis=(0, 2, 3)) * (1 - momentum)
        keras_var = keras_var * momentum + x.var(axis=(0, 2, 3)) * (1 - momentum)
    np.testing.assert_allclose(layer.moving_mean.numpy(), keras_mean, rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance.numpy(), keras_var, rtol=1e-12)
    assert layer._update_momentum() == pytest.approx(momentum, abs=1e-15)


def test_batch_norm_statistics_set_from_elsewhere_take_the_plain_keras_update(rng):
    layer = BatchNormalization(momentum=0.5, dtype="float64")
    layer.build_from_shape((None, 2, 3, 3))
    layer.set_weights([np.ones(2), np.zeros(2), np.full(2, 4.0), np.full(2, 9.0)])
    x = _batches(rng, 1)[0]
    layer(x, training=True)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.5 * 4 + 0.5 * x.mean(axis=(0, 2, 3)))


def test_batch_norm_uses_moving_statistics_in_inference_and_when_frozen(rng):
    layer = BatchNormalization()
    x = rng.standard_normal((8, 2, 3, 3)).astype(np.float32) + 5
    np.testing.assert_allclose(layer(x).numpy(), x / np.sqrt(1 + 1e-3), rtol=1e-5)
    layer.trainable = False
    before = layer.moving_mean.numpy().copy()
    np.testing.assert_allclose(layer(x, training=True).numpy(), x / np.sqrt(1 + 1e-3), rtol=1e-5)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), before)


def test_merges_combine_element_wise():
    a, b = np.full((2, 3), 2.0, np.float32), np.full((2, 3), 6.0, np.float32)
    assert Add()([a, b]).numpy()[0, 0] == 8
    assert Subtract()([a, b]).numpy()[0, 0] == -4
    assert Multiply()([a, b]).numpy()[0, 0] == 12
    assert Average()([a, b]).numpy()[0, 0] == 4


def test_merge_shape_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Add 'add(_\d+)?': all inputs must have the same shape, got "
                                         r"\(None, 32, 14, 14\) and \(None, 64, 14, 14\)"):
        Add()([Input((32, 14, 14)), Input((64, 14, 14))])


def test_concatenate_joins_channels():
    out = Concatenate()([Input((3, 5, 5)), Input((4, 5, 5))])
    assert out.shape == (None, 7, 5, 5)
    y = Concatenate()([np.zeros((1, 3, 2, 2), np.float32), np.ones((1, 4, 2, 2), np.float32)])
    assert y.shape == (1, 7, 2, 2) and y.numpy()[0, 3:].min() == 1
    with pytest.raises(ValueError, match="inputs must match on every axis but 1"):
        Concatenate()([Input((3, 5, 5)), Input((4, 6, 5))])


def test_activation_layers():
    x = np.array([[-2.0, 0.5]], np.float32)
    np.testing.assert_allclose(ReLU()(x).numpy(), [[0, 0.5]])
    np.testing.assert_allclose(LeakyReLU()(x).numpy(), [[-0.2, 0.5]])
    np.testing.assert_allclose(ELU()(x).numpy(), [[np.exp(-2) - 1, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(Softmax()(x).numpy().sum(), 1, rtol=1e-6)


def test_maxout_keeps_the_largest_piece_of_each_unit():
    x = np.array([[1.0, 5.0, -3.0, 2.0, 0.0, -1.0]], np.float32)
    np.testing.assert_array_equal(Maxout(2)(x).numpy(), [[5.0, 2.0]])
    with pytest.raises(ValueError, match="not a multiple of num_units=4"):
        Maxout(4)(Input((6,)))
