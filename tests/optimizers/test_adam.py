import numpy as np
import pytest

from cnnkit.optimizers import Adam, AdamW
from tests.optimizers.harness import assert_close, expected, gradient_steps, make_params, run


def adam_rule(lr, beta1, beta2, eps, amsgrad=False, weight_decay=0.0):
    """Kingma & Ba with Keras' epsilon placement: p −= lr·√(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√v + ε)."""
    def update(p, g, state, t):
        p = p - lr * weight_decay * p
        m = beta1 * state.get("m", 0.0) + (1 - beta1) * g
        v = beta2 * state.get("v", 0.0) + (1 - beta2) * g ** 2
        state["m"], state["v"] = m, v
        if amsgrad:
            v = np.maximum(state.get("vhat", 0.0), v)
            state["vhat"] = v
        return p - lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (np.sqrt(v) + eps)
    return update


@pytest.mark.parametrize("amsgrad,weight_decay", [(False, None), (True, None), (False, 0.1), (True, 0.1)])
def test_adam_matches_formula(device, amsgrad, weight_decay):
    params, steps = make_params(device), gradient_steps()
    # beta_2 = 0.5 lets v fall between steps, so AMSGrad's maximum matters; a large
    # epsilon makes its placement matter.
    optimizer = Adam(params, 0.01, beta_1=0.8, beta_2=0.5, epsilon=0.1, amsgrad=amsgrad, weight_decay=weight_decay)
    rule = adam_rule(0.01, 0.8, 0.5, 0.1, amsgrad, weight_decay or 0.0)
    assert_close(run(optimizer, params, steps), expected(rule, steps))


def test_adam_defaults_match_formula(device):
    params, steps = make_params(device), gradient_steps()
    assert_close(run(Adam(params), params, steps), expected(adam_rule(0.001, 0.9, 0.999, 1e-7), steps))


def test_amsgrad_changes_the_result(device):
    steps = gradient_steps()
    a, b = make_params(device), make_params(device)
    plain = run(Adam(a, 0.01, beta_2=0.5), a, steps)
    amsgrad = run(Adam(b, 0.01, beta_2=0.5, amsgrad=True), b, steps)
    assert not np.allclose(plain[0], amsgrad[0])


def test_adamw_is_adam_with_decoupled_decay(device):
    params, steps = make_params(device), gradient_steps()
    optimizer = AdamW(params, learning_rate=0.01, betas=(0.8, 0.5), eps=0.1)
    assert optimizer.weight_decay == 0.004
    assert_close(run(optimizer, params, steps), expected(adam_rule(0.01, 0.8, 0.5, 0.1, weight_decay=0.004), steps))


def test_adam_validates_its_hyperparameters():
    with pytest.raises(ValueError, match=r"beta_1 must be in \[0, 1\), got 1.0"):
        Adam(beta_1=1.0)
    with pytest.raises(ValueError, match=r"beta_2 must be in \[0, 1\), got -0.5"):
        Adam(betas=(0.9, -0.5))
    with pytest.raises(ValueError, match="weight_decay must be a float >= 0, got None"):
        AdamW(weight_decay=None)
    with pytest.raises(ValueError, match=r"weight_decay must be in \[0, inf\)"):
        AdamW(weight_decay=-0.1)
