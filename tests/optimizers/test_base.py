import json

import numpy as np
import pytest

import cnnkit
from cnnkit.optimizers import SGD, Adadelta, Adagrad, Adam, AdamW, Optimizer, RMSprop, get, schedules, serialize
from tests.optimizers.harness import (assert_close, expected, gradient_steps, initial_values, make_params, run,
                                      set_grads)

ALL_OPTIMIZERS = [
    lambda **kw: SGD(learning_rate=0.1, momentum=0.9, nesterov=True, **kw),
    lambda **kw: Adagrad(learning_rate=0.1, **kw),
    lambda **kw: RMSprop(learning_rate=0.01, momentum=0.5, centered=True, **kw),
    lambda **kw: Adadelta(learning_rate=1.0, **kw),
    lambda **kw: Adam(learning_rate=0.01, amsgrad=True, **kw),
    lambda **kw: AdamW(learning_rate=0.01, **kw),
]
IDS = ["sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw"]


def plain_sgd(lr):
    return lambda p, g, state, t: p - lr * g


def sgd_rule_momentum(lr, momentum):
    def update(p, g, state, t):
        state["v"] = momentum * state.get("v", 0.0) - lr * g
        return p + state["v"]
    return update


# ---------------------------------------------------------------- clipping

def test_clipvalue_clips_each_element(device):
    params, steps = make_params(device), gradient_steps()
    actual = run(SGD(params, 1.0, clipvalue=0.5), params, steps)
    assert_close(actual, expected(lambda p, g, s, t: p - np.clip(g, -0.5, 0.5), steps))


def test_clipnorm_rescales_each_gradient_on_its_own(device):
    params, steps = make_params(device), gradient_steps(1)
    norms = [np.linalg.norm(g) for g in steps[0]]
    limit = float(np.mean(norms))  # between the two norms: one gradient is clipped, the other not
    assert min(norms) < limit < max(norms)
    actual = run(SGD(params, 1.0, clipnorm=limit), params, steps)
    assert_close(actual, expected(lambda p, g, s, t: p - g * min(1.0, limit / np.linalg.norm(g)), steps))


def test_global_clipnorm_rescales_all_gradients_together(device):
    params, steps = make_params(device), gradient_steps(1)
    total = np.sqrt(sum(np.sum(g ** 2) for g in steps[0]))
    actual = run(SGD(params, 1.0, global_clipnorm=total / 3), params, steps)
    assert_close(actual, expected(lambda p, g, s, t: p - g / 3, steps))
    params = make_params(device)
    untouched = run(SGD(params, 1.0, global_clipnorm=total * 2), params, steps)
    assert_close(untouched, expected(plain_sgd(1.0), steps))


def test_clipvalue_then_clipnorm(device):
    params, steps = make_params(device), gradient_steps(1)

    def rule(p, g, state, t):
        g = np.clip(g, -0.5, 0.5)
        return p - g * min(1.0, 0.7 / np.linalg.norm(g))

    assert_close(run(SGD(params, 1.0, clipvalue=0.5, clipnorm=0.7), params, steps), expected(rule, steps))


@pytest.mark.parametrize("clip", [{"clipvalue": 0.1}, {"clipnorm": 0.1}, {"global_clipnorm": 0.1}])
def test_clipping_leaves_grad_untouched(device, clip):
    params = make_params(device)
    set_grads(params, gradient_steps(1)[0])
    before = [p.grad.numpy().copy() for p in params]
    grad_arrays = [p.grad.data for p in params]
    Adam(params, **clip).step()
    for p, array, values in zip(params, grad_arrays, before):
        assert p.grad.data is array
        np.testing.assert_array_equal(p.grad.numpy(), values)


def test_clipnorm_and_global_clipnorm_exclude_each_other():
    with pytest.raises(ValueError, match="give clipnorm or global_clipnorm, not both"):
        SGD(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match=r"clipvalue must be in \(0, inf\), got 0"):
        SGD(clipvalue=0)


# ---------------------------------------------------------------- parameters and state

@pytest.mark.parametrize("make", ALL_OPTIMIZERS, ids=IDS)
def test_frozen_parameters_are_untouched_and_get_no_state(device, make):
    params = make_params(device)
    params[1].trainable = False
    frozen_before = params[1].numpy().copy()
    optimizer = make(params=params, weight_decay=0.1)
    for grads in gradient_steps():
        set_grads(params, grads)  # a gradient on the frozen parameter must still be ignored
        optimizer.step()
    assert params[1].numpy().tobytes() == frozen_before.tobytes()
    assert not np.allclose(params[0].numpy(), initial_values()[0])
    slots = optimizer.state_dict()["slots"]
    assert slots[0] and slots[1] == {}


