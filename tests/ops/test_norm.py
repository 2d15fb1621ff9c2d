import numpy as np
import pytest

import cnnkit
from cnnkit.ops.norm import batch_norm
from cnnkit.testing import gradcheck
from tests.helpers import randn, tensor


def stats(rng, C, device):
    """Moving statistics as non-trainable parameters, as a layer holds them."""
    mean = cnnkit.Parameter(rng.standard_normal(C), trainable=False)
    var = cnnkit.Parameter(rng.uniform(0.5, 2.0, C), trainable=False)
    return mean.to(device), var.to(device)


def numpy_batch_norm(x, gamma, beta, mean, var, eps, axis):
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape) + beta.reshape(shape)


SHAPES = [((5, 3), 1), ((2, 3, 5, 7), 1), ((1, 3, 4, 5), 1), ((3, 5, 2), -1), ((2, 4, 3), 0)]


@pytest.mark.parametrize("shape,axis", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_gradients(device, rng, shape, axis, training):
    C = shape[axis]
    x = randn(rng, *shape, device=device)
    gamma = tensor(rng.uniform(0.5, 1.5, C), device, requires_grad=True)
    beta = randn(rng, C, device=device)
    mean, var = stats(rng, C, device)
    # the moving statistics change at every training call; gradcheck only needs y
    gradcheck(lambda x, g, b: batch_norm(x, g, b, mean, var, training=training, axis=axis), [x, gamma, beta])


@pytest.mark.parametrize("shape,axis", SHAPES)
def test_training_normalises_each_channel_and_updates_moving_statistics(device, rng, shape, axis):
    C = shape[axis]
    x = rng.standard_normal(shape) * 3 + 2
    gamma, beta = rng.uniform(0.5, 1.5, C), rng.standard_normal(C)
    mean, var = stats(rng, C, device)
    old_mean, old_var = mean.numpy().copy(), var.numpy().copy()
    y = batch_norm(tensor(x, device), tensor(gamma, device), tensor(beta, device), mean, var,
                   training=True, momentum=0.9, eps=1e-3, axis=axis)
    others = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    batch_mean, batch_var = x.mean(axis=others), x.var(axis=others)
    np.testing.assert_allclose(y.numpy(), numpy_batch_norm(x, gamma, beta, batch_mean, batch_var, 1e-3, axis),
                               rtol=1e-10, atol=1e-12)
    channel = [1] * x.ndim
    channel[axis] = C
    x_hat = (y.numpy() - beta.reshape(channel)) / gamma.reshape(channel)
    np.testing.assert_allclose(x_hat.mean(axis=others), 0.0, atol=1e-12)
    np.testing.assert_allclose(x_hat.var(axis=others), batch_var / (batch_var + 1e-3), rtol=1e-10)
    np.testing.assert_allclose(mean.numpy(), 0.9 * old_mean + 0.1 * batch_mean, rtol=1e-12)
    np.testing.assert_allclose(var.numpy(), 0.9 * old_var + 0.1 * batch_var, rtol=1e-12)


def test_inference_uses_moving_statistics_and_leaves_them_alone(device, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    gamma, beta = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    mean, var = stats(rng, 3, device)
    old_mean, old_var = mean.numpy().copy(), var.numpy().copy()
    y = batch_norm(tensor(x, device), tensor(gamma, device), tensor(beta, device), mean, var, training=False)
    np.testing.assert_allclose(y.numpy(), numpy_batch_norm(x, gamma, beta, old_mean, old_var, 1e-3, 1), rtol=1e-12)
    np.testing.assert_array_equal(mean.numpy(), old_mean)
    np.testing.assert_array_equal(var.numpy(), old_var)


def test_training_output_has_zero_mean_unit_variance_per_channel_in_float32(device, rng):
    x = (rng.standard_normal((16, 4, 8, 8)) * 5 - 3).astype(np.float32)
    mean, var = tensor(np.zeros(4, np.float32), device), tensor(np.ones(4, np.float32), device)
    y = batch_norm(tensor(x, device), None, None, mean, var, training=True, eps=1e-5).numpy()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-3)


def test_moving_statistics_may_be_plain_arrays_updated_in_place(rng):
    moving_mean, moving_var = np.zeros(3), np.ones(3)
    x = rng.standard_normal((4, 3))
    batch_norm(tensor(x), None, None, moving_mean, moving_var, training=True, momentum=0.5)
    np.testing.assert_allclose(moving_mean, 0.5 * x.mean(axis=0))
    np.testing.assert_allclose(moving_var, 0.5 + 0.5 * x.var(axis=0))


def test_inference_backward_is_unaffected_by_a_later_update_of_the_moving_statistics(rng):
    x = randn(rng, 4, 3)
    mean, var = np.zeros(3), np.ones(3)
    gamma = tensor(np.ones(3), requires_grad=True)
    y = batch_norm(x, gamma, None, mean, var, training=False, eps=0.0)
    batch_norm(tensor(rng.standard_normal((4, 3)) + 10), None, None, mean, var, training=True, momentum=0.0)
    y.sum().backward()
    np.testing.assert_allclose(gamma.grad.numpy(), x.numpy().sum(axis=0))


def test_batch_statistics_need_more_than_one_value_per_channel(rng):
    mean, var = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match=r"more than one value per channel, but input of shape \(1, 3\) has 1"):
        batch_norm(tensor(rng.standard_normal((1, 3))), None, None, mean, var, training=True)
    y = batch_norm(tensor(rng.standard_normal((1, 3))), None, None, mean, var, training=False)
    assert y.shape == (1, 3)


def test_bad_parameters_are_explained(rng):
    x = tensor(rng.standard_normal((2, 3, 4)))
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\) for 3 channels, got \(4,\)"):
        batch_norm(x, tensor(np.ones(4)), None, np.zeros(3), np.ones(3), training=True)
    with pytest.raises(TypeError, match="moving_var has dtype float32, but x has dtype float64"):
        batch_norm(x, None, None, np.zeros(3), np.ones(3, np.float32), training=True)
    with pytest.raises(ValueError, match=r"axis 3 is out of range for input of shape \(2, 3, 4\)"):
        batch_norm(x, None, None, np.zeros(3), np.ones(3), training=True, axis=3)
