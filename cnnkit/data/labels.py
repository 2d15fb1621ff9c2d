"""Converting between class indices and one-hot (or probability) rows."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..autograd import Tensor
from .dataset import as_array


def integer_labels(labels: Any, name: str) -> Any:
    """``labels`` as an integer array, accepting floats only when they hold whole numbers."""
    array = as_array(labels, name)
    xp = backend.get_array_module(array)
    if array.dtype.kind in "iub":
        return array.astype(np.int64, copy=False)
    if array.dtype.kind == "f" and bool(xp.all(xp.isfinite(array) & (array == xp.round(array)))):
        return array.astype(np.int64)
    raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}"
                     + (" with non-integer values" if array.dtype.kind == "f" else ""))


def to_categorical(labels: Any, num_classes: int | None = None, dtype: Any = "float32") -> Any:
    """One-hot encode integer class labels: ``out[..., k] = 1 if labels[...] == k else 0``.

    Args:
        labels: integer class indices in ``[0, num_classes)`` (NumPy, CuPy or Tensor;
            floats that hold whole numbers are accepted).
        num_classes: the number of classes; by default ``labels.max() + 1``.
        dtype: dtype of the result.

    Returns:
        An array on the labels' device (a Tensor if ``labels`` was one).

    Shapes:
        labels ``(...)`` -> out ``(..., num_classes)``.

    Raises:
        ValueError: a label is negative or not below ``num_classes``.
    """
    array = integer_labels(labels, "to_categorical: labels")
    xp = backend.get_array_module(array)
    if num_classes is None:
        if array.size == 0:
            raise ValueError("to_categorical: num_classes must be given when labels is empty")
        num_classes = int(array.max()) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"to_categorical: num_classes must be an integer >= 1, got {num_classes!r}")
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(f"to_categorical: labels must be in [0, {num_classes}), got label {bad}")
    out = (array[..., None] == xp.arange(num_classes)).astype(dtype)
    return Tensor(out) if isinstance(labels, Tensor) else out


one_hot = to_categorical


def to_labels(onehot_or_probs: Any) -> Any:
    """Class indices from one-hot rows, probabilities or logits: argmax over the last axis.

    Args:
        onehot_or_probs: array or Tensor of shape ``(..., num_classes)``.

    Returns:
        int64 indices of shape ``(...)`` on the same device (a Tensor if the input was one).
    """
    array = as_array(onehot_or_probs, "to_labels: onehot_or_probs")
    if array.ndim == 0 or array.shape[-1] == 0:
        raise ValueError(f"to_labels: onehot_or_probs must have shape (..., num_classes) with num_classes >= 1, "
                         f"got shape {array.shape}")
    out = array.argmax(axis=-1).astype(np.int64)
    return Tensor(out) if isinstance(onehot_or_probs, Tensor) else out
