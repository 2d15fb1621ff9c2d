"""What every zoo architecture shares: argument checks, the input, the head, and weight loading.

Layers are named after the modules of the matching torchvision model (``layer1.0.conv1``,
``features.3``, ``classifier.6``), so a torchvision state dict maps onto the model by name
(:mod:`cnnkit.applications.torchvision_weights`). Batch norm follows PyTorch's conventions
(ε = 1e-5 and momentum 0.1, which is 0.9 written the Keras way) so imported statistics
mean what they meant in PyTorch.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any, ContextManager, Sequence

from .. import initializers
from ..layers import (BatchNormalization, Conv2D, Dense, DepthwiseConv2D, GlobalAveragePooling2D,
                      GlobalMaxPooling2D, Input, ReLU)
from ..models.model import Model

TORCH_BN_EPSILON = 1e-5
TORCH_BN_MOMENTUM = 0.9  # PyTorch's momentum=0.1: the weight of the new batch, not of the old average

_POOLINGS = {None: None, "avg": GlobalAveragePooling2D, "max": GlobalMaxPooling2D}


def check_arguments(who: str, input_shape: Sequence[int], num_classes: int, include_top: bool,
                    pooling: str | None, weights: Any, min_size: int, channels: int | None = None) -> tuple:
    """Validate the arguments all zoo constructors take; returns the input shape as a tuple."""
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"{who}: input_shape must be (channels, height, width) of positive ints, "
                         f"got {input_shape!r}")
    if channels is not None and shape[0] != channels:
        raise ValueError(f"{who}: input_shape must have {channels} channel(s), got {input_shape!r}")
    if min(shape[1:]) < min_size:
        raise ValueError(f"{who}: input_shape must be at least {min_size}x{min_size} pixels, got {input_shape!r}")
    if include_top and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"{who}: num_classes must be a positive int, got {num_classes!r}")
    if pooling not in _POOLINGS:
        raise ValueError(f"{who}: pooling must be None, 'avg' or 'max', got {pooling!r}")
    if weights is not None and not isinstance(weights, (str, Path)):
        raise TypeError(f"{who}: weights must be None or the path of a local .safetensors or .pth file, "
                        f"got {type(weights).__name__}")
    if isinstance(weights, str) and weights.lower() == "imagenet" and not Path(weights).exists():
        raise ValueError(f"{who}: cnnkit downloads nothing; give weights= the path of a torchvision file, for "
                         f"example one PyTorch has downloaded to ~/.cache/torch/hub/checkpoints/")
    return shape


def building(weights: Any) -> ContextManager:
    """Skip random initialisation when the weights are about to be loaded from a file."""
    return nullcontext() if weights is None else initializers.skip_initialization()


def image_input(shape: tuple) -> Any:
    return Input(shape, name="input")


def conv_bn_relu(x: Any, filters: int, kernel_size: int, strides: int, names: Sequence[str],
                 depthwise: bool = False, max_value: float | None = None) -> Any:
    """Conv (no bias, PyTorch's padding (k − 1) / 2) - BatchNorm - ReLU, named ``names`` (three names).

    ``depthwise`` makes the convolution a depthwise one (``filters`` is then ignored);
    ``max_value`` clips the ReLU (6 for MobileNetV2's ReLU6).
    """
    conv_name, bn_name, relu_name = names
    padding = (kernel_size - 1) // 2
    if depthwise:
        x = DepthwiseConv2D(kernel_size, strides=strides, padding=padding, use_bias=False,
                            depthwise_initializer="he_normal", name=conv_name)(x)
    else:
        x = conv(x, filters, kernel_size, strides, conv_name)
    x = batch_norm(x, bn_name)
    return ReLU(max_value=max_value, name=relu_name)(x)


def conv(x: Any, filters: int, kernel_size: int, strides: int, name: str, use_bias: bool = False) -> Any:
    """A convolution with PyTorch's symmetric padding (k − 1) / 2 (so stride 2 pads as torchvision does)."""
    return Conv2D(filters, kernel_size, strides=strides, padding=(kernel_size - 1) // 2, use_bias=use_bias,
                  kernel_initializer="he_normal", name=name)(x)


def batch_norm(x: Any, name: str) -> Any:
    return BatchNormalization(momentum=TORCH_BN_MOMENTUM, epsilon=TORCH_BN_EPSILON, name=name)(x)


def pooled_features(x: Any, pooling: str | None) -> Any:
    """The output of a model without its top: the feature maps, or their global average or maximum."""
    layer = _POOLINGS[pooling]
    return x if layer is None else layer(name=f"{pooling}_pool")(x)


def classifier(x: Any, num_classes: int, name: str, activation: Any) -> Any:
    return Dense(num_classes, activation=activation, name=name)(x)


def finish(inputs: Any, outputs: Any, name: str, weights: Any) -> Model:
    """The functional model, with the torchvision weights of ``weights`` loaded when given."""
    model = Model(inputs, outputs, name=name)
    if weights is not None:
        from .torchvision_weights import load_torchvision_weights
        load_torchvision_weights(model, weights)
    return model
