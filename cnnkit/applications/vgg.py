"""VGG-11 and VGG-16 (Simonyan & Zisserman 2015), with or without batch norm, and an AlexNet-style
network (Krizhevsky et al. 2012), both in torchvision's layout.

The classifier flattens the last feature maps, so with ``include_top`` its first dense
layer has 512·(H/32)·(W/32) inputs (256·6·6 for AlexNet at 224×224): torchvision's
ImageNet weights need 224×224 inputs, as Keras' VGG16 with ``include_top`` does;
any size from 32×32 (AlexNet: 63×63) trains from scratch.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from ..models.model import Model
from ._common import batch_norm, building, check_arguments, classifier, finish, image_input, pooled_features

# Output channels of each 3×3 convolution; "M" is a 2×2 max pooling.
_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
# AlexNet's convolutions: (index in torchvision's ``features``, filters, kernel, stride, padding, pooled after).
_ALEXNET = ((0, 64, 11, 4, 2, True), (3, 192, 5, 1, 2, True), (6, 384, 3, 1, 1, False), (8, 256, 3, 1, 1, False),
            (10, 256, 3, 1, 1, True))
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def VGG11(include_top: bool = True, weights: Any = None, input_shape: Sequence[int] = (3, 224, 224),
          num_classes: int = 1000, pooling: str | None = None, classifier_activation: Any = None,
          batch_norm: bool = False, name: str | None = None) -> Model:
    """VGG-11 ("configuration A"): 132,863,336 trainable parameters (132,868,840 with batch norm).

    Arguments as :func:`VGG16`.
    """
    return _vgg("VGG11", _VGG11, include_top, weights, input_shape, num_classes, pooling, classifier_activation,
                batch_norm, name or ("vgg11_bn" if batch_norm else "vgg11"))


def VGG16(include_top: bool = True, weights: Any = None, input_shape: Sequence[int] = (3, 224, 224),
          num_classes: int = 1000, pooling: str | None = None, classifier_activation: Any = None,
          batch_norm: bool = False, name: str | None = None) -> Model:
    """VGG-16 ("configuration D"): 138,357,544 trainable parameters (138,365,992 with batch norm).

    Args:
        include_top: end with the three dense layers (4096, 4096, ``num_classes``, with
            dropout 0.5); otherwise return the last feature maps or their ``pooling``.
        weights: None or the path of a torchvision ``vgg16`` (``vgg16_bn`` with
            ``batch_norm=True``) state dict; nothing is downloaded.
        input_shape: (3, height, width), at least 32×32.
        num_classes: outputs of the classifier.
        pooling: with ``include_top=False``: None, "avg" or "max".
        classifier_activation: the last layer's activation; None returns logits.
        batch_norm: batch norm after every convolution (torchvision's ``vgg16_bn``).
        name: the model's name.
    """
    return _vgg("VGG16", _VGG16, include_top, weights, input_shape, num_classes, pooling, classifier_activation,
                batch_norm, name or ("vgg16_bn" if batch_norm else "vgg16"))


def AlexNet(include_top: bool = True, weights: Any = None, input_shape: Sequence[int] = (3, 224, 224),
            num_classes: int = 1000, pooling: str | None = None, classifier_activation: Any = None,
            name: str = "alexnet") -> Model:
    """AlexNet as torchvision has it (the single-GPU "one weird trick" variant, without local response
    normalisation): five convolutions, three max poolings, three dense layers; 61,100,840
    trainable parameters at 224×224 and 1000 classes. Arguments as :func:`VGG16`; inputs at
    least 63×63.
    """
    shape = check_arguments("AlexNet", input_shape, num_classes, include_top, pooling, weights, min_size=63)
    with building(weights):
        inputs = image_input(shape)
        x = inputs
        for position, filters, kernel, strides, padding, pool_after in _ALEXNET:
            x = Conv2D(filters, kernel, strides=strides, padding=padding, kernel_initializer="he_normal",
                       name=f"features.{position}")(x)
            x = ReLU(name=f"features.{position + 1}")(x)
            if pool_after:
                x = MaxPool2D(3, strides=2, name=f"features.{position + 2}")(x)
        x = _dense_top(x, num_classes, classifier_activation, (1, 4, 6), dropout_first=True) if include_top \
            else pooled_features(x, pooling)
        return finish(inputs, x, name, weights)


def _vgg(who: str, plan: Sequence, include_top: bool, weights: Any, input_shape: Sequence[int], num_classes: int,
         pooling: str | None, classifier_activation: Any, with_batch_norm: bool, name: str) -> Model:
    shape = check_arguments(who, input_shape, num_classes, include_top, pooling, weights, min_size=32)
    with building(weights):
        inputs = image_input(shape)
        x, position = inputs, 0
        for step in plan:
            if step == "M":
                x = MaxPool2D(2, name=f"features.{position}")(x)
                position += 1
                continue
            x = Conv2D(step, 3, padding=1, kernel_initializer="he_normal", name=f"features.{position}")(x)
            position += 1
            if with_batch_norm:
                x = batch_norm(x, f"features.{position}")
                position += 1
            x = ReLU(name=f"features.{position}")(x)
            position += 1
        x = _dense_top(x, num_classes, classifier_activation, (0, 3, 6), dropout_first=False) if include_top \
            else pooled_features(x, pooling)
        return finish(inputs, x, name, weights)


def _dense_top(x: Any, num_classes: int, activation: Any, positions: Sequence[int], dropout_first: bool) -> Any:
    """Flatten, then Dense(4096)-ReLU twice and the classifier, with dropout 0.5 where torchvision has it.

    torchvision's VGG classifier is Linear-ReLU-Dropout ×2 - Linear; AlexNet's is
    Dropout-Linear-ReLU ×2 - Linear. ``positions`` are the indices of the three Linear
    modules in its ``classifier`` Sequential, which name the dense layers here.
    """
    x = Flatten(name="flatten")(x)
    for position in positions[:2]:
        if dropout_first:
            x = Dropout(0.5, name=f"classifier.{position - 1}")(x)
        x = Dense(4096, activation="relu", name=f"classifier.{position}")(x)
        if not dropout_first:
            x = Dropout(0.5, name=f"classifier.{position + 2}")(x)
    return classifier(x, num_classes, f"classifier.{positions[2]}", activation)
