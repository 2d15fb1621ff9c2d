import numpy as np
import pytest

import cnnkit
from cnnkit.ops.dropout import Dropout, dropout
from cnnkit.testing import gradcheck
from tests.helpers import randn, tensor


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 7)])
def test_gradient_with_a_fixed_seed(device, rng, shape):
    gradcheck(lambda t: Dropout(0.4, seed=7, stream=2)(t), [randn(rng, *shape, device=device)])


def test_gradient_through_dropout_under_manual_seed(device, rng):
    def fn(t):
        cnnkit.manual_seed(3)  # gradcheck needs the same mask at every evaluation
        return dropout(t, 0.5)

    gradcheck(fn, [randn(rng, 3, 5, device=device)])


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_drops_about_rate_and_preserves_the_mean(device, rate):
    x = tensor(np.ones((200, 500), dtype=np.float32), device)
    y = dropout(x, rate).numpy()
    assert y.dtype == np.float32
    assert np.mean(y == 0) == pytest.approx(rate, abs=0.01)
    assert y.mean() == pytest.approx(1.0, abs=0.02)
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / (1 - rate)], rtol=1e-6)


def test_gradient_uses_the_forward_mask(device, rng):
    x = tensor(rng.standard_normal((4, 6)), device, requires_grad=True)
    y = dropout(x, 0.5)
    y.backward(np.ones((4, 6)))
    np.testing.assert_array_equal(x.grad.numpy() == 0, y.numpy() == 0)


def test_reproducible_under_manual_seed(device):
    x = tensor(np.ones((8, 9)), device)
    cnnkit.manual_seed(42)
    first, second = dropout(x, 0.3).numpy(), dropout(x, 0.3).numpy()
    cnnkit.manual_seed(42)
    np.testing.assert_array_equal(dropout(x, 0.3).numpy(), first)
    np.testing.assert_array_equal(dropout(x, 0.3).numpy(), second)
    assert not np.array_equal(first, second)


def test_identity_in_inference_and_at_rate_zero(device, rng):
    x = tensor(rng.standard_normal((3, 4)), device)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", True])
def test_rate_must_be_in_zero_one(rate):
    with pytest.raises(ValueError, match=r"dropout: rate must be a number in \[0, 1\)"):
        dropout(tensor(np.ones(3)), rate)
