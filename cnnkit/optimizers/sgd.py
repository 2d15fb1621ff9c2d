"""Stochastic gradient descent with optional (Nesterov) momentum."""
from __future__ import annotations

from typing import Iterable

from ..autograd import Parameter
from ..registry import register
from .base import LearningRate, Optimizer, check_float, resolve_alias


@register("sgd_update")
def sgd_update_reference(params, grads, velocities, *, lr, momentum, nesterov, weight_decay):
    """Reference SGD step over lists of arrays, all updated in place.

    For each parameter p with gradient g (and velocity v):

        p ← p − lr · weight_decay · p
        momentum == 0:  p ← p − lr · g
        otherwise:      v ← momentum · v − lr · g
                        p ← p + v                      (plain)
                        p ← p + momentum · v − lr · g  (Nesterov, with the new v)

    Args:
        params: list of float arrays (any shapes), updated in place.
        grads: list of arrays of the params' shapes and dtypes; read only.
        velocities: list of arrays like params, updated in place; None when momentum is 0.
        lr: the learning rate of this step (Python float).
        momentum: Python float in [0, 1]; unused when velocities is None.
        nesterov: Python bool.
        weight_decay: Python float >= 0; 0 disables the decay.

    Returns:
        None.
    """
    for i, (p, g) in enumerate(zip(params, grads)):
        if weight_decay:
            p *= 1.0 - lr * weight_decay
        scaled = g * lr
        if velocities is None:
            p -= scaled
            continue
        v = velocities[i]
        v *= momentum
        v -= scaled
        if nesterov:
            p -= scaled
            p += momentum * v
        else:
            p += v


class SGD(Optimizer):
    """Gradient descent with optional momentum (Polyak 1964) or Nesterov momentum.

    With v the velocity (zeros at first) and g the gradient, in Keras' form:

        v ← momentum · v − lr · g
        p ← p + v                       (plain momentum)
        p ← p + momentum · v − lr · g   (nesterov=True; Sutskever et al. 2013)

    With momentum 0 this is p ← p − lr · g. Keras' velocity is PyTorch's buffer
    scaled by −lr, so the two agree while the rate is constant.

    Args:
        params: the parameters to update (may be given later; see :class:`Optimizer`).
        learning_rate: a float or schedule; default 0.01.
        momentum: in [0, 1]; 0 keeps no velocity.
        nesterov: use Nesterov momentum (needs momentum > 0).
        lr: PyTorch's name for ``learning_rate``.
        **kwargs: ``clipvalue``, ``clipnorm``, ``global_clipnorm``, ``weight_decay``,
            ``name``, as for :class:`Optimizer`.
    """

    def __init__(self, params: Iterable[Parameter] | None = None, learning_rate: LearningRate = 0.01,
                 momentum: float = 0.0, nesterov: bool = False, *, lr: float | None = None, **kwargs):
        owner = type(self).__name__
        learning_rate = resolve_alias(owner, "learning_rate", learning_rate, 0.01, "lr", lr)
        self.momentum = check_float(owner, "momentum", momentum, "[0, 1]")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError(f"{owner}: nesterov=True needs a momentum > 0, got momentum={momentum!r}")
        super().__init__(params, learning_rate, **kwargs)

    def _slot_specs(self) -> dict[str, float]:
        return {"velocity": 0.0} if self.momentum else {}

    def _update(self, params, grads, slots, lr):
        self._launch("sgd_update", params, grads, slots.get("velocity"), lr=lr, momentum=self.momentum,
                     nesterov=self.nesterov, weight_decay=self._decay)

    def _hyperparameters(self) -> dict:
        return {"momentum": self.momentum, "nesterov": self.nesterov}
