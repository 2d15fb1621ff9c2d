import numpy as np
import pytest

from cnnkit.optimizers import Adadelta, Adagrad, RMSprop
from tests.optimizers.harness import assert_close, expected, gradient_steps, make_params, run


def adagrad_rule(lr, initial, eps, weight_decay):
    def update(p, g, state, t):
        p = p - lr * weight_decay * p
        a = state.get("a", initial) + g ** 2
        state["a"] = a
        return p - lr * g / np.sqrt(a + eps)
    return update


def rmsprop_rule(lr, rho, momentum, eps, centered, weight_decay):
    def update(p, g, state, t):
        p = p - lr * weight_decay * p
        s = rho * state.get("s", 0.0) + (1 - rho) * g ** 2
        state["s"] = s
        if centered:
            mean = rho * state.get("mean", 0.0) + (1 - rho) * g
            state["mean"] = mean
            u = lr * g / np.sqrt(s - mean ** 2 + eps)
        else:
            u = lr * g / np.sqrt(s + eps)
        if momentum == 0.0:
            return p - u
        m = momentum * state.get("m", 0.0) + u
        state["m"] = m
        return p - m
    return update


def adadelta_rule(lr, rho, eps, weight_decay):
    def update(p, g, state, t):
        p = p - lr * weight_decay * p
        G = rho * state.get("G", 0.0) + (1 - rho) * g ** 2
        D = state.get("D", 0.0)
        delta = -np.sqrt(D + eps) / np.sqrt(G + eps) * g
        state["G"], state["D"] = G, rho * D + (1 - rho) * delta ** 2
        return p + lr * delta
    return update


@pytest.mark.parametrize("initial,eps,weight_decay", [(0.1, 1e-7, None), (0.5, 0.3, None), (0.0, 0.2, 0.1)])
def test_adagrad_matches_formula(device, initial, eps, weight_decay):
    params, steps = make_params(device), gradient_steps()
    optimizer = Adagrad(params, 0.1, initial_accumulator_value=initial, epsilon=eps, weight_decay=weight_decay)
    assert_close(run(optimizer, params, steps), expected(adagrad_rule(0.1, initial, eps, weight_decay or 0.0), steps))


@pytest.mark.parametrize("momentum,centered,weight_decay", [
    (0.0, False, None), (0.7, False, None), (0.0, True, None), (0.7, True, None), (0.0, False, 0.2)])
def test_rmsprop_matches_formula(device, momentum, centered, weight_decay):
    params, steps = make_params(device), gradient_steps()
    optimizer = RMSprop(params, 0.01, rho=0.8, momentum=momentum, epsilon=0.1, centered=centered,
                        weight_decay=weight_decay)
    rule = rmsprop_rule(0.01, 0.8, momentum, 0.1, centered, weight_decay or 0.0)
    assert_close(run(optimizer, params, steps), expected(rule, steps))


def test_centered_rmsprop_differs_from_plain(device):
    steps = gradient_steps()
    a, b = make_params(device), make_params(device)
    plain = run(RMSprop(a, 0.01, rho=0.8), a, steps)
    centered = run(RMSprop(b, 0.01, rho=0.8, centered=True), b, steps)
    assert not np.allclose(plain[1], centered[1])


@pytest.mark.parametrize("rho,eps,weight_decay", [(0.95, 1e-7, None), (0.5, 0.05, None), (0.7, 0.01, 0.3)])
def test_adadelta_matches_formula(device, rho, eps, weight_decay):
    params, steps = make_params(device), gradient_steps()
    optimizer = Adadelta(params, learning_rate=1.0, rho=rho, epsilon=eps, weight_decay=weight_decay)
    assert_close(run(optimizer, params, steps), expected(adadelta_rule(1.0, rho, eps, weight_decay or 0.0), steps))


def test_slots_follow_the_settings(device):
    params = make_params(device)
    optimizer = RMSprop(params, momentum=0.5, centered=True)
    run(optimizer, params, gradient_steps(1))
    assert set(optimizer.state_dict()["slots"][0]) == {"velocity", "average_gradient", "momentum"}
    accumulator = Adagrad(params, initial_accumulator_value=0.25)
    run(accumulator, params, [[np.zeros(p.shape) for p in params]])
    np.testing.assert_array_equal(accumulator.state_dict()["slots"][1]["accumulator"], np.full(5, 0.25))


@pytest.mark.parametrize("make,message", [
    (lambda: RMSprop(rho=1.0), r"rho must be in \[0, 1\), got 1.0"),
    (lambda: RMSprop(momentum=2), r"momentum must be in \[0, 1\], got 2"),
    (lambda: Adadelta(epsilon=-1e-3), r"epsilon must be in \[0, inf\)"),
    (lambda: Adagrad(initial_accumulator_value=-0.1), r"initial_accumulator_value must be in \[0, inf\)"),
    (lambda: Adagrad(epsilon=1e-3, eps=1e-4), "both epsilon=0.001 and its alias eps=0.0001"),
])
def test_adaptive_optimizers_validate_hyperparameters(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()
