"""Checking gradients against central finite differences.

Used by cnnkit's own tests and by anyone who writes a new :class:`~cnnkit.Function`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from . import backend
from .autograd import Tensor, no_grad


class GradientCheckError(AssertionError):
    """The analytic gradient disagrees with the finite-difference estimate."""


def _outputs(result) -> tuple:
    return result if isinstance(result, tuple) else (result,)


def _projected_loss(fn: Callable, inputs: Sequence[Tensor], projections: Sequence) -> float:
    """L = Σ_k <w_k, y_k>: one scalar whose gradient exercises every output element."""
    total = 0.0
    for y, w in zip(_outputs(fn(*inputs)), projections):
        total += float(backend.to_numpy((y.data * w).sum()))
    return total


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6,
              atol: float = 1e-6, rtol: float = 1e-4, seed: int = 0) -> None:
    """Compare the gradients ``backward`` computes with central differences.

    Every output is projected on fixed random weights ``w`` so that one scalar
    ``L = Σ w·y`` tests all of them; then for each input element
    ``(L(x + eps) - L(x - eps)) / (2 eps)`` is compared with the analytic ``dL/dx``.
    Use float64 inputs: float32 rounding swamps the differences.

    Args:
        fn: maps the input tensors to a tensor or a tuple of tensors; it must be
            deterministic (reseed inside it if it draws random numbers).
        inputs: tensors; those with ``requires_grad=True`` are checked.
        eps: the finite-difference step.
        atol, rtol: an element passes when |analytic - numeric| <= atol + rtol |numeric|.
        seed: seeds the projection weights.

    Raises:
        GradientCheckError: naming the input, the worst element and both values.
    """
    for i, x in enumerate(inputs):
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {x.dtype}; use float64 for finite differences")
        x.grad = None
    generator = np.random.default_rng(seed)
    outputs = _outputs(fn(*inputs))
    projections = [backend.to_device(generator.standard_normal(y.shape), y.device).astype(y.dtype)
                   for y in outputs]
    for y, w in zip(outputs, projections):
        if y.requires_grad:
            y.backward(w)

    for i, x in enumerate(inputs):
        if not x.requires_grad:
            continue
        analytic = np.zeros(x.shape) if x.grad is None else x.grad.numpy()
        numeric = _numerical_gradient(fn, inputs, x, projections, eps)
        error = np.abs(analytic - numeric)
        bound = atol + rtol * np.abs(numeric)
        if np.any(error > bound) or not np.all(np.isfinite(analytic)):
            worst = np.unravel_index(np.argmax(error - bound), x.shape)
            raise GradientCheckError(
                f"gradient of input {i} (shape {x.shape}) is wrong at element {tuple(int(k) for k in worst)}: "
                f"analytic {analytic[worst]:.8g}, numeric {numeric[worst]:.8g}, "
                f"|difference| {error[worst]:.3g} > allowed {bound[worst]:.3g}; "
                f"{int(np.sum(error > bound))} of {x.size} elements fail"
            )


def _numerical_gradient(fn, inputs, x: Tensor, projections, eps: float) -> np.ndarray:
    flat = x.data.reshape(-1)  # a view: writing to it perturbs x in place
    gradient = np.zeros(x.size)
    with no_grad():
        for k in range(x.size):
            original = flat[k].item()
            flat[k] = original + eps
            plus = _projected_loss(fn, inputs, projections)
            flat[k] = original - eps
            minus = _projected_loss(fn, inputs, projections)
            flat[k] = original
            gradient[k] = (plus - minus) / (2 * eps)
    return gradient.reshape(x.shape)
