"""Activation functions as layers with their own hyperparameters, and Maxout."""
from __future__ import annotations

from ..ops.activation import elu, leaky_relu, maxout, relu, softmax
from ..ops.math import clip
from .base import Layer, _show


class _ElementWise(Layer):
    def compute_output_shape(self, input_shape):
        return input_shape


class ReLU(_ElementWise):
    """y = max(x, 0), or min(max(x, 0), max_value) when ``max_value`` is given (ReLU6 with 6, as in MobileNetV2)."""

    def __init__(self, max_value: float | None = None, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and not max_value > 0:
            raise ValueError(f"{self.who}: max_value must be positive or None, got {max_value!r}")
        self.max_value = None if max_value is None else float(max_value)

    def call(self, x):
        if self.max_value is None:
            return relu(x)
        return clip(x, 0.0, self.max_value)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value}


class LeakyReLU(_ElementWise):
    """y = x for x > 0, alpha · x otherwise (alpha 0.1 by default, as in the classic CNN course material)."""

    def __init__(self, alpha: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def call(self, x):
        return leaky_relu(x, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class ELU(_ElementWise):
    """y = x for x > 0, alpha · (exp(x) − 1) otherwise (Clevert et al. 2016)."""

    def __init__(self, alpha: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def call(self, x):
        return elu(x, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(_ElementWise):
    """y_i = exp(x_i) / Σ_j exp(x_j) along ``axis``."""

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x):
        return softmax(x, self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Maxout(Layer):
    """Maxout (Goodfellow et al. 2013): splits ``axis`` into ``num_units`` groups of equal size
    and keeps the maximum of each group, so (N, num_units · k, ...) -> (N, num_units, ...).

    Put it after a Dense or Conv layer with num_units · k outputs to get k linear pieces per unit.
    """

    def __init__(self, num_units: int, axis: int = 1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_units, int) or num_units < 1:
            raise ValueError(f"{self.who}: num_units must be a positive int, got {num_units!r}")
        self.num_units, self.axis = num_units, axis

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def call(self, x):
        return maxout(x, x.shape[self.axis] // self.num_units, axis=self.axis)

    def compute_output_shape(self, input_shape):
        size = input_shape[self.axis]
        if size is not None and size % self.num_units:
            raise ValueError(f"{self.who}: axis {self.axis} has size {size}, not a multiple of "
                             f"num_units={self.num_units} (input shape {_show(input_shape)})")
        shape = list(input_shape)
        shape[self.axis] = self.num_units
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "num_units": self.num_units, "axis": self.axis}
