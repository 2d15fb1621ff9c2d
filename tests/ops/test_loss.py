import warnings

import numpy as np
import pytest

from cnnkit.ops.loss import sigmoid_binary_cross_entropy, softmax_cross_entropy
from cnnkit.testing import gradcheck
from tests.helpers import randn, tensor


def numpy_log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_softmax_cross_entropy_with_class_indices(device, rng):
    z = rng.standard_normal((4, 5))
    labels = np.array([0, 4, 2, 2])
    loss = softmax_cross_entropy(tensor(z, device), tensor(labels, device))
    assert loss.shape == (4,)
    np.testing.assert_allclose(loss.numpy(), -numpy_log_softmax(z)[np.arange(4), labels], rtol=1e-12)


def test_softmax_cross_entropy_with_probabilities(device, rng):
    z = rng.standard_normal((3, 5))
    t = rng.dirichlet(np.ones(5), size=3)
    loss = softmax_cross_entropy(tensor(z, device), tensor(t, device))
    np.testing.assert_allclose(loss.numpy(), -(t * numpy_log_softmax(z)).sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("N", [1, 3])
def test_softmax_cross_entropy_gradients(device, rng, N):
    labels = tensor(rng.integers(0, 5, N), device)
    gradcheck(lambda z: softmax_cross_entropy(z, labels), [randn(rng, N, 5, device=device)])
    # unnormalised soft targets exercise the Σt factor of the gradient
    soft = tensor(rng.uniform(0, 1, (N, 5)), device)
    gradcheck(lambda z: softmax_cross_entropy(z, soft), [randn(rng, N, 5, device=device)])


def test_sigmoid_binary_cross_entropy_matches_the_formula(device, rng):
    z = rng.standard_normal((3, 5)) * 4
    t = rng.uniform(0, 1, (3, 5))
    p = 1 / (1 + np.exp(-z))
    loss = sigmoid_binary_cross_entropy(tensor(z, device), tensor(t, device))
    np.testing.assert_allclose(loss.numpy(), -(t * np.log(p) + (1 - t) * np.log(1 - p)), rtol=1e-10)
    gradcheck(lambda z: sigmoid_binary_cross_entropy(z, tensor(t, device)), [randn(rng, 3, 5, device=device)])
    gradcheck(lambda z: sigmoid_binary_cross_entropy(z, tensor(t[:1, :3], device)), [randn(rng, 1, 3, device=device)])


def test_huge_logits_give_finite_exact_losses_and_gradients(device):
    z = tensor(np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]]), device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = softmax_cross_entropy(z, tensor(np.array([1, 2]), device))
        loss.sum().backward()
    np.testing.assert_allclose(loss.numpy(), [2000.0, 1 + np.log1p(np.exp(-1))], rtol=1e-12)
    np.testing.assert_allclose(z.grad.numpy()[0], [1.0, -1.0, 0.0])

    b = tensor(np.array([1000.0, -1000.0, 1000.0]), device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bce = sigmoid_binary_cross_entropy(b, tensor(np.array([1.0, 0.0, 0.0]), device))
        bce.sum().backward()
    np.testing.assert_allclose(bce.numpy(), [0.0, 0.0, 1000.0])
    np.testing.assert_allclose(b.grad.numpy(), [0.0, 0.0, 1.0])


def test_targets_receive_no_gradient_and_float32_is_kept(device, rng):
    z = tensor(rng.standard_normal((2, 3)).astype(np.float32), device, requires_grad=True)
    t = tensor(np.eye(3, dtype=np.float32)[:2], device, requires_grad=True)
    loss = softmax_cross_entropy(z, t)
    loss.sum().backward()
    assert loss.dtype == np.float32 and z.grad.dtype == np.float32
    assert t.grad is None


def test_bad_inputs_are_explained():
    z = tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"class indices must have shape \(2,\) .* got \(3,\)"):
        softmax_cross_entropy(z, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"must have the logits' shape \(2, 3\), got \(2, 4\)"):
        softmax_cross_entropy(z, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"logits must have shape \(N, C\), got \(6,\)"):
        softmax_cross_entropy(tensor(np.zeros(6)), np.array([0]))
    with pytest.raises(TypeError, match="logits must be a float tensor, got dtype int64"):
        sigmoid_binary_cross_entropy(tensor(np.zeros(3, dtype=np.int64)), np.zeros(3))
    with pytest.raises(ValueError, match=r"target must have the logits' shape \(2, 3\)"):
        sigmoid_binary_cross_entropy(z, np.zeros(3))
