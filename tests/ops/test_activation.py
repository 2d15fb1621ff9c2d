import math
import warnings

import numpy as np
import pytest

from cnnkit import backend, registry
from cnnkit.ops.activation import (
    elu,
    erf,
    gelu,
    leaky_relu,
    log_softmax,
    maxout,
    relu,
    sigmoid,
    silu,
    softmax,
    swish,
    tanh,
)
from cnnkit.testing import gradcheck
from tests.helpers import randn, tensor

math_erf = np.vectorize(math.erf)


def _numpy_sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))  # an identity independent of the implementation


EXPECTED = {
    "relu": (relu, lambda x: np.maximum(x, 0)),
    "leaky_relu": (leaky_relu, lambda x: np.where(x > 0, x, 0.1 * x)),
    "elu": (elu, lambda x: np.where(x > 0, x, np.exp(x) - 1)),
    "sigmoid": (sigmoid, _numpy_sigmoid),
    "tanh": (tanh, np.tanh),
    "silu": (silu, lambda x: x * _numpy_sigmoid(x)),
    "gelu": (gelu, lambda x: 0.5 * x * (1 + math_erf(x / math.sqrt(2)))),
    "gelu_tanh": (lambda t: gelu(t, approximate=True),
                  lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    "leaky_relu_0.3": (lambda t: leaky_relu(t, alpha=0.3), lambda x: np.where(x > 0, x, 0.3 * x)),
    "elu_2": (lambda t: elu(t, alpha=2.0), lambda x: np.where(x > 0, x, 2 * (np.exp(x) - 1))),
}


def test_erf_matches_math_erf_on_a_dense_grid(device):
    special = [0.0, -0.0, 1e-300, -1e-300, 5e-324, 1e-8, -1e-8, 1.0, -1.0, 2.5, -2.5, 3.0, -3.0,
               6.0, -6.0, 30.0, -30.0, 1e300, -1e300]
    grid = np.concatenate([np.linspace(-7, 7, 70001), special])
    y = backend.to_numpy(erf(backend.to_device(grid, device)))
    np.testing.assert_allclose(y, math_erf(grid), rtol=2e-15, atol=2e-15)
    assert np.signbit(y[np.flatnonzero(np.signbit(grid) & (grid == 0))]).all()  # erf(−0) = −0


def test_erf_handles_infinities_nan_and_float32(device):
    x = backend.to_device(np.array([np.inf, -np.inf, np.nan]), device)
    np.testing.assert_array_equal(backend.to_numpy(erf(x)), [1.0, -1.0, np.nan])
    grid = np.linspace(-5, 5, 1001).astype(np.float32)
    y = erf(backend.to_device(grid, device))
    assert y.dtype == np.float32
    np.testing.assert_allclose(backend.to_numpy(y), math_erf(grid.astype(np.float64)), atol=2e-6)


@pytest.mark.parametrize("name", EXPECTED)
def test_forward_matches_numpy_formula(device, rng, name):
    fn, expected = EXPECTED[name]
    x = rng.standard_normal((3, 5, 7)) * 3
    y = fn(tensor(x, device))
    assert y.shape == x.shape and y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), expected(x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", EXPECTED)
def test_float32_stays_float32(device, rng, name):
    fn, expected = EXPECTED[name]
    x = rng.standard_normal((2, 3)).astype(np.float32)
    t = tensor(x, device, requires_grad=True)
    y = fn(t)
    y.sum().backward()
    assert y.dtype == np.float32 and t.grad.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), expected(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", EXPECTED)
@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 7)])
def test_gradients(device, rng, name, shape):
    fn, _ = EXPECTED[name]
    gradcheck(fn, [randn(rng, *shape, device=device)])


def test_swish_is_silu():
    assert swish is silu


def test_leaky_relu_default_slope_is_a_tenth():
    assert leaky_relu(tensor([-2.0])).numpy()[0] == pytest.approx(-0.2)


def test_every_activation_registers_a_forward_and_a_gradient_reference():
    for name in ("relu", "leaky_relu", "elu", "sigmoid", "tanh", "silu", "gelu"):
        registry.lookup(name, on_gpu=False)
        registry.lookup(name + "_grad", on_gpu=False)
    registry.lookup("softmax", on_gpu=False)
    registry.lookup("log_softmax", on_gpu=False)


@pytest.mark.parametrize("fn", [sigmoid, silu, elu, gelu, tanh])
def test_extreme_inputs_give_finite_values_without_warnings(device, fn):
    x = tensor(np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0]), device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = fn(x)
        y.sum().backward()
    assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad.numpy()).all()


def test_sigmoid_saturates_exactly(device):
    y = sigmoid(tensor(np.array([-1000.0, 0.0, 1000.0]), device)).numpy()
    np.testing.assert_array_equal(y, [0.0, 0.5, 1.0])


def test_gelu_tanh_approximation_is_close_to_exact(device):
    x = tensor(np.linspace(-6, 6, 121), device)
    np.testing.assert_allclose(gelu(x, approximate=True).numpy(), gelu(x).numpy(), atol=1e-3)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax(device, rng, axis):
    x = rng.standard_normal((3, 4, 5))
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    expected = shifted / shifted.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(softmax(tensor(x, device), axis).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(log_softmax(tensor(x, device), axis).numpy(), np.log(expected), rtol=1e-12)
    gradcheck(lambda t: softmax(t, axis), [randn(rng, 3, 4, 5, device=device)])
    gradcheck(lambda t: log_softmax(t, axis), [randn(rng, 3, 4, 5, device=device)])
    gradcheck(lambda t: softmax(t, axis), [randn(rng, 1, 3, 1, device=device)])


def test_softmax_is_stable_for_huge_logits(device):
    x = tensor(np.array([[1000.0, -1000.0, 999.0], [-1000.0, -1000.0, -1000.0]]), device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = log_softmax(x)
        (y * tensor(np.arange(6.0).reshape(2, 3), device)).sum().backward()
        p = softmax(x).numpy()
    assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert y.numpy()[0, 1] == pytest.approx(-2000 - math.log1p(math.exp(-1)))


def test_softmax_rejects_a_bad_axis():
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        softmax(tensor(np.zeros((2, 3))), axis=2)


@pytest.mark.parametrize("axis", [1, -1])
def test_maxout_takes_the_max_of_consecutive_groups(device, rng, axis):
    x = rng.standard_normal((2, 6, 3)) if axis == 1 else rng.standard_normal((2, 3, 6))
    y = maxout(tensor(x, device), 3, axis=axis)
    moved = np.moveaxis(x, axis, -1)
    expected = np.moveaxis(moved.reshape(moved.shape[:-1] + (2, 3)).max(axis=-1), -1, axis)
    np.testing.assert_array_equal(y.numpy(), expected)
    gradcheck(lambda t: maxout(t, 3, axis=axis), [tensor(x, device, requires_grad=True)])


def test_maxout_rejects_indivisible_axis():
    with pytest.raises(ValueError, match="axis 1 has size 5, which is not divisible by pieces=2"):
        maxout(tensor(np.zeros((2, 5))), 2)
    with pytest.raises(ValueError, match="pieces must be a positive integer"):
        maxout(tensor(np.zeros((2, 4))), 0)
