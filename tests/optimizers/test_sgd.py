import numpy as np
import pytest

from cnnkit.optimizers import SGD
from tests.optimizers.harness import assert_close, expected, gradient_steps, make_params, run


def sgd_rule(lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """Keras' SGD written out: v = m·v − lr·g; p += v, or p += m·v − lr·g with Nesterov."""
    def update(p, g, state, t):
        p = p - lr * weight_decay * p
        if momentum == 0.0:
            return p - lr * g
        v = momentum * state.get("v", 0.0) - lr * g
        state["v"] = v
        return p + momentum * v - lr * g if nesterov else p + v
    return update


@pytest.mark.parametrize("momentum,nesterov,weight_decay", [
    (0.0, False, None), (0.9, False, None), (0.9, True, None), (0.0, False, 0.1), (0.8, True, 0.05)])
def test_sgd_matches_formula(device, momentum, nesterov, weight_decay):
    params = make_params(device)
    steps = gradient_steps()
    optimizer = SGD(params, learning_rate=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    actual = run(optimizer, params, steps)
    assert_close(actual, expected(sgd_rule(0.1, momentum, nesterov, weight_decay or 0.0), steps))
    assert optimizer.iterations == 3


def test_momentum_agrees_with_pytorch_form_at_constant_rate(device):
    """PyTorch keeps b = m·b + g and steps p −= lr·b (Nesterov: p −= lr·(g + m·b)); Keras' v is −lr·b."""
    def torch_rule(p, g, state, t):
        b = 0.9 * state.get("b", 0.0) + g
        state["b"] = b
        return p - 0.05 * (g + 0.9 * b)

    params = make_params(device)
    steps = gradient_steps()
    actual = run(SGD(params, lr=0.05, momentum=0.9, nesterov=True), params, steps)
    assert_close(actual, expected(torch_rule, steps))


def test_nesterov_and_plain_momentum_differ(device):
    steps = gradient_steps()
    plain, nesterov = make_params(device), make_params(device)
    a = run(SGD(plain, 0.1, momentum=0.9), plain, steps)
    b = run(SGD(nesterov, 0.1, momentum=0.9, nesterov=True), nesterov, steps)
    assert not np.allclose(a[0], b[0])


def test_sgd_without_momentum_keeps_no_state(device):
    params = make_params(device)
    optimizer = SGD(params)
    run(optimizer, params, gradient_steps(1))
    assert optimizer.state_dict()["slots"] == [{}, {}]


def test_sgd_validates_its_hyperparameters():
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\], got -0.1"):
        SGD(momentum=-0.1)
    with pytest.raises(ValueError, match="nesterov=True needs a momentum > 0"):
        SGD(nesterov=True)
    with pytest.raises(ValueError, match=r"learning_rate must be in \[0, inf\), got -1"):
        SGD(learning_rate=-1)
    with pytest.raises(TypeError, match="learning_rate must be a finite number"):
        SGD(learning_rate=float("nan"))
    with pytest.raises(TypeError, match="both learning_rate=0.5 and its alias lr=0.1"):
        SGD(learning_rate=0.5, lr=0.1)
