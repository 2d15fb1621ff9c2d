"""Batch normalisation (Ioffe & Szegedy 2015)."""
from __future__ import annotations

from typing import Any

from .. import initializers, regularizers
from ..autograd import Tensor
from ..ops.norm import batch_norm
from .base import InputSpec, Layer, _show


class BatchNormalization(Layer):
    """Normalises each channel: y = γ (x − μ) / sqrt(σ² + ε) + β.

    In training μ and σ² are the batch's statistics over every axis but ``axis``, and
    the moving statistics follow them: moving = moving · momentum + batch · (1 − momentum).
    In inference (and whenever the layer is frozen with ``trainable=False``, as in
    Keras 3) the moving statistics are used.

    Args:
        axis: the channel axis (1 for channels-first data).
        momentum, epsilon: as in Keras (0.99, 1e-3).
        center, scale: learn β and γ (otherwise they are fixed at 0 and 1).
    """

    def __init__(self, axis: int = 1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 moving_mean_initializer: Any = "zeros", moving_variance_initializer: Any = "ones",
                 beta_regularizer: Any = None, gamma_regularizer: Any = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= momentum < 1:
            raise ValueError(f"{self.who}: momentum must be in [0, 1), got {momentum!r}")
        if epsilon <= 0:
            raise ValueError(f"{self.who}: epsilon must be positive, got {epsilon!r}")
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = center, scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def build(self, input_shape):
        if not -len(input_shape) <= self.axis < len(input_shape) or len(input_shape) < 2:
            raise ValueError(f"{self.who}: axis {self.axis} is not a feature axis of inputs of shape "
                             f"{_show(input_shape)}")
        channels = input_shape[self.axis]
        shape = (channels,)
        self.gamma = self.add_weight("gamma", shape, self.gamma_initializer, self.gamma_regularizer,
                                     trainable=self.scale)
        self.beta = self.add_weight("beta", shape, self.beta_initializer, self.beta_regularizer,
                                    trainable=self.center)
        self.moving_mean = self.add_weight("moving_mean", shape, self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape, self.moving_variance_initializer,
                                               trainable=False)
        self.input_spec = InputSpec(ndim=len(input_shape), axes={self.axis: channels})

    def call(self, x: Tensor, training: bool = False) -> Tensor:
        return batch_norm(x, self.gamma, self.beta, self.moving_mean, self.moving_variance,
                          training=training and self.trainable, momentum=self.momentum, eps=self.epsilon,
                          axis=self.axis)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer)}
