"""Batch normalisation (Ioffe & Szegedy, 2015) over one channel axis.

For each channel c, with the m values of c across the batch and every other axis,

    training:   μ = mean x,  σ² = mean (x − μ)² (biased, as Keras 3),  x̂ = (x − μ) / √(σ² + ε)
    inference:  μ, σ² are the moving statistics instead
    both:       y = γ·x̂ + β

Gradients (training, where μ and σ² depend on x):

    gβ = Σ gy,   gγ = Σ gy·x̂,   gx = γ / √(σ² + ε) · (gy − gβ/m − x̂·gγ/m)

and in inference gx = γ / √(σ² + ε) · gy with the same gγ and gβ.

The references view x as (outer, C, inner), the channel axis in the middle, so any
axis works without moving data; channels-first NCHW has outer = N, inner = H·W.
"""
from __future__ import annotations

import math

from .. import backend
from ..autograd import Function, Tensor, as_tensor
from ..registry import impl, register


def _channel_view(x, axis: int):
    """x as (outer, C, inner) and the per-channel shape (1, C, 1) for broadcasting."""
    C = x.shape[axis]
    outer = math.prod(x.shape[:axis])
    return x.reshape(outer, C, -1), (1, C, 1)


@register("batch_norm_train")
def batch_norm_train_reference(x, gamma, beta, eps: float, axis: int):
    """Reference training-mode batch normalisation with batch statistics.

    Args:
        x: float array of any shape, channels along ``axis`` (a non-negative int).
        gamma, beta: (C,) arrays of x's dtype.
        eps: added to the variance.
        axis: the channel axis.

    Returns:
        ``(y, batch_mean, batch_var, saved)``: y of x's shape and dtype, the (C,) mean
        and biased variance of x per channel, and what ``batch_norm_backward`` of the
        same backend needs; here ``(x − μ, 1/√(σ² + ε))`` with x − μ of shape
        (outer, C, inner).
    """
    xp = backend.get_array_module(x)
    x3, channel_shape = _channel_view(x, axis)
    mean = x3.mean(axis=(0, 2))
    centred = x3 - mean.reshape(channel_shape)
    y = xp.square(centred)
    var = y.mean(axis=(0, 2))
    inv_std = 1 / xp.sqrt(var + eps)
    xp.multiply(centred, (gamma * inv_std).reshape(channel_shape), out=y)
    y += beta.reshape(channel_shape)
    return y.reshape(x.shape), mean, var, (centred, inv_std)


@register("batch_norm_backward")
def batch_norm_backward_reference(gy, gamma, saved, axis: int):
    """Reference training-mode gradient.

    Args:
        gy: gradient of y, of x's shape and dtype.
        gamma: (C,) scale.
        saved: what ``batch_norm_train`` of the same backend returned.
        axis: the channel axis.

    Returns:
        ``(gx, ggamma, gbeta)``: gx of x's shape, ggamma and gbeta of shape (C,).
    """
    xp = backend.get_array_module(gy)
    centred, inv_std = saved
    gy3, channel_shape = _channel_view(gy, axis)
    m = gy3.shape[0] * gy3.shape[2]
    gbeta = gy3.sum(axis=(0, 2))
    scratch = gy3 * centred
    ggamma = scratch.sum(axis=(0, 2)) * inv_std
    # gx = a·gy + b·(x − μ) + c per channel, the gradient formula expanded around x − μ
    a = gamma * inv_std
    b = -a * inv_std * ggamma / m
    c = -a * gbeta / m
    gx = gy3 * a.reshape(channel_shape)
    xp.multiply(centred, b.reshape(channel_shape), out=scratch)
    gx += scratch
    gx += c.reshape(channel_shape)
    return gx.reshape(gy.shape), ggamma, gbeta


@register("batch_norm_infer")
def batch_norm_infer_reference(x, gamma, beta, mean, var, eps: float, axis: int):
    """Reference inference-mode batch normalisation with given statistics.

    Args:
        x: float array of any shape, channels along ``axis`` (a non-negative int).
        gamma, beta, mean, var: (C,) arrays of x's dtype.
        eps: added to the variance.
        axis: the channel axis.

    Returns:
        y = (x − mean) · γ/√(var + ε) + β, of x's shape and dtype.
    """
    xp = backend.get_array_module(x)
    x3, channel_shape = _channel_view(x, axis)
    scale = gamma / xp.sqrt(var + eps)
    shift = beta - mean * scale
    y = x3 * scale.reshape(channel_shape)
    y += shift.reshape(channel_shape)
    return y.reshape(x.shape)


