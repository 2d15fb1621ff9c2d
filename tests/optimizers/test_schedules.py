import json
import math

import pytest

from cnnkit.optimizers.schedules import (CosineDecay, ExponentialDecay, LinearWarmup, PiecewiseConstantDecay,
                                         StepDecay, deserialize, serialize)


def check(schedule, table):
    for step, rate in table.items():
        assert schedule(step) == pytest.approx(rate, rel=1e-12, abs=1e-15), f"step {step}"


def test_exponential_decay():
    check(ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5),
          {0: 0.1, 5: 0.1 * 0.5 ** 0.5, 10: 0.05, 20: 0.025, 25: 0.1 * 0.5 ** 2.5})
    check(ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True),
          {0: 0.1, 9: 0.1, 10: 0.05, 15: 0.05, 29: 0.025})


def test_step_decay():
    check(StepDecay(1.0, step_size=3), {0: 1.0, 2: 1.0, 3: 0.1, 5: 0.1, 6: 0.01, 7: 0.01})
    check(StepDecay(0.2, step_size=2, factor=0.5), {1: 0.2, 2: 0.1, 4: 0.05})


def test_piecewise_constant_boundaries_belong_to_the_earlier_piece():
    check(PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]),
          {0: 1.0, 10: 1.0, 11: 0.5, 20: 0.5, 21: 0.1, 1000: 0.1})


def test_cosine_decay_without_warmup():
    check(CosineDecay(0.1, decay_steps=100, alpha=0.2),
          {0: 0.1, 25: 0.1 * (0.8 * 0.5 * (1 + math.cos(math.pi / 4)) + 0.2), 50: 0.06, 100: 0.02, 150: 0.02})


def test_cosine_decay_warms_up_then_decays_from_the_target():
    schedule = CosineDecay(0.02, decay_steps=100, warmup_target=0.2, warmup_steps=10)
    check(schedule, {0: 0.02, 5: 0.11, 10: 0.2, 35: 0.2 * 0.5 * (1 + math.cos(math.pi / 4)), 60: 0.1, 110: 0.0,
                     500: 0.0})


def test_linear_warmup_ramps_from_zero():
    check(LinearWarmup(0.4, warmup_steps=4), {0: 0.0, 1: 0.1, 3: 0.3, 4: 0.4, 10: 0.4})
    # The wrapped schedule sees the same step: at step 3 the ramp is 3/4 of StepDecay's 0.5.
    check(LinearWarmup(StepDecay(1.0, step_size=2, factor=0.5), warmup_steps=4),
          {0: 0.0, 1: 0.25, 2: 0.25, 3: 0.375, 4: 0.25, 6: 0.125})


@pytest.mark.parametrize("schedule", [
    ExponentialDecay(0.1, 10, 0.9, staircase=True), StepDecay(0.1, 5, 0.3), PiecewiseConstantDecay([3, 9], [3, 2, 1]),
    CosineDecay(0.01, 50, alpha=0.1, warmup_target=0.1, warmup_steps=5),
    LinearWarmup(CosineDecay(0.1, 40), warmup_steps=8), LinearWarmup(0.3, warmup_steps=2)])
def test_serialisation_round_trip(schedule):
    rebuilt = deserialize(json.loads(json.dumps(serialize(schedule))))
    assert type(rebuilt) is type(schedule) and rebuilt.get_config() == schedule.get_config()
    assert [rebuilt(s) for s in range(0, 60, 7)] == [schedule(s) for s in range(0, 60, 7)]


@pytest.mark.parametrize("make,error,message", [
    (lambda: ExponentialDecay(0.1, 0, 0.5), ValueError, "decay_steps must be an integer >= 1, got 0"),
    (lambda: ExponentialDecay(-0.1, 10, 0.5), ValueError, "initial_learning_rate must be >= 0, got -0.1"),
    (lambda: StepDecay(0.1, 2, factor="half"), TypeError, "factor must be a finite number, got 'half'"),
    (lambda: PiecewiseConstantDecay([5, 5], [1, 2, 3]), ValueError, r"strictly increasing, got \[5, 5\]"),
    (lambda: PiecewiseConstantDecay([5], [1]), ValueError, "one more entry than boundaries, got 1 boundaries and 1"),
    (lambda: CosineDecay(0.1, 10, warmup_steps=5), ValueError, "warmup_steps=5 needs warmup_target"),
    (lambda: LinearWarmup(0.1, 0), ValueError, "warmup_steps must be an integer >= 1"),
    (lambda: deserialize({"class_name": "OneCycle", "config": {}}), ValueError,
     "unknown learning-rate schedule 'OneCycle'; valid: ExponentialDecay, StepDecay"),
])
def test_schedules_validate_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()
