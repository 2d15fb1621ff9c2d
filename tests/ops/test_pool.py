import itertools

import numpy as np
import pytest

from cnnkit.ops.pool import avg_pool, global_avg_pool, global_max_pool, l2_pool, max_pool, pool
from cnnkit.window import make_geometry
from cnnkit.testing import gradcheck
from tests.helpers import randn, tensor


def direct_pool(x, mode, geometry):
    """The definition, one window at a time, padding excluded: an independent oracle."""
    N, C = x.shape[:2]
    out = geometry.output_size(x.shape[2:])
    y = np.zeros((N, C) + out)
    for n, c in itertools.product(range(N), range(C)):
        for o in itertools.product(*(range(s) for s in out)):
            values = []
            for k in itertools.product(*(range(s) for s in geometry.window)):
                pos = tuple(o[i] * geometry.stride[i] + k[i] - geometry.padding[i][0] for i in range(len(o)))
                if all(0 <= p < size for p, size in zip(pos, x.shape[2:])):
                    values.append(x[(n, c) + pos])
            values = np.array(values)
            y[(n, c) + o] = {"max": values.max(), "avg": values.mean(),
                             "l2": np.sqrt(np.mean(values ** 2))}[mode]
    return y


CASES = [
    # (x shape, pool size, strides, padding)
    ((2, 3, 9), 2, None, "valid"),
    ((1, 2, 8), 3, 2, "same"),
    ((2, 2, 7, 6), 2, None, "valid"),
    ((1, 3, 7, 7), 3, 2, "same"),
    ((2, 1, 5, 8), (2, 3), (1, 2), ((1, 0), (1, 2))),
    ((1, 2, 4, 5, 6), 2, None, "same"),
]


@pytest.mark.parametrize("mode", ["max", "avg", "l2"])
@pytest.mark.parametrize("case", CASES)
def test_forward_matches_the_definition(device, rng, mode, case):
    x_shape, size, strides, padding = case
    x = rng.standard_normal(x_shape)
    rank = len(x_shape) - 2
    geometry = make_geometry(rank, size, size if strides is None else strides, padding, 1, x_shape[2:])
    y = pool(tensor(x, device), mode, size, strides, padding)
    np.testing.assert_allclose(y.numpy(), direct_pool(x, mode, geometry), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["max", "avg", "l2"])
@pytest.mark.parametrize("case", CASES)
def test_gradients_match_finite_differences(device, rng, mode, case):
    x_shape, size, strides, padding = case
    x = randn(rng, *x_shape, device=device)
    gradcheck(lambda t: pool(t, mode, size, strides, padding), [x])


def test_max_pool_gradient_goes_to_the_first_maximum_only():
    x = tensor(np.array([[[[1.0, 1.0], [0.0, 1.0]]]]), requires_grad=True)
    max_pool(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[1.0, 0.0], [0.0, 0.0]]]])


def test_max_pool_propagates_nan_and_routes_its_gradient_to_the_nan():
    x = tensor(np.array([[[[1.0, np.nan], [0.0, 2.0]]]]), requires_grad=True)
    y = max_pool(x, 2)
    assert np.isnan(y.numpy()).all()
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_max_pool_ties_after_relu_send_the_gradient_to_the_first_zero(device):
    x = tensor(np.zeros((1, 1, 4, 4)), device, requires_grad=True)
    max_pool(x, 2).sum().backward()
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expected)


def test_l2_pool_of_zeros_has_a_zero_gradient():
    x = tensor(np.zeros((1, 1, 4, 4)), requires_grad=True)
    l2_pool(x, 2).sum().backward()
    assert np.all(np.isfinite(x.grad.numpy())) and not x.grad.numpy().any()


def test_average_excludes_padding():
    x = tensor(np.ones((1, 1, 3, 3)))
    y = avg_pool(x, 2, strides=2, padding="same")
    np.testing.assert_array_equal(y.numpy(), np.ones((1, 1, 2, 2)))


def test_global_pooling(device, rng):
    x = randn(rng, 2, 3, 4, 5, device=device)
    np.testing.assert_allclose(global_avg_pool(x).numpy(), x.numpy().mean(axis=(2, 3)))
    np.testing.assert_allclose(global_max_pool(x).numpy(), x.numpy().max(axis=(2, 3)))
    assert global_avg_pool(x, keepdims=True).shape == (2, 3, 1, 1)
    gradcheck(global_avg_pool, [x])
    gradcheck(global_max_pool, [x])


@pytest.mark.parametrize("kwargs,error,message", [
    ({"mode": "min", "pool_size": 2}, ValueError, "pooling mode must be one of max, avg, l2"),
    ({"mode": "max", "pool_size": 7}, ValueError, "max_pool2d: the window does not fit the input"),
    ({"mode": "max", "pool_size": 2, "padding": 2}, ValueError, "must be smaller than the pool size"),
])
def test_bad_configurations_explain_themselves(kwargs, error, message):
    with pytest.raises(error, match=message):
        pool(tensor(np.zeros((1, 1, 4, 4))), **kwargs)


def test_integer_input_is_rejected():
    with pytest.raises(TypeError, match="floating-point input, got dtype int64"):
        max_pool(tensor(np.zeros((1, 1, 4, 4), dtype=np.int64)), 2)
