"""LeNet-5 (LeCun et al. 1998), in the classic layout and a modern variant."""
from __future__ import annotations

from typing import Any, Sequence

from ..layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D
from ..models.model import Model
from ._common import building, check_arguments, classifier, finish, image_input, pooled_features

_VARIANTS = {"classic": ("tanh", AvgPool2D), "modern": ("relu", MaxPool2D)}


def LeNet5(include_top: bool = True, weights: Any = None, input_shape: Sequence[int] = (1, 32, 32),
           num_classes: int = 10, pooling: str | None = None, classifier_activation: Any = None,
           variant: str = "classic", name: str = "lenet5") -> Model:
    """LeNet-5: C1 conv 6@5×5, S2 pool, C3 conv 16@5×5, S4 pool, C5 120, F6 84, output.

    ``variant="classic"`` keeps the 1998 paper's tanh units and average-pooling
    subsampling (plain tanh rather than the paper's scaled 1.7159·tanh(2x/3), full
    connectivity in C3, and a linear output instead of the RBF units); 61,706 parameters
    at 32×32. ``variant="modern"`` uses ReLU and max pooling, as courses teach it today.
    C5 is a dense layer over the flattened S4 maps, which at 32×32 is the paper's 5×5
    convolution and also accepts other input sizes (28×28 MNIST without padding).

    Args:
        include_top: end with C5, F6 and the classifier; otherwise return the S4 maps or their ``pooling``.
        weights: None, or a file written by :func:`~cnnkit.applications.save_torchvision_weights`.
        input_shape: (channels, height, width), at least 16×16.
        num_classes, pooling, classifier_activation, name: as in :func:`~cnnkit.applications.ResNet18`.
        variant: "classic" or "modern".
    """
    if variant not in _VARIANTS:
        raise ValueError(f"LeNet5: variant must be 'classic' or 'modern', got {variant!r}")
    shape = check_arguments("LeNet5", input_shape, num_classes, include_top, pooling, weights, min_size=16)
    activation, pooling_layer = _VARIANTS[variant]
    with building(weights):
        inputs = image_input(shape)
        x = Conv2D(6, 5, activation=activation, name="conv1")(inputs)
        x = pooling_layer(2, name="pool1")(x)
        x = Conv2D(16, 5, activation=activation, name="conv2")(x)
        x = pooling_layer(2, name="pool2")(x)
        if include_top:
            x = Flatten(name="flatten")(x)
            x = Dense(120, activation=activation, name="fc1")(x)
            x = Dense(84, activation=activation, name="fc2")(x)
            x = classifier(x, num_classes, "fc3", classifier_activation)
        else:
            x = pooled_features(x, pooling)
        return finish(inputs, x, name, weights)