class BatchNorm(Function):
    """Batch normalisation of x with scale γ and shift β (see the module docstring).

    In training, forward also leaves the batch statistics in ``batch_mean`` and
    ``batch_var`` for the caller to fold into the moving statistics. Saves the
    implementation's workspace and γ (training), or x, μ and 1/√(σ² + ε) (inference).
    """

    def __init__(self, eps: float, axis: int, training: bool, mean=None, var=None):
        self.eps, self.axis, self.training = eps, axis, training
        self.mean, self.var = mean, var

    def forward(self, x, gamma, beta):
        self.gamma = gamma
        if self.training:
            y, self.batch_mean, self.batch_var, self.saved = impl(
                "batch_norm_train", x, gamma, beta, self.eps, self.axis)
            return y
        xp = backend.get_array_module(x)
        self.x = x
        # copied now, so a later in-place update of the moving statistics cannot change backward
        self.mean = self.mean.copy()
        self.inv_std = 1 / xp.sqrt(self.var + self.eps)
        return impl("batch_norm_infer", x, gamma, beta, self.mean, self.var, self.eps, self.axis)

    def backward(self, gy):
        if self.training:
            return impl("batch_norm_backward", gy, self.gamma, self.saved, self.axis)
        gy3, channel_shape = _channel_view(gy, self.axis)
        gx = ggamma = None
        if self.needs_grad[0]:
            gx = (gy3 * (self.gamma * self.inv_std).reshape(channel_shape)).reshape(gy.shape)
        if self.needs_grad[1]:
            x3, _ = _channel_view(self.x, self.axis)
            centred = x3 - self.mean.reshape(channel_shape)
            ggamma = (gy3 * centred).sum(axis=(0, 2)) * self.inv_std
        gbeta = gy3.sum(axis=(0, 2)) if self.needs_grad[2] else None
        return gx, ggamma, gbeta


def _check_channel_vector(value, name: str, C: int, x: Tensor) -> None:
    if value.shape != (C,):
        raise ValueError(f"batch_norm: {name} must have shape ({C},) for {C} channels, got {value.shape}")
    if value.dtype != x.dtype:
        raise TypeError(f"batch_norm: {name} has dtype {value.dtype}, but x has dtype {x.dtype}")


def batch_norm(x, gamma, beta, moving_mean, moving_var, training: bool, momentum: float = 0.99,
               eps: float = 1e-3, axis: int = 1, synchronized: bool = False) -> Tensor:
    """Batch normalisation over the channel ``axis`` (Ioffe & Szegedy, 2015).

    In training, x is normalised with the statistics of the batch, and the moving
    statistics are updated in place, outside the graph, as Keras does:
    ``moving = moving·momentum + batch·(1 − momentum)`` (biased batch variance). In
    inference the moving statistics normalise x; the result is still differentiable
    with respect to x, γ and β (for fine-tuning and saliency methods such as Grad-CAM).

    Args:
        x: float tensor with channels along ``axis``.
        gamma: (C,) scale tensor, or ``None`` for no scale (γ = 1).
        beta: (C,) shift tensor, or ``None`` for no shift (β = 0).
        moving_mean, moving_var: (C,) tensors (usually non-trainable Parameters) or
            arrays, of x's dtype, updated in place in training.
        training: use and fold in the batch statistics (True) or use the moving ones.
        momentum: weight of the old moving statistics in each update.
        eps: added to the variance before the square root.
        axis: the channel axis (1 for channels-first data; negative values count from the end).
        synchronized: in training, use the statistics of the samples of every rank of a
            distributed job (:class:`cnnkit.distributed.sync_batch_norm.SyncBatchNorm`).

    Returns:
        A tensor of x's shape and dtype.

    Shapes:
        x: (..., C, ...) with C at ``axis``; gamma, beta, moving_mean, moving_var: (C,).
    """
    x = as_tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"batch_norm: x must be a float tensor, got dtype {x.dtype}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"batch_norm: axis {axis} is out of range for input of shape {x.shape}")
    axis %= x.ndim
    C = x.shape[axis]
    # a missing scale or shift is a constant, so the op and its kernels always see both
    gamma = x.xp.ones((C,), x.dtype) if gamma is None else gamma
    beta = x.xp.zeros((C,), x.dtype) if beta is None else beta
    moving_mean, moving_var = as_tensor(moving_mean), as_tensor(moving_var)
    for name, value in (("gamma", gamma), ("beta", beta), ("moving_mean", moving_mean), ("moving_var", moving_var)):
        _check_channel_vector(value, name, C, x)
    if not training:
        return BatchNorm(eps, axis, False, moving_mean.data, moving_var.data)(x, gamma, beta)
    if x.size // C < 2:
        raise ValueError(f"batch_norm: batch statistics need more than one value per channel, but input of "
                         f"shape {x.shape} has {x.size // C} per channel along axis {axis}; use a batch of at "
                         f"least 2, or training=False")
    if synchronized:
        from ..distributed.sync_batch_norm import SyncBatchNorm
        function = SyncBatchNorm(eps, axis)
    else:
        function = BatchNorm(eps, axis, True)
    y = function(x, gamma, beta)
    for moving, batch in ((moving_mean, function.batch_mean), (moving_var, function.batch_var)):
        moving.data *= momentum
        moving.data += (1 - momentum) * batch
    return y