def test_parameters_without_gradient_are_skipped(device):
    params = make_params(device)
    optimizer = Adam(params)
    params[0].grad = cnnkit.Tensor(cnnkit.backend.to_device(np.ones((3, 4)), device))
    optimizer.step()
    assert optimizer.state_dict()["slots"][1] == {}
    np.testing.assert_array_equal(params[1].numpy(), initial_values()[1])


@pytest.mark.parametrize("make", ALL_OPTIMIZERS, ids=IDS)
def test_updates_keep_array_identity_and_float32(device, make):
    params = make_params(device, dtype=np.float32)
    arrays = [p.data for p in params]
    optimizer = make(params=params, clipnorm=1.0)
    run(optimizer, params, gradient_steps())
    for p, array in zip(params, arrays):
        assert p.data is array and p.dtype == np.float32
    for slots in optimizer.state_dict()["slots"]:
        assert all(a.dtype == np.float32 for a in slots.values())


def test_float32_matches_float64_formula(device):
    params, steps = make_params(device, dtype=np.float32), gradient_steps()
    actual = run(SGD(params, 0.1, momentum=0.9), params, steps)
    params64 = make_params("cpu")
    wanted = run(SGD(params64, 0.1, momentum=0.9), params64, steps)
    assert_close(actual, wanted, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", ALL_OPTIMIZERS, ids=IDS)
def test_state_dict_round_trip_resumes_exactly(device, make):
    steps = gradient_steps()
    reference_params = make_params(device)
    uninterrupted = run(make(params=reference_params, clipvalue=2.0), reference_params, steps)

    params = make_params(device)
    first = make(params=params, clipvalue=2.0)
    run(first, params, steps[:2])
    state = first.state_dict()
    json.dumps(state["config"])
    assert state["iterations"] == 2 and all(isinstance(a, np.ndarray) for s in state["slots"] for a in s.values())

    resumed_params = make_params(device, values=[p.numpy() for p in params])
    fresh = type(first).from_config(state["config"])
    fresh.build(resumed_params)
    fresh.load_state_dict(state)
    assert fresh.iterations == 2
    resumed = run(fresh, resumed_params, steps[2:])
    for a, b in zip(resumed, uninterrupted):
        np.testing.assert_array_equal(a, b)


def test_state_dict_is_a_copy_and_load_overwrites_slots_in_place(device):
    params = make_params(device)
    optimizer = SGD(params, 0.1, momentum=0.9)
    run(optimizer, params, gradient_steps(1))
    state = optimizer.state_dict()
    saved = state["slots"][0]["velocity"].copy()
    velocity = optimizer._slots[0]["velocity"]
    run(optimizer, params, gradient_steps(2)[1:])
    np.testing.assert_array_equal(state["slots"][0]["velocity"], saved)
    optimizer.load_state_dict(state)
    assert optimizer._slots[0]["velocity"] is velocity
    np.testing.assert_array_equal(cnnkit.to_numpy(velocity), saved)
    assert optimizer.iterations == 1


def test_load_state_dict_names_what_does_not_match(device):
    params = make_params(device)
    optimizer = Adam(params)
    run(optimizer, params, gradient_steps(1))
    state = optimizer.state_dict()

    wrong_shapes = make_params(device, values=[np.zeros((4, 3)), np.zeros(5)])
    with pytest.raises(ValueError, match=r"slot 'm' of parameter 0 \('p0'\) has shape \(3, 4\) in the state, "
                                         r"but the parameter has shape \(4, 3\)"):
        Adam(wrong_shapes).load_state_dict(state)
    with pytest.raises(ValueError, match="slots for 2 parameters, but this optimizer has 1"):
        Adam(make_params(device)[:1]).load_state_dict(state)
    with pytest.raises(ValueError, match=r"has slots \['m', 'v'\] in the state, but .* use \['m', 'v', 'vhat'\]"):
        Adam(make_params(device), amsgrad=True).load_state_dict(state)
    with pytest.raises(ValueError, match="cannot load the state of a 'Adam' into a SGD"):
        SGD(make_params(device)).load_state_dict(state)
    with pytest.raises(RuntimeError, match="load_state_dict has no parameters"):
        Adam().load_state_dict(state)


def test_load_state_dict_restores_the_learning_rate():
    optimizer = SGD(make_params("cpu"), 0.1)
    optimizer.learning_rate = 0.025  # as ReduceLROnPlateau would
    fresh = SGD(make_params("cpu"), 0.1)
    fresh.load_state_dict(optimizer.state_dict())
    assert fresh.learning_rate == 0.025


# ---------------------------------------------------------------- building

def test_params_may_be_given_later(device):
    steps = gradient_steps()
    params = make_params(device)
    optimizer = SGD(learning_rate=0.1)
    assert not optimizer.built
    set_grads(params, steps[0])
    optimizer.step(params)
    assert optimizer.params == tuple(params)
    for grads in steps[1:]:
        set_grads(params, grads)
        optimizer.step(params)  # the same list again is fine
    assert_close([p.numpy() for p in params], expected(plain_sgd(0.1), steps))
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


def test_a_new_parameter_list_keeps_the_state_of_known_parameters(device):
    """As when fit() passes trainable_weights and a layer is frozen, then unfrozen, between calls."""
    params, steps = make_params(device), gradient_steps()
    optimizer = SGD(learning_rate=0.1, momentum=0.9)
    set_grads(params, steps[0])
    optimizer.step(params)
    set_grads(params, steps[1])
    optimizer.step(params[1:])
    assert optimizer.params == (params[1],) and len(optimizer.state_dict()["slots"]) == 1
    set_grads(params, steps[2])
    optimizer.step(params)
    wanted_p1 = expected(sgd_rule_momentum(0.1, 0.9), steps)[1]
    wanted_p0 = initial_values()[0] - 0.1 * steps[0][0] - 0.1 * steps[2][0]  # its velocity started afresh
    assert_close([p.numpy() for p in params], [wanted_p0, wanted_p1])


def test_to_moves_the_slots(device):
    params, steps = make_params("cpu"), gradient_steps()
    optimizer = Adam(params, 0.01)
    run(optimizer, params, steps[:2])
    for p in params:
        p.data = cnnkit.backend.to_device(p.data, device)
    assert optimizer.to(device) is optimizer
    assert all(cnnkit.backend.device_of(a) == device for slots in optimizer._slots for a in slots.values())
    run(optimizer, params, steps[2:])
    reference = make_params("cpu")
    for a, b in zip([p.numpy() for p in params], run(Adam(reference, 0.01), reference, steps)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_slots_follow_parameters_moved_without_the_optimizer(device):
    params, steps = make_params("cpu"), gradient_steps()
    optimizer = Adam(params, 0.01)
    run(optimizer, params, steps[:2])
    for p in params:
        p.data = cnnkit.backend.to_device(p.data, device)  # as layer.to(device) on one layer does
    run(optimizer, params, steps[2:])
    assert all(cnnkit.backend.device_of(a) == device for slots in optimizer._slots for a in slots.values())
    reference = make_params("cpu")
    for a, b in zip([p.numpy() for p in params], run(Adam(reference, 0.01), reference, steps)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_build_errors():
    params = make_params("cpu")
    with pytest.raises(RuntimeError, match="step has no parameters; pass them"):
        SGD().step()
    with pytest.raises(ValueError, match="more than once"):
        SGD([params[0], params[0]])
    with pytest.raises(TypeError, match=r"params\[1\] must be a cnnkit.Parameter, got Tensor"):
        SGD([params[0], cnnkit.Tensor(np.zeros(3))])
    with pytest.raises(TypeError, match=r"the first argument is params .* Adam\(learning_rate=0.01\)"):
        Adam(0.01)


def test_gradient_shape_mismatch_is_reported(device):
    params = make_params(device)
    params[1].grad = cnnkit.Tensor(cnnkit.backend.to_device(np.zeros(4), device))
    with pytest.raises(ValueError, match=r"gradient of parameter 1 \('p1'\) has shape \(4,\), .* shape \(5,\)"):
        SGD(params).step()


# ---------------------------------------------------------------- learning rate

def test_schedule_drives_the_learning_rate_through_iterations(device):
    params, steps = make_params(device), gradient_steps()
    optimizer = SGD(params, schedules.StepDecay(1.0, step_size=1, factor=0.5))
    assert optimizer.learning_rate == 1.0
    actual = run(optimizer, params, steps)
    assert_close(actual, expected(lambda p, g, s, t: p - 0.5 ** (t - 1) * g, steps))
    assert optimizer.iterations == 3 and optimizer.learning_rate == 0.125


def test_setting_a_float_replaces_the_schedule(device):
    params, steps = make_params(device), gradient_steps()
    optimizer = Adam(params, schedules.ExponentialDecay(0.1, 1, 0.5))
    optimizer.learning_rate = 0.5
    assert optimizer.learning_rate == 0.5 and optimizer.get_config()["learning_rate"] == 0.5
    set_grads(params, steps[0])
    optimizer.step()
    assert optimizer.learning_rate == 0.5
    with pytest.raises(ValueError, match=r"learning_rate must be in \[0, inf\), got -0.5"):
        optimizer.learning_rate = -0.5


def test_zero_learning_rate_changes_nothing(device):
    params = make_params(device)
    run(SGD(params, 0.0, momentum=0.9), params, gradient_steps())
    assert_close([p.numpy() for p in params], initial_values(), rtol=0, atol=0)


# ---------------------------------------------------------------- config and get

@pytest.mark.parametrize("make", ALL_OPTIMIZERS, ids=IDS)
def test_config_round_trip(make):
    optimizer = make(global_clipnorm=1.5)
    optimizer.learning_rate = schedules.CosineDecay(0.1, 100, alpha=0.1, warmup_target=0.2, warmup_steps=10)
    config = json.loads(json.dumps(optimizer.get_config()))
    rebuilt = get({"class_name": type(optimizer).__name__, "config": config})
    assert type(rebuilt) is type(optimizer) and rebuilt.get_config() == optimizer.get_config()
    assert serialize(rebuilt) == {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def test_plain_function_schedules_work_but_do_not_serialise():
    optimizer = SGD(learning_rate=lambda step: 0.1 / (1 + step))
    optimizer.iterations = 4
    assert optimizer.learning_rate == pytest.approx(0.02)
    with pytest.raises(TypeError, match="only LearningRateSchedule objects can be serialised"):
        optimizer.get_config()


@pytest.mark.parametrize("name,cls", [("sgd", SGD), ("Adam", Adam), ("ADAMW", AdamW), ("rmsprop", RMSprop),
                                      ("adagrad", Adagrad), ("adadelta", Adadelta)])
def test_get_by_name(name, cls):
    optimizer = get(name)
    assert type(optimizer) is cls and not optimizer.built
    assert optimizer.get_config() == cls().get_config()


def test_get_passes_optimizers_through_and_rejects_unknowns():
    optimizer = SGD()
    assert get(optimizer) is optimizer
    valid = "sgd, adagrad, rmsprop, adadelta, adam, adamw"
    with pytest.raises(ValueError, match=f"unknown optimizer 'adamax'; valid: {valid}"):
        get("adamax")
    with pytest.raises(TypeError, match="optimizer must be a name"):
        get(3)
    with pytest.raises(TypeError):
        Optimizer()


def test_keras_defaults():
    assert SGD().learning_rate == 0.01
    assert (Adam().beta_1, Adam().beta_2, Adam().epsilon) == (0.9, 0.999, 1e-7)
    assert (RMSprop().rho, Adadelta().rho, Adagrad().initial_accumulator_value) == (0.9, 0.95, 0.1)
    assert AdamW().weight_decay == 0.004 and Adam().weight_decay is None
    assert Adam().name == "adam"


# ---------------------------------------------------------------- learning

@pytest.mark.parametrize("name,config", [
    ("sgd", {"learning_rate": 0.1}), ("adagrad", {"learning_rate": 0.5}), ("rmsprop", {"learning_rate": 0.05}),
    # Adadelta's first steps are about √epsilon long: the default 1e-7 needs thousands of steps.
    ("adadelta", {"learning_rate": 1.0, "epsilon": 1e-3}),
    ("adam", {"learning_rate": 0.1}), ("adamw", {"learning_rate": 0.1})])
def test_every_optimizer_minimises_a_quadratic(device, name, config):
    target = cnnkit.Tensor(cnnkit.backend.to_device(np.linspace(-1.0, 1.0, 6), device))
    w = cnnkit.Parameter(cnnkit.backend.to_device(np.zeros(6), device))
    optimizer = get({"class_name": name, "config": config})
    optimizer.build([w])
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = ((w - target) ** 2).sum()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
