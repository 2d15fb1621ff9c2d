"""Batch normalisation whose training statistics are those of the whole step, over every rank.

With small per-rank batches, each rank's own batch statistics are noisy; synchronised
batch norm (PyTorch's ``SyncBatchNorm``, ChainerMN's ``MultiNodeBatchNormalization``)
normalises with the mean and variance of the samples of all ranks together. Per
channel, with M the samples of all ranks and sums Σ over all of them:

    forward:   μ = Σ x / M,  σ² = Σ (x − μ)² / M    (two all-reduces: the exact two-pass variance)
    backward:  gβ = Σ gy,  gγ = Σ gy·x̂  (all-reduced together),
               gx = γ / √(σ² + ε) · (gy − gβ/M − x̂·gγ/M)

Each rank returns its own part of gγ and gβ, as for any weight: data-parallel
training averages weight gradients over ranks afterwards.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..ops.norm import BatchNorm, _channel_view
from . import comm


def _global_sums(*per_channel):
    """The sums over every rank of each (C,) array, in one float64 all-reduce."""
    xp = backend.get_array_module(per_channel[0])
    packed = xp.concatenate([xp.asarray(a, dtype=xp.float64) for a in per_channel])
    comm.allreduce(packed)
    ends = np.cumsum([len(a) for a in per_channel])[:-1].tolist()
    return xp.split(packed, ends)


class SyncBatchNorm(BatchNorm):
    """Training-mode batch normalisation with statistics over all ranks (see the module docstring)."""

    def __init__(self, eps: float, axis: int):
        super().__init__(eps, axis, training=True)

    def forward(self, x, gamma, beta):
        xp = backend.get_array_module(x)
        self.gamma = gamma
        x3, channel_shape = _channel_view(x, self.axis)
        local_count = xp.full(1, x3.shape[0] * x3.shape[2], dtype=xp.float64)
        total, count = _global_sums(x3.sum(axis=(0, 2)), local_count)
        self.count = float(count[0])
        mean = (total / self.count).astype(x.dtype)
        centred = x3 - mean.reshape(channel_shape)
        (squares,) = _global_sums(xp.square(centred).sum(axis=(0, 2)))
        var = (squares / self.count).astype(x.dtype)
        self.inv_std = 1 / xp.sqrt(var + self.eps)
        self.centred = centred
        self.batch_mean, self.batch_var = mean, var
        y = centred * (gamma * self.inv_std).reshape(channel_shape) + beta.reshape(channel_shape)
        return y.reshape(x.shape)

    def backward(self, gy):
        gy3, channel_shape = _channel_view(gy, self.axis)
        local_gbeta = gy3.sum(axis=(0, 2))
        local_gcentred = (gy3 * self.centred).sum(axis=(0, 2))
        gbeta, gcentred = (s.astype(gy.dtype) for s in _global_sums(local_gbeta, local_gcentred))
        ggamma = gcentred * self.inv_std
        a = self.gamma * self.inv_std
        b = -a * self.inv_std * ggamma / self.count
        c = -a * gbeta / self.count
        gx = gy3 * a.reshape(channel_shape) + self.centred * b.reshape(channel_shape) + c.reshape(channel_shape)
        return gx.reshape(gy.shape), local_gcentred * self.inv_std, local_gbeta
