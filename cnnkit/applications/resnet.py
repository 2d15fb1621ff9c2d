"""ResNet-18/34 (basic blocks) and ResNet-50 (bottleneck blocks) (He et al. 2016), torchvision's layout.

The bottleneck strides in its 3×3 convolution, as torchvision's ResNet "v1.5" does,
so torchvision's ImageNet weights load unchanged.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..layers import Add, GlobalAveragePooling2D, MaxPool2D, ReLU
from ..models.model import Model
from ._common import (batch_norm, building, check_arguments, classifier, conv, conv_bn_relu, finish, image_input,
                      pooled_features)

_STAGE_WIDTHS = (64, 128, 256, 512)
_BOTTLENECK_EXPANSION = 4


def ResNet18(include_top: bool = True, weights: Any = None, input_shape: Sequence[int] = (3, 224, 224),
             num_classes: int = 1000, pooling: str | None = None, classifier_activation: Any = None,
             name: str = "resnet18") -> Model:
    """ResNet-18: basic blocks (2, 2, 2, 2); 11,689,512 trainable parameters at 1000 classes.

    Args:
        include_top: end with global average pooling and the ``fc`` classifier; otherwise
            the model returns the last feature maps (N, 512, H/32, W/32), or their
            ``pooling`` ("avg" or "max").
        weights: None (random initialisation) or the path of a torchvision ResNet-18 state
            dict (.safetensors, or .pth with PyTorch installed); nothing is downloaded.
        input_shape: (3, height, width), at least 32×32.
        num_classes: outputs of the classifier.
        pooling: with ``include_top=False``: None, "avg" or "max".
        classifier_activation: the classifier's activation; None returns logits, as torchvision does.
        name: the model's name.

    Returns:
        A functional :class:`~cnnkit.Model` whose layers carry torchvision's module names.
    """
    return _resnet("ResNet18", (2, 2, 2, 2), False, include_top, weights, input_shape, num_classes, pooling,
                   classifier_activation, name)


def ResNet34(include_top: bool = True, weights: Any = None, input_shape: Sequence[int] = (3, 224, 224),
             num_classes: int = 1000, pooling: str | None = None, classifier_activation: Any = None,
             name: str = "resnet34") -> Model:
    """ResNet-34: basic blocks (3, 4, 6, 3); 21,797,672 trainable parameters. Arguments as :func:`ResNet18`."""
    return _resnet("ResNet34", (3, 4, 6, 3), False, include_top, weights, input_shape, num_classes, pooling,
                   classifier_activation, name)


def ResNet50(include_top: bool = True, weights: Any = None, input_shape: Sequence[int] = (3, 224, 224),
             num_classes: int = 1000, pooling: str | None = None, classifier_activation: Any = None,
             name: str = "resnet50") -> Model:
    """ResNet-50: bottleneck blocks (3, 4, 6, 3); 25,557,032 trainable parameters. Arguments as :func:`ResNet18`."""
    return _resnet("ResNet50", (3, 4, 6, 3), True, include_top, weights, input_shape, num_classes, pooling,
                   classifier_activation, name)


def _resnet(who: str, blocks: Sequence[int], bottleneck: bool, include_top: bool, weights: Any,
            input_shape: Sequence[int], num_classes: int, pooling: str | None, classifier_activation: Any,
            name: str) -> Model:
    shape = check_arguments(who, input_shape, num_classes, include_top, pooling, weights, min_size=32)
    with building(weights):
        inputs = image_input(shape)
        x = conv_bn_relu(inputs, 64, 7, 2, ("conv1", "bn1", "relu"))
        x = MaxPool2D(3, strides=2, padding=1, name="maxpool")(x)
        channels = 64
        block = _bottleneck_block if bottleneck else _basic_block
        for stage, (width, count) in enumerate(zip(_STAGE_WIDTHS, blocks), start=1):
            for index in range(count):
                strides = 2 if index == 0 and stage > 1 else 1
                x, channels = block(x, channels, width, strides, f"layer{stage}.{index}")
        if include_top:
            x = GlobalAveragePooling2D(name="avgpool")(x)
            x = classifier(x, num_classes, "fc", classifier_activation)
        else:
            x = pooled_features(x, pooling)
        return finish(inputs, x, name, weights)


def _basic_block(x: Any, in_channels: int, width: int, strides: int, prefix: str) -> tuple[Any, int]:
    """Two 3×3 convolutions and a shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
    y = conv_bn_relu(x, width, 3, strides, (f"{prefix}.conv1", f"{prefix}.bn1", f"{prefix}.relu1"))
    y = batch_norm(conv(y, width, 3, 1, f"{prefix}.conv2"), f"{prefix}.bn2")
    return _join(x, y, in_channels, width, strides, prefix), width


def _bottleneck_block(x: Any, in_channels: int, width: int, strides: int, prefix: str) -> tuple[Any, int]:
    """1×1 reduce, 3×3 (strided), 1×1 expand to 4·width, and a shortcut."""
    out_channels = width * _BOTTLENECK_EXPANSION
    y = conv_bn_relu(x, width, 1, 1, (f"{prefix}.conv1", f"{prefix}.bn1", f"{prefix}.relu1"))
    y = conv_bn_relu(y, width, 3, strides, (f"{prefix}.conv2", f"{prefix}.bn2", f"{prefix}.relu2"))
    y = batch_norm(conv(y, out_channels, 1, 1, f"{prefix}.conv3"), f"{prefix}.bn3")
    return _join(x, y, in_channels, out_channels, strides, prefix), out_channels


def _join(x: Any, y: Any, in_channels: int, out_channels: int, strides: int, prefix: str) -> Any:
    """relu(y + shortcut), the shortcut a strided 1×1 convolution with batch norm where the shape changes."""
    shortcut = x
    if strides != 1 or in_channels != out_channels:
        shortcut = batch_norm(conv(x, out_channels, 1, strides, f"{prefix}.downsample.0"), f"{prefix}.downsample.1")
    return ReLU(name=f"{prefix}.relu")(Add(name=f"{prefix}.add")([y, shortcut]))
