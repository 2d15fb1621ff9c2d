"""Convolution layers of rank 1, 2 and 3, and depthwise / separable convolutions.

Inputs are channels-first: (N, C, L), (N, C, H, W) or (N, C, D, H, W). Kernels are
stored as (filters, channels / groups, *kernel_size), as in PyTorch and Chainer.
"""
from __future__ import annotations

import inspect

from typing import Any

from ..ops.conv import conv
from ..window import make_geometry, normalize_tuple, resolve_padding
from .base import InputSpec, Layer, _show
from .options import WeightOptions

_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _checked_padding(padding: Any, rank: int, who: str):
    """Validate padding early (its 'same' form is resolved against the input later)."""
    if isinstance(padding, str):
        if padding.lower() not in ("valid", "same"):
            raise ValueError(f"{who}: padding must be 'valid', 'same', an int or a tuple, got {padding!r}")
        return padding.lower()
    try:
        resolve_padding(padding, (1,) * rank, (1,) * rank, (1,) * rank, (1,) * rank)
    except ValueError as error:
        raise ValueError(f"{who}: {error}") from None
    return padding


class _Windowed(Layer):
    """Shared by convolution layers: rank, stride, padding, dilation and the output shape."""

    rank = 2

    def _init_window(self, kernel_size, strides, padding, dilation_rate) -> None:
        try:
            self.kernel_size = normalize_tuple(kernel_size, self.rank, "kernel_size")
            self.strides = normalize_tuple(strides, self.rank, "strides")
            self.dilation_rate = normalize_tuple(dilation_rate, self.rank, "dilation_rate")
        except ValueError as error:
            raise ValueError(f"{self.who}: {error}") from None
        self.padding = _checked_padding(padding, self.rank, self.who)

    def _check_input_shape(self, input_shape) -> None:
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"{self.who}: expected input of rank {self.rank + 2} {_LAYOUTS[self.rank]}, "
                             f"got shape {_show(input_shape)}")

    def _output_spatial(self, input_shape) -> tuple:
        spatial = input_shape[2:]
        if any(s is None for s in spatial):
            return (None,) * self.rank
        geometry = make_geometry(self.rank, self.kernel_size, self.strides, self.padding, self.dilation_rate,
                                 spatial)
        return geometry.check_fits(spatial, self.who)

    def _window_config(self) -> dict:
        config = {"kernel_size": list(self.kernel_size), "strides": list(self.strides), "padding": self.padding,
                  "dilation_rate": list(self.dilation_rate)}
        if "rank" in inspect.signature(type(self).__init__).parameters:  # the rank-generic bases, not Conv2D
            config["rank"] = self.rank
        return config


class Conv(WeightOptions, _Windowed):
    """Convolution of rank 1, 2 or 3: y = activation(W ⋆ x + b) (see :func:`cnnkit.ops.conv`).

    Args:
        filters: output channels.
        kernel_size, strides, dilation_rate: an int or one int per spatial axis.
        padding: ``"valid"`` (default), ``"same"``, an int, a tuple or (before, after) pairs.
        groups: split channels into this many independent groups.
        activation, use_bias, *_initializer, *_regularizer: as in :class:`Dense`.
    """

    def __init__(self, rank: int, filters: int, kernel_size: Any, strides: Any = 1, padding: Any = "valid",
                 dilation_rate: Any = 1, groups: int = 1, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.rank = rank
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"{self.who}: filters must be a positive int, got {filters!r}")
        if not isinstance(groups, int) or groups < 1 or filters % groups:
            raise ValueError(f"{self.who}: groups must be a positive int dividing filters ({filters}), got {groups!r}")
        self.filters, self.groups = filters, groups
        self._init_window(kernel_size, strides, padding, dilation_rate)
        self._set_weight_options(activation, use_bias,
                                 {"kernel": kernel_initializer, "bias": bias_initializer},
                                 {"kernel": kernel_regularizer, "bias": bias_regularizer})

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        channels = input_shape[1]
        if channels % self.groups:
            raise ValueError(f"{self.who}: groups={self.groups} must divide the input channels ({channels})")
        self._output_spatial(input_shape)
        self.kernel = self.add_weight("kernel", (self.filters, channels // self.groups) + self.kernel_size,
                                      self.kernel_initializer, self.kernel_regularizer, layout="conv")
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                    self.bias_regularizer) if self.use_bias else None
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={1: channels})

    def call(self, x):
        y = conv(x, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate, self.groups)
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        return (input_shape[0], self.filters) + self._output_spatial(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self._window_config(), "groups": self.groups,
                **self._weight_options_config()}


class Conv1D(Conv):
    """1-D convolution over (N, C, L) inputs. See :class:`Conv`."""

    def __init__(self, filters: int, kernel_size: Any, **kwargs):
        super().__init__(1, filters, kernel_size, **kwargs)


class Conv2D(Conv):
    """2-D convolution over (N, C, H, W) inputs. See :class:`Conv`."""

    def __init__(self, filters: int, kernel_size: Any, **kwargs):
        super().__init__(2, filters, kernel_size, **kwargs)


class Conv3D(Conv):
    """3-D convolution over (N, C, D, H, W) inputs. See :class:`Conv`."""

    def __init__(self, filters: int, kernel_size: Any, **kwargs):
        super().__init__(3, filters, kernel_size, **kwargs)


