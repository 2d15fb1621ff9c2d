"""Dense, activation, dropout and shape layers."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from .. import activations, custom_objects
from ..ops.dropout import dropout
from ..ops.matmul import linear
from ..ops.shape import flatten, reshape
from .base import InputSpec, Layer, _show
from .options import WeightOptions


class Dense(WeightOptions, Layer):
    """Fully connected layer: y = activation(x W + b) over the last axis.

    Args:
        units: output features.
        activation: a name ("relu"), a function, or None for linear.
        use_bias: add the bias b.
        kernel_initializer, bias_initializer: names or initializers (Glorot uniform, zeros).
        kernel_regularizer, bias_regularizer: penalties added to the training loss.

    Shapes:
        (N, ..., in_features) -> (N, ..., units); W is (in_features, units).
    """

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"{self.who}: units must be a positive int, got {units!r}")
        self.units = units
        self._set_weight_options(activation, use_bias,
                                 {"kernel": kernel_initializer, "bias": bias_initializer},
                                 {"kernel": kernel_regularizer, "bias": bias_regularizer})

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"{self.who}: expected input (N, ..., features), got shape {_show(input_shape)}")
        features = input_shape[-1]
        self.kernel = self.add_weight("kernel", (features, self.units), self.kernel_initializer,
                                      self.kernel_regularizer)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                    self.bias_regularizer) if self.use_bias else None
        self.input_spec = InputSpec(min_ndim=2, axes={-1: features})

    def call(self, x):
        if self.activation is activations.relu:  # fused into the product's epilogue
            return linear(x, self.kernel, self.bias, activation="relu")
        return self.activation(linear(x, self.kernel, self.bias))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, **self._weight_options_config()}


class Activation(Layer):
    """Applies an activation function: ``Activation("relu")``."""

    def __init__(self, activation: Any, **kwargs):
        super().__init__(**kwargs)
        self.activation: Callable = activations.get(activation)

    def call(self, x):
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014): in training, zero each value with
    probability ``rate`` and scale the rest by 1 / (1 - rate); identity in inference."""

    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"{self.who}: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def call(self, x, training: bool = False):
        return dropout(x, self.rate, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class Flatten(Layer):
    """Keeps the batch axis and flattens the rest: (N, C, H, W) -> (N, C·H·W)."""

    def call(self, x):
        return flatten(x)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(s is None for s in rest) else math.prod(rest)
        return (input_shape[0], size)


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (no batch axis; one entry may be -1)."""

    def __init__(self, target_shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(s) for s in target_shape)
        if sum(s == -1 for s in self.target_shape) > 1 or any(s == 0 or s < -1 for s in self.target_shape):
            raise ValueError(f"{self.who}: target_shape must be positive ints with at most one -1, "
                             f"got {self.target_shape}")

    def call(self, x):
        return reshape(x, (x.shape[0],) + self.target_shape)

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape[1:])
        known = math.prod(s for s in self.target_shape if s != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"{self.who}: cannot reshape a sample of shape {_show(input_shape[1:])} "
                                 f"({size} values) into {self.target_shape}")
            return (input_shape[0],) + tuple(size // known if s == -1 else s for s in self.target_shape)
        if known != size:
            raise ValueError(f"{self.who}: cannot reshape a sample of shape {_show(input_shape[1:])} "
                             f"({size} values) into {self.target_shape} ({known} values)")
        return (input_shape[0],) + self.target_shape

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Lambda(Layer):
    """Wraps a function of tensors as a layer.

    A named function (and ``output_shape`` function) is saved by name and found again
    through ``custom_objects`` when loading; a ``lambda`` cannot be saved.
    """

    def __init__(self, function: Callable, output_shape: Callable | None = None, **kwargs):
        super().__init__(**kwargs)
        self.function, self.output_shape_fn = function, output_shape

    def call(self, x):
        return self.function(x)

    def compute_output_shape(self, input_shape):
        if self.output_shape_fn is None:
            return input_shape
        return self.output_shape_fn(input_shape)

    def get_config(self):
        config = {**super().get_config(), "function": custom_objects.serialize(self.function, "function")}
        if self.output_shape_fn is not None:
            config["output_shape"] = custom_objects.serialize(self.output_shape_fn, "output_shape function")
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Lambda":
        config = dict(config)
        config["function"] = custom_objects.deserialize(config["function"], "Lambda function")
        if config.get("output_shape") is not None:
            config["output_shape"] = custom_objects.deserialize(config["output_shape"], "Lambda output_shape function")
        return cls(**config)
