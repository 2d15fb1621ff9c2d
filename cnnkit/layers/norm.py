"""Batch normalisation (Ioffe & Szegedy 2015)."""
from __future__ import annotations

from typing import Any

from .. import initializers, regularizers
from ..autograd import Tensor
from ..ops.norm import batch_norm
from .base import InputSpec, Layer, _show


class BatchNormalization(Layer):
    """Normalises each channel: y = γ (x − μ) / sqrt(σ² + ε) + β.

    In training μ and σ² are the batch's statistics over every axis but ``axis``; in
    inference (and whenever the layer is frozen with ``trainable=False``, as in Keras 3)
    the moving statistics are used.

    The moving statistics are Keras' exponential average corrected for its start-up
    bias, as Adam corrects its moments. At the t-th update since the weights were
    created (t = 1, 2, ...), with batch statistic b_t,

        moving_t = moving_{t−1} + w_t · (b_t − moving_{t−1}),   w_t = (1 − momentum) / (1 − momentumᵗ)

    which makes moving_t exactly the momentum-weighted average of the batch statistics
    seen so far, Σ_i momentumᵗ⁻ⁱ b_i / Σ_i momentumᵗ⁻ⁱ, with nothing left of the
    initial 0 and 1: after one step it is the first batch's statistic, after an epoch
    the epoch's. As t grows w_t → 1 − momentum, Keras' (and PyTorch's, whose momentum
    is 1 − ours) update. Statistics that come from elsewhere (``set_weights``,
    ``load_weights`` or a checkpoint written before the count was saved) already stand
    for many batches, so they are updated with the plain w = 1 − momentum. The count,
    ``updates_seen``, is saved in checkpoints.

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
        # updates folded into the moving statistics since they were initialised; None: unknown, many
        self.updates_seen: int | None = 0
        # set by cnnkit.distributed.DataParallel(sync_batch_norm=True) while it trains: statistics over all ranks
        self.synchronized = False

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
        updating = training and self.trainable
        y = batch_norm(x, self.gamma, self.beta, self.moving_mean, self.moving_variance, training=updating,
                       momentum=self._update_momentum() if updating else self.momentum, eps=self.epsilon,
                       axis=self.axis, synchronized=self.synchronized)
        if updating and self.updates_seen is not None:
            self.updates_seen += 1
        return y

    def _update_momentum(self) -> float:
        """The weight of the old moving statistics in the next update: 1 − w_t of the class docstring."""
        if self.updates_seen is None:
            return self.momentum
        t = self.updates_seen + 1
        return 1 - (1 - self.momentum) / (1 - self.momentum ** t)

    def get_state(self) -> dict:
        return {} if self.updates_seen is None else {"updates_seen": self.updates_seen}

    def set_state(self, state: dict | None) -> None:
        self.updates_seen = None if not state else int(state["updates_seen"])

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
