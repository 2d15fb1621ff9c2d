"""MobileNetV2 (Sandler et al. 2018): inverted residual blocks of depthwise convolutions, torchvision's layout."""
from __future__ import annotations

from typing import Any, Sequence

from ..layers import Add, Dropout, GlobalAveragePooling2D
from ..models.model import Model
from ._common import batch_norm, building, check_arguments, classifier, conv, conv_bn_relu, finish, image_input, \
    pooled_features

RELU6 = 6.0
# (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2.
_INVERTED_RESIDUALS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1))
_STEM_CHANNELS = 32
_LAST_CHANNELS = 1280


def MobileNetV2(include_top: bool = True, weights: Any = None, input_shape: Sequence[int] = (3, 224, 224),
                num_classes: int = 1000, pooling: str | None = None, classifier_activation: Any = None,
                name: str = "mobilenet_v2") -> Model:
    """MobileNetV2 at width 1.0: 3,504,872 trainable parameters at 1000 classes.

    Args:
        include_top: end with global average pooling, dropout 0.2 and the classifier;
            otherwise return the last (1280-channel) feature maps or their ``pooling``.
        weights: None or the path of a torchvision ``mobilenet_v2`` state dict.
        input_shape: (3, height, width), at least 32×32.
        num_classes, pooling, classifier_activation, name: as in :func:`~cnnkit.applications.ResNet18`.
    """
    shape = check_arguments("MobileNetV2", input_shape, num_classes, include_top, pooling, weights, min_size=32)
    with building(weights):
        inputs = image_input(shape)
        x = conv_bn_relu(inputs, _STEM_CHANNELS, 3, 2, ("features.0.0", "features.0.1", "features.0.2"),
                         max_value=RELU6)
        channels, index = _STEM_CHANNELS, 1
        for expansion, out_channels, repeats, first_stride in _INVERTED_RESIDUALS:
            for repeat in range(repeats):
                strides = first_stride if repeat == 0 else 1
                x = _inverted_residual(x, channels, out_channels, strides, expansion, f"features.{index}")
                channels, index = out_channels, index + 1
        last = f"features.{index}"
        x = conv_bn_relu(x, _LAST_CHANNELS, 1, 1, (f"{last}.0", f"{last}.1", f"{last}.2"), max_value=RELU6)
        if include_top:
            x = GlobalAveragePooling2D(name="avgpool")(x)
            x = Dropout(0.2, name="classifier.0")(x)
            x = classifier(x, num_classes, "classifier.1", classifier_activation)
        else:
            x = pooled_features(x, pooling)
        return finish(inputs, x, name, weights)


def _inverted_residual(x: Any, in_channels: int, out_channels: int, strides: int, expansion: int,
                       prefix: str) -> Any:
    """1×1 expansion to t·C (skipped when t = 1) - 3×3 depthwise - 1×1 linear projection, plus x when shapes agree."""
    hidden = in_channels * expansion
    y, part = x, 0
    if expansion != 1:
        y = conv_bn_relu(y, hidden, 1, 1, _names(prefix, part), max_value=RELU6)
        part += 1
    y = conv_bn_relu(y, hidden, 3, strides, _names(prefix, part), depthwise=True, max_value=RELU6)
    y = conv(y, out_channels, 1, 1, f"{prefix}.conv.{part + 1}")
    y = batch_norm(y, f"{prefix}.conv.{part + 2}")
    if strides == 1 and in_channels == out_channels:
        y = Add(name=f"{prefix}.add")([x, y])
    return y


def _names(prefix: str, part: int) -> tuple[str, str, str]:
    return f"{prefix}.conv.{part}.0", f"{prefix}.conv.{part}.1", f"{prefix}.conv.{part}.2"
