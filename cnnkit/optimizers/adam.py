"""Adam, its AMSGrad variant, and AdamW (Adam with decoupled weight decay)."""
from __future__ import annotations

import math
from typing import Iterable

from .. import backend
from ..autograd import Parameter
from ..registry import register
from .base import LearningRate, Optimizer, check_float, resolve_alias


@register("adam_update")
def adam_update_reference(params, grads, ms, vs, vhats, *, lr, beta1, beta2, eps, step, weight_decay):
    """Reference Adam / AMSGrad / AdamW step over lists of arrays, all updated in place.

        p ← p − lr · weight_decay · p
        m ← beta1 · m + (1 − beta1) · g
        v ← beta2 · v + (1 − beta2) · g²
        AMSGrad:  v̂ ← max(v̂, v), and v̂ replaces v below
        p ← p − lr_t · m / (√v + eps),   lr_t = lr · √(1 − beta2^step) / (1 − beta1^step)

    Args:
        params: list of float arrays (any shapes), updated in place.
        grads: list of arrays of the params' shapes and dtypes; read only.
        ms: list of first-moment arrays like params, updated in place.
        vs: list of second-moment arrays like params, updated in place.
        vhats: list of running maxima of v like params (AMSGrad), updated in place; None for Adam.
        lr: the learning rate of this step (Python float).
        beta1, beta2: Python floats in [0, 1).
        eps: Python float >= 0 (Kingma & Ba's "epsilon hat": it is added to √v, not to √v̂_corrected).
        step: Python int >= 1, the number of this step (for the bias correction).
        weight_decay: Python float >= 0; 0 disables the decay.

    Returns:
        None.
    """
    lr_t = lr * math.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)
    for i, (p, g, m, v) in enumerate(zip(params, grads, ms, vs)):
        xp = backend.get_array_module(p)
        if weight_decay:
            p *= 1.0 - lr * weight_decay
        scratch = xp.multiply(g, 1.0 - beta1)
        m *= beta1
        m += scratch
        xp.multiply(g, g, out=scratch)
        scratch *= 1.0 - beta2
        v *= beta2
        v += scratch
        second_moment = v
        if vhats is not None:
            second_moment = xp.maximum(vhats[i], v, out=vhats[i])
        xp.sqrt(second_moment, out=scratch)
        scratch += eps
        xp.divide(m, scratch, out=scratch)
        scratch *= lr_t
        p -= scratch


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), with AMSGrad (Reddi, Kale & Kumar 2018) as an option.

    At step t (1 for the first update), with m and v starting at zero:

        m ← β₁ · m + (1 − β₁) · g
        v ← β₂ · v + (1 − β₂) · g²
        v̂ ← max(v̂, v) and v̂ is used for v below       (amsgrad=True)
        p ← p − lr · √(1 − β₂ᵗ) / (1 − β₁ᵗ) · m / (√v + ε)

    As in Keras, ε is the paper's "epsilon hat", added to √v before the bias
    correction; PyTorch adds it after, so tiny gradients are treated a little
    differently. ``weight_decay`` is decoupled (see :class:`AdamW`), whereas
    PyTorch's ``Adam(weight_decay=...)`` adds an L2 term to the gradient.

    Args:
        params: the parameters to update (may be given later; see :class:`Optimizer`).
        learning_rate: a float or schedule; default 0.001.
        beta_1, beta_2: decay rates of the moment estimates, in [0, 1).
        epsilon: ε above.
        amsgrad: keep the running maximum of v.
        lr, betas, eps: PyTorch's names for ``learning_rate``, ``(beta_1, beta_2)`` and ``epsilon``.
        **kwargs: ``clipvalue``, ``clipnorm``, ``global_clipnorm``, ``weight_decay``,
            ``name``, as for :class:`Optimizer`.
    """

    def __init__(self, params: Iterable[Parameter] | None = None, learning_rate: LearningRate = 0.001,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, *,
                 lr: float | None = None, betas: tuple[float, float] | None = None, eps: float | None = None,
                 **kwargs):
        owner = type(self).__name__
        learning_rate = resolve_alias(owner, "learning_rate", learning_rate, 0.001, "lr", lr)
        beta_1, beta_2 = resolve_alias(owner, "(beta_1, beta_2)", (beta_1, beta_2), (0.9, 0.999), "betas",
                                       None if betas is None else tuple(betas))
        epsilon = resolve_alias(owner, "epsilon", epsilon, 1e-7, "eps", eps)
        self.beta_1 = check_float(owner, "beta_1", beta_1, "[0, 1)")
        self.beta_2 = check_float(owner, "beta_2", beta_2, "[0, 1)")
        self.epsilon = check_float(owner, "epsilon", epsilon, "[0, inf)")
        self.amsgrad = bool(amsgrad)
        super().__init__(params, learning_rate, **kwargs)

    def _slot_specs(self) -> dict[str, float]:
        specs = {"m": 0.0, "v": 0.0}
        if self.amsgrad:
            specs["vhat"] = 0.0
        return specs

    def _update(self, params, grads, slots, lr):
        self._launch("adam_update", params, grads, slots["m"], slots["v"], slots.get("vhat"), lr=lr,
                     beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon, step=self.iterations + 1,
                     weight_decay=self._decay)

    def _hyperparameters(self) -> dict:
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization").

    Each step first shrinks the weights, p ← p − lr · weight_decay · p, then takes
    the Adam step of :class:`Adam` with the unchanged gradient. Unlike an L2 term
    in the loss, the decay is not rescaled by Adam's per-element rates.

    Args:
        params: the parameters to update (may be given later; see :class:`Optimizer`).
        learning_rate: a float or schedule; default 0.001.
        weight_decay: the decay coefficient, >= 0; default 0.004 (Keras 3).
        beta_1, beta_2, epsilon, amsgrad: as for :class:`Adam`.
        **kwargs: ``lr``, ``betas``, ``eps``, ``clipvalue``, ``clipnorm``,
            ``global_clipnorm``, ``name``, as for :class:`Adam`.
    """

    def __init__(self, params: Iterable[Parameter] | None = None, learning_rate: LearningRate = 0.001,
                 weight_decay: float = 0.004, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a float >= 0, got None; use Adam for no decay")
        super().__init__(params, learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay,
                         **kwargs)
