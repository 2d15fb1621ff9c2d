"""Ready-made architectures used by the CLI, the examples and the benchmarks."""
from __future__ import annotations

from typing import Sequence

from ..layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input, MaxPool2D, ReLU
from .sequential import Sequential


def small_cnn(input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, dropout: float = 0.25,
              name: str | None = None) -> Sequential:
    """Two conv blocks and a dense head, returning logits (the reference network of the benchmarks):

    Conv(32, 3×3, same) - BatchNorm - ReLU - MaxPool 2, Conv(64, 3×3, same) - BatchNorm - ReLU -
    MaxPool 2, Flatten, Dense(128) - ReLU, Dropout(0.25), Dense(num_classes).

    Batch norm uses momentum 0.9 (PyTorch's default, written the Keras way) rather than
    Keras' 0.99, so the network matches the PyTorch reference in the benchmarks (the
    moving statistics are bias-corrected, so either momentum is usable from the first epoch).
    """
    return Sequential([
        Input(tuple(input_shape)),
        Conv2D(32, 3, padding="same"), BatchNormalization(momentum=0.9), ReLU(), MaxPool2D(),
        Conv2D(64, 3, padding="same"), BatchNormalization(momentum=0.9), ReLU(), MaxPool2D(),
        Flatten(),
        Dense(128, activation="relu"),
        Dropout(dropout),
        Dense(num_classes),
    ], name=name)