class DepthwiseConv(WeightOptions, _Windowed):
    """Depthwise convolution: each input channel convolved with its own ``depth_multiplier`` filters.

    It is a grouped convolution with groups = C, giving C · depth_multiplier channels.
    """

    def __init__(self, rank: int, kernel_size: Any, strides: Any = 1, padding: Any = "valid",
                 depth_multiplier: int = 1, dilation_rate: Any = 1, activation: Any = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, bias_regularizer: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.rank = rank
        if not isinstance(depth_multiplier, int) or depth_multiplier < 1:
            raise ValueError(f"{self.who}: depth_multiplier must be a positive int, got {depth_multiplier!r}")
        self.depth_multiplier = depth_multiplier
        self._init_window(kernel_size, strides, padding, dilation_rate)
        self._set_weight_options(activation, use_bias,
                                 {"depthwise": depthwise_initializer, "bias": bias_initializer},
                                 {"depthwise": depthwise_regularizer, "bias": bias_regularizer})

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        self._output_spatial(input_shape)
        channels = input_shape[1]
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", (channels * self.depth_multiplier, 1) + self.kernel_size,
            self.depthwise_initializer, self.depthwise_regularizer, layout="conv")
        self.bias = self.add_weight("bias", (channels * self.depth_multiplier,), self.bias_initializer,
                                    self.bias_regularizer) if self.use_bias else None
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={1: channels})

    def call(self, x):
        y = conv(x, self.depthwise_kernel, self.bias, self.strides, self.padding, self.dilation_rate,
                 groups=x.shape[1])
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        channels = None if input_shape[1] is None else input_shape[1] * self.depth_multiplier
        return (input_shape[0], channels) + self._output_spatial(input_shape)

    def get_config(self):
        return {**super().get_config(), **self._window_config(), "depth_multiplier": self.depth_multiplier,
                **self._weight_options_config()}


class DepthwiseConv1D(DepthwiseConv):
    """Depthwise convolution of (N, C, L) inputs; see :class:`DepthwiseConv`."""

    def __init__(self, kernel_size: Any, **kwargs):
        super().__init__(1, kernel_size, **kwargs)


class DepthwiseConv2D(DepthwiseConv):
    """Depthwise convolution of (N, C, H, W) inputs; see :class:`DepthwiseConv`."""

    def __init__(self, kernel_size: Any, **kwargs):
        super().__init__(2, kernel_size, **kwargs)


class SeparableConv(WeightOptions, _Windowed):
    """Depthwise separable convolution (Chollet 2017): a depthwise convolution, then a 1×1
    pointwise convolution to ``filters`` channels, then bias and activation.

    Far fewer weights than a full convolution: C·m·Πk + C·m·filters instead of C·filters·Πk.
    """

    def __init__(self, rank: int, filters: int, kernel_size: Any, strides: Any = 1, padding: Any = "valid",
                 depth_multiplier: int = 1, dilation_rate: Any = 1, activation: Any = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform", pointwise_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", depthwise_regularizer: Any = None,
                 pointwise_regularizer: Any = None, bias_regularizer: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.rank = rank
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"{self.who}: filters must be a positive int, got {filters!r}")
        if not isinstance(depth_multiplier, int) or depth_multiplier < 1:
            raise ValueError(f"{self.who}: depth_multiplier must be a positive int, got {depth_multiplier!r}")
        self.filters, self.depth_multiplier = filters, depth_multiplier
        self._init_window(kernel_size, strides, padding, dilation_rate)
        self._set_weight_options(
            activation, use_bias,
            {"depthwise": depthwise_initializer, "pointwise": pointwise_initializer, "bias": bias_initializer},
            {"depthwise": depthwise_regularizer, "pointwise": pointwise_regularizer, "bias": bias_regularizer})

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        self._output_spatial(input_shape)
        channels = input_shape[1]
        middle = channels * self.depth_multiplier
        self.depthwise_kernel = self.add_weight("depthwise_kernel", (middle, 1) + self.kernel_size,
                                                self.depthwise_initializer, self.depthwise_regularizer,
                                                layout="conv")
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (self.filters, middle) + (1,) * self.rank,
                                                self.pointwise_initializer, self.pointwise_regularizer,
                                                layout="conv")
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                    self.bias_regularizer) if self.use_bias else None
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={1: channels})

    def call(self, x):
        depthwise = conv(x, self.depthwise_kernel, None, self.strides, self.padding, self.dilation_rate,
                         groups=x.shape[1])
        return self.activation(conv(depthwise, self.pointwise_kernel, self.bias))

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        return (input_shape[0], self.filters) + self._output_spatial(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self._window_config(),
                "depth_multiplier": self.depth_multiplier, **self._weight_options_config()}


class SeparableConv1D(SeparableConv):
    """Depthwise separable convolution of (N, C, L) inputs; see :class:`SeparableConv`."""

    def __init__(self, filters: int, kernel_size: Any, **kwargs):
        super().__init__(1, filters, kernel_size, **kwargs)


class SeparableConv2D(SeparableConv):
    """Depthwise separable convolution of (N, C, H, W) inputs; see :class:`SeparableConv`."""

    def __init__(self, filters: int, kernel_size: Any, **kwargs):
        super().__init__(2, filters, kernel_size, **kwargs)


# The other names Keras users type for the same layers.
Convolution1D, Convolution2D, Convolution3D = Conv1D, Conv2D, Conv3D
SeparableConvolution1D, SeparableConvolution2D = SeparableConv1D, SeparableConv2D
