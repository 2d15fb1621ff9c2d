"""Per-element adaptive rates from running gradient statistics: Adagrad, RMSprop, Adadelta.

Each reference takes one scratch array per parameter for its intermediate results
and otherwise works in place on the parameters and slots.
"""
from __future__ import annotations

from typing import Iterable

from .. import backend
from ..autograd import Parameter
from ..registry import register
from .base import LearningRate, Optimizer, check_float, resolve_alias


@register("adagrad_update")
def adagrad_update_reference(params, grads, accumulators, *, lr, eps, weight_decay):
    """Reference Adagrad step over lists of arrays, all updated in place.

        p ← p − lr · weight_decay · p
        a ← a + g²
        p ← p − lr · g / √(a + eps)

    Args:
        params: list of float arrays (any shapes), updated in place.
        grads: list of arrays of the params' shapes and dtypes; read only.
        accumulators: list of arrays like params (a), updated in place.
        lr: the learning rate of this step (Python float).
        eps: Python float >= 0.
        weight_decay: Python float >= 0; 0 disables the decay.

    Returns:
        None.
    """
    for p, g, a in zip(params, grads, accumulators):
        xp = backend.get_array_module(p)
        if weight_decay:
            p *= 1.0 - lr * weight_decay
        scratch = xp.multiply(g, g)
        a += scratch
        xp.add(a, eps, out=scratch)
        xp.sqrt(scratch, out=scratch)
        xp.divide(g, scratch, out=scratch)
        scratch *= lr
        p -= scratch


@register("rmsprop_update")
def rmsprop_update_reference(params, grads, velocities, average_grads, momentums, *, lr, rho, momentum, eps,
                             weight_decay):
    """Reference RMSprop step over lists of arrays, all updated in place.

        p ← p − lr · weight_decay · p
        s ← rho · s + (1 − rho) · g²                      (s: velocities)
        centered:  ḡ ← rho · ḡ + (1 − rho) · g;  d = s − ḡ² + eps   (ḡ: average_grads)
        otherwise: d = s + eps
        u = lr · g / √d
        momentum > 0:  m ← momentum · m + u;  p ← p − m     (m: momentums)
        otherwise:     p ← p − u

    Args:
        params: list of float arrays (any shapes), updated in place.
        grads: list of arrays of the params' shapes and dtypes; read only.
        velocities: list of arrays like params, updated in place.
        average_grads: list like velocities, or None when not centered.
        momentums: list like velocities, or None when momentum is 0.
        lr: the learning rate of this step (Python float).
        rho: Python float in [0, 1).
        momentum: Python float in [0, 1]; unused when momentums is None.
        eps: Python float >= 0.
        weight_decay: Python float >= 0; 0 disables the decay.

    Returns:
        None.
    """
    for i, (p, g, s) in enumerate(zip(params, grads, velocities)):
        xp = backend.get_array_module(p)
        if weight_decay:
            p *= 1.0 - lr * weight_decay
        scratch = xp.multiply(g, g)
        scratch *= 1.0 - rho
        s *= rho
        s += scratch
        if average_grads is None:
            xp.add(s, eps, out=scratch)
        else:
            mean = average_grads[i]
            xp.multiply(g, 1.0 - rho, out=scratch)
            mean *= rho
            mean += scratch
            xp.multiply(mean, mean, out=scratch)
            xp.subtract(s, scratch, out=scratch)
            scratch += eps
        xp.sqrt(scratch, out=scratch)
        xp.divide(g, scratch, out=scratch)
        scratch *= lr
        if momentums is None:
            p -= scratch
        else:
            m = momentums[i]
            m *= momentum
            m += scratch
            p -= m


