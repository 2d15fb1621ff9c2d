"""Shared by the optimizer tests: two parameters of different shapes and three steps of fixed gradients."""
import numpy as np

import cnnkit
from cnnkit import backend

SHAPES = [(3, 4), (5,)]
STEPS = 3


def initial_values() -> list:
    rng = np.random.default_rng(7)
    return [rng.standard_normal(shape) for shape in SHAPES]


def gradient_steps(steps: int = STEPS) -> list:
    """``steps`` lists of gradients, one per parameter; they change from step to step."""
    rng = np.random.default_rng(11)
    return [[rng.standard_normal(shape) * (1.0 + step) for shape in SHAPES] for step in range(steps)]


def make_params(device, values=None, dtype=np.float64) -> list:
    values = initial_values() if values is None else values
    return [cnnkit.Parameter(backend.to_device(np.asarray(v, dtype=dtype), device), name=f"p{i}")
            for i, v in enumerate(values)]


def set_grads(params, grads) -> None:
    for p, g in zip(params, grads):
        p.grad = cnnkit.Tensor(backend.to_device(np.asarray(g, dtype=p.dtype), p.device))


def run(optimizer, params, steps) -> list:
    """Give each step's gradients, call ``step()``, return the final values on the host."""
    for grads in steps:
        set_grads(params, grads)
        optimizer.step()
    return [p.numpy() for p in params]


def expected(update, steps, values=None) -> list:
    """Apply a hand-written per-parameter ``update(p, g, state, t) -> p`` (t = 1, 2, ...)."""
    values = initial_values() if values is None else values
    results = []
    for index, p in enumerate(values):
        state: dict = {}
        for t, grads in enumerate(steps, start=1):
            p = update(p, grads[index], state, t)
        results.append(p)
    return results


def assert_close(actual, wanted, rtol=1e-10, atol=1e-12) -> None:
    for a, w in zip(actual, wanted):
        np.testing.assert_allclose(a, w, rtol=rtol, atol=atol)
