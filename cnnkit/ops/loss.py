"""Fused, numerically stable losses on logits: softmax cross-entropy and sigmoid binary cross-entropy.

Computing softmax and then a logarithm overflows or loses every digit for large
logits; these ops work on the logits directly with the log-sum-exp trick,

    CE(z, t)  = log Σ_j e^(z_j) − Σ_j t_j z_j            (softmax cross-entropy)
    BCE(z, t) = max(z, 0) − z·t + log(1 + e^(−|z|))       (sigmoid binary cross-entropy)

and their gradients come out in closed form. The targets are constants: no gradient
flows to them.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, as_tensor, constant_like
from ..registry import impl, register


@register("softmax_cross_entropy")
def softmax_cross_entropy_reference(logits, target):
    """Reference fused softmax cross-entropy.

    Args:
        logits: (N, C) float32 or float64 array z.
        target: either (N,) int64 class indices in [0, C), or (N, C) probabilities t
            of the logits' dtype (rows need not sum to 1).

    Returns:
        ``(loss, probs)``: loss of shape (N,) and the logits' dtype,
        loss_n = log Σ_j e^(z_nj) − Σ_j t_nj z_nj (t one-hot for class indices), and
        probs = softmax(z) of shape (N, C), which ``softmax_cross_entropy_grad`` needs.
    """
    xp = backend.get_array_module(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = xp.exp(shifted)
    total = probs.sum(axis=1, keepdims=True)
    probs /= total
    log_total = xp.log(total[:, 0])
    if target.ndim == 1:
        loss = log_total - shifted[xp.arange(len(target)), target]
    else:
        loss = log_total * target.sum(axis=1) - (target * shifted).sum(axis=1)
    return loss, probs


@register("softmax_cross_entropy_grad")
def softmax_cross_entropy_grad_reference(probs, target, gy):
    """Reference gradient of the fused softmax cross-entropy.

    Args:
        probs: (N, C) softmax of the logits, as returned by the forward.
        target: the forward's target: (N,) int64 class indices or (N, C) probabilities.
        gy: (N,) gradient of the per-sample losses, of the probs' dtype.

    Returns:
        glogits (N, C) = (probs · Σ_j t_nj − t_n) · gy_n, which is (probs − onehot) · gy
        for class indices.
    """
    xp = backend.get_array_module(probs)
    if target.ndim == 1:
        g = probs.copy()
        g[xp.arange(len(target)), target] -= 1
    else:
        g = probs * target.sum(axis=1, keepdims=True)
        g -= target
    g *= gy[:, None]
    return g


@register("sigmoid_binary_cross_entropy")
def sigmoid_binary_cross_entropy_reference(logits, target):
    """Reference element-wise BCE on logits: max(z, 0) − z·t + log(1 + e^(−|z|)).

    Args:
        logits: float array z of any shape.
        target: float array t of z's shape and dtype (usually in [0, 1]).

    Returns:
        The loss per element, of z's shape and dtype.
    """
    xp = backend.get_array_module(logits)
    return xp.maximum(logits, 0) - logits * target + xp.log1p(xp.exp(-xp.abs(logits)))


@register("sigmoid_binary_cross_entropy_grad")
def sigmoid_binary_cross_entropy_grad_reference(logits, target, gy):
    """Reference gradient: gz = (σ(z) − t) · gy, all arrays of z's shape and dtype."""
    xp = backend.get_array_module(logits)
    e = xp.exp(-xp.abs(logits))
    sigmoid = xp.where(logits >= 0, 1 / (1 + e), e / (1 + e))
    return (sigmoid - target) * gy


class SoftmaxCrossEntropy(Function):
    """loss_n = log Σ_j e^(z_nj) − Σ_j t_nj z_nj;  gz = (softmax(z)·Σt − t) · gy.

    Saves the softmax probabilities and the target.
    """

    def forward(self, logits, target):
        loss, self.probs = impl("softmax_cross_entropy", logits, target)
        self.target = target
        return loss

    def backward(self, gy):
        return impl("softmax_cross_entropy_grad", self.probs, self.target, gy), None


class SigmoidBinaryCrossEntropy(Function):
    """loss = max(z, 0) − z·t + log(1 + e^(−|z|));  gz = (σ(z) − t) · gy.  Saves z and t."""

    def forward(self, logits, target):
        self.logits, self.target = logits, target
        return impl("sigmoid_binary_cross_entropy", logits, target)

    def backward(self, gy):
        return impl("sigmoid_binary_cross_entropy_grad", self.logits, self.target, gy), None


def softmax_cross_entropy(logits, target) -> Tensor:
    """Cross-entropy between softmax(logits) and a target, per sample, from the logits.

    Args:
        logits: (N, C) float tensor.
        target: (N,) integer class indices, or (N, C) probabilities (cast to the
            logits' dtype). A constant: no gradient reaches it. Class indices are not
            range-checked here (:func:`cnnkit.losses.sparse_categorical_crossentropy` does).

    Returns:
        A (N,) tensor of losses.
    """
    logits = as_tensor(logits)
    target = constant_like(target, logits)
    if logits.dtype.kind != "f":
        raise TypeError(f"softmax_cross_entropy: logits must be a float tensor, got dtype {logits.dtype}")
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: logits must have shape (N, C), got {logits.shape}")
    if target.dtype.kind in "iu":
        if target.shape != logits.shape[:1]:
            raise ValueError(f"softmax_cross_entropy: class indices must have shape ({logits.shape[0]},) "
                             f"for logits of shape {logits.shape}, got {target.shape}")
        target = target.astype(np.int64, copy=False)
    elif target.dtype.kind == "f":
        if target.shape != logits.shape:
            raise ValueError(f"softmax_cross_entropy: target probabilities must have the logits' shape "
                             f"{logits.shape}, got {target.shape}")
        target = target.astype(logits.dtype, copy=False)
    else:
        raise TypeError(f"softmax_cross_entropy: target must hold integer class indices or float "
                        f"probabilities, got dtype {target.dtype}")
    return SoftmaxCrossEntropy()(logits, target)


def sigmoid_binary_cross_entropy(logits, target) -> Tensor:
    """Element-wise binary cross-entropy between sigmoid(logits) and ``target``, from the logits.

    Args:
        logits: float tensor z of any shape.
        target: values t of the same shape (usually in [0, 1]), cast to z's dtype.
            A constant: no gradient reaches it.

    Returns:
        A tensor of z's shape: max(z, 0) − z·t + log(1 + e^(−|z|)).
    """
    logits = as_tensor(logits)
    target = constant_like(target, logits)
    if logits.dtype.kind != "f":
        raise TypeError(f"sigmoid_binary_cross_entropy: logits must be a float tensor, got dtype {logits.dtype}")
    if target.shape != logits.shape:
        raise ValueError(f"sigmoid_binary_cross_entropy: target must have the logits' shape {logits.shape}, "
                         f"got {target.shape}")
    return SigmoidBinaryCrossEntropy()(logits, target.astype(logits.dtype, copy=False))