@register("adadelta_update")
def adadelta_update_reference(params, grads, accumulated_grads, accumulated_deltas, *, lr, rho, eps, weight_decay):
    """Reference Adadelta step over lists of arrays, all updated in place.

        p ← p − lr · weight_decay · p
        G ← rho · G + (1 − rho) · g²                     (G: accumulated_grads)
        Δ = −√(D + eps) / √(G + eps) · g                  (D: accumulated_deltas, before this step)
        D ← rho · D + (1 − rho) · Δ²
        p ← p + lr · Δ

    Args:
        params: list of float arrays (any shapes), updated in place.
        grads: list of arrays of the params' shapes and dtypes; read only.
        accumulated_grads: list of arrays like params, updated in place.
        accumulated_deltas: list of arrays like params, updated in place.
        lr: the learning rate of this step (Python float).
        rho: Python float in [0, 1).
        eps: Python float >= 0.
        weight_decay: Python float >= 0; 0 disables the decay.

    Returns:
        None.
    """
    for p, g, G, D in zip(params, grads, accumulated_grads, accumulated_deltas):
        xp = backend.get_array_module(p)
        if weight_decay:
            p *= 1.0 - lr * weight_decay
        scratch = xp.multiply(g, g)
        scratch *= 1.0 - rho
        G *= rho
        G += scratch
        # `delta` holds −Δ, the size of the step against the gradient.
        delta = xp.add(D, eps)
        xp.sqrt(delta, out=delta)
        delta *= g
        xp.add(G, eps, out=scratch)
        xp.sqrt(scratch, out=scratch)
        delta /= scratch
        xp.multiply(delta, delta, out=scratch)
        scratch *= 1.0 - rho
        D *= rho
        D += scratch
        delta *= lr
        p -= delta


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer 2011): rates shrink with the sum of squared gradients.

        a ← a + g²                    (a starts at initial_accumulator_value)
        p ← p − lr · g / √(a + eps)

    Args:
        params: the parameters to update (may be given later; see :class:`Optimizer`).
        learning_rate: a float or schedule; default 0.001.
        initial_accumulator_value: the starting value of a (>= 0).
        epsilon: added inside the square root, as in Keras.
        lr, eps: PyTorch's names for ``learning_rate`` and ``epsilon``.
        **kwargs: ``clipvalue``, ``clipnorm``, ``global_clipnorm``, ``weight_decay``,
            ``name``, as for :class:`Optimizer`.
    """

    def __init__(self, params: Iterable[Parameter] | None = None, learning_rate: LearningRate = 0.001,
                 initial_accumulator_value: float = 0.1, epsilon: float = 1e-7, *, lr: float | None = None,
                 eps: float | None = None, **kwargs):
        owner = type(self).__name__
        learning_rate = resolve_alias(owner, "learning_rate", learning_rate, 0.001, "lr", lr)
        epsilon = resolve_alias(owner, "epsilon", epsilon, 1e-7, "eps", eps)
        self.initial_accumulator_value = check_float(owner, "initial_accumulator_value",
                                                     initial_accumulator_value, "[0, inf)")
        self.epsilon = check_float(owner, "epsilon", epsilon, "[0, inf)")
        super().__init__(params, learning_rate, **kwargs)

    def _slot_specs(self) -> dict[str, float]:
        return {"accumulator": self.initial_accumulator_value}

    def _update(self, params, grads, slots, lr):
        self._launch("adagrad_update", params, grads, slots["accumulator"], lr=lr, eps=self.epsilon,
                     weight_decay=self._decay)

    def _hyperparameters(self) -> dict:
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """RMSprop (Hinton, Srivastava & Swersky 2012, Coursera lecture 6e); centered as in Graves 2013.

        s ← rho · s + (1 − rho) · g²
        centered:  ḡ ← rho · ḡ + (1 − rho) · g;  u = lr · g / √(s − ḡ² + eps)
        otherwise: u = lr · g / √(s + eps)
        momentum > 0:  m ← momentum · m + u;  p ← p − m
        otherwise:     p ← p − u

    Args:
        params: the parameters to update (may be given later; see :class:`Optimizer`).
        learning_rate: a float or schedule; default 0.001.
        rho: decay of the running averages, in [0, 1) (PyTorch calls it alpha).
        momentum: in [0, 1]; 0 keeps no momentum slot.
        epsilon: added inside the square root, as in Keras.
        centered: normalise by the estimated variance instead of the second moment.
        lr, eps: PyTorch's names for ``learning_rate`` and ``epsilon``.
        **kwargs: ``clipvalue``, ``clipnorm``, ``global_clipnorm``, ``weight_decay``,
            ``name``, as for :class:`Optimizer`.
    """

    def __init__(self, params: Iterable[Parameter] | None = None, learning_rate: LearningRate = 0.001,
                 rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7, centered: bool = False, *,
                 lr: float | None = None, eps: float | None = None, **kwargs):
        owner = type(self).__name__
        learning_rate = resolve_alias(owner, "learning_rate", learning_rate, 0.001, "lr", lr)
        epsilon = resolve_alias(owner, "epsilon", epsilon, 1e-7, "eps", eps)
        self.rho = check_float(owner, "rho", rho, "[0, 1)")
        self.momentum = check_float(owner, "momentum", momentum, "[0, 1]")
        self.epsilon = check_float(owner, "epsilon", epsilon, "[0, inf)")
        self.centered = bool(centered)
        super().__init__(params, learning_rate, **kwargs)

    def _slot_specs(self) -> dict[str, float]:
        specs = {"velocity": 0.0}
        if self.centered:
            specs["average_gradient"] = 0.0
        if self.momentum:
            specs["momentum"] = 0.0
        return specs

    def _update(self, params, grads, slots, lr):
        self._launch("rmsprop_update", params, grads, slots["velocity"], slots.get("average_gradient"),
                     slots.get("momentum"), lr=lr, rho=self.rho, momentum=self.momentum, eps=self.epsilon,
                     weight_decay=self._decay)

    def _hyperparameters(self) -> dict:
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012): steps scaled by the ratio of running RMS of updates and gradients.

        G ← rho · G + (1 − rho) · g²
        Δ = −√(D + eps) / √(G + eps) · g
        D ← rho · D + (1 − rho) · Δ²
        p ← p + lr · Δ

    The paper has no learning rate (lr = 1); Keras' default of 0.001 is kept here.

    Args:
        params: the parameters to update (may be given later; see :class:`Optimizer`).
        learning_rate: a float or schedule; default 0.001.
        rho: decay of the running averages, in [0, 1).
        epsilon: added inside both square roots.
        lr, eps: PyTorch's names for ``learning_rate`` and ``epsilon``.
        **kwargs: ``clipvalue``, ``clipnorm``, ``global_clipnorm``, ``weight_decay``,
            ``name``, as for :class:`Optimizer`.
    """

    def __init__(self, params: Iterable[Parameter] | None = None, learning_rate: LearningRate = 0.001,
                 rho: float = 0.95, epsilon: float = 1e-7, *, lr: float | None = None, eps: float | None = None,
                 **kwargs):
        owner = type(self).__name__
        learning_rate = resolve_alias(owner, "learning_rate", learning_rate, 0.001, "lr", lr)
        epsilon = resolve_alias(owner, "epsilon", epsilon, 1e-7, "eps", eps)
        self.rho = check_float(owner, "rho", rho, "[0, 1)")
        self.epsilon = check_float(owner, "epsilon", epsilon, "[0, inf)")
        super().__init__(params, learning_rate, **kwargs)

    def _slot_specs(self) -> dict[str, float]:
        return {"accumulated_grad": 0.0, "accumulated_delta": 0.0}

    def _update(self, params, grads, slots, lr):
        self._launch("adadelta_update", params, grads, slots["accumulated_grad"], slots["accumulated_delta"],
                     lr=lr, rho=self.rho, eps=self.epsilon, weight_decay=self._decay)

    def _hyperparameters(self) -> dict:
        return {"rho": self.rho, "epsilon": self.epsilon}
