"""ImageNet inputs and outputs: torchvision's input normalisation and the names of the 1000 classes."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Tensor

# torchvision's ImageNet normalisation: per-channel mean and standard deviation of images in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess_input(x: Any) -> Any:
    """Normalise RGB images in [0, 1] for torchvision-trained weights: (x − mean) / std per channel.

    torchvision's ``Normalize(IMAGENET_MEAN, IMAGENET_STD)`` after ``ToTensor``; images in
    [0, 1] are what :func:`~cnnkit.datasets.load_image_folder` and cnnkit's data sets give.
    (Keras' ``preprocess_input(mode="torch")`` takes 0–255 instead: divide such images by
    255 first; values above 1 are refused so the two are not mixed up.) Works on NumPy or
    CuPy arrays of shape (N, 3, H, W) or (3, H, W) and returns a new float32 array
    (float64 stays float64).
    """
    data = x.data if isinstance(x, Tensor) else x
    xp = backend.get_array_module(data)
    data = xp.asarray(data)
    if data.ndim not in (3, 4) or data.shape[-3] != 3:
        raise ValueError(f"preprocess_input: expected RGB images (N, 3, H, W) or (3, H, W), got shape {data.shape}")
    if data.size and float(data.max()) > 1:
        raise ValueError(f"preprocess_input: expected images in [0, 1], got values up to {float(data.max()):g} "
                         f"(divide 8-bit images by 255 first)")
    dtype = data.dtype if data.dtype == np.float64 else np.float32
    mean = xp.asarray(IMAGENET_MEAN, dtype=dtype).reshape(3, 1, 1)
    std = xp.asarray(IMAGENET_STD, dtype=dtype).reshape(3, 1, 1)
    return (data.astype(dtype) - mean) / std


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names, in the order of the classifiers' outputs (torchvision's names)."""
    text = resources.files(__package__).joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


def decode_predictions(predictions: Any, top: int = 5) -> list[list[tuple[int, str, float]]]:
    """The ``top`` classes of each row of ImageNet predictions, best first, as (index, name, score).

    Args:
        predictions: (N, 1000) scores or probabilities (NumPy, CuPy or a tensor).
        top: how many classes per image.
    """
    scores = np.asarray(backend.to_numpy(predictions.data if isinstance(predictions, Tensor) else predictions))
    names = imagenet_class_names()
    if scores.ndim != 2 or scores.shape[1] != len(names):
        raise ValueError(f"decode_predictions: expected ImageNet predictions of shape (N, {len(names)}), "
                         f"got shape {scores.shape}")
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= len(names):
        raise ValueError(f"decode_predictions: top must be an int in [1, {len(names)}], got {top!r}")
    best = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    return [[(int(k), names[k], float(row[k])) for k in indices] for row, indices in zip(scores, best)]
