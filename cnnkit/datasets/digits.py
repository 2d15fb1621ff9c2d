"""The UCI optical handwritten digits (8x8), shipped inside the package."""
from __future__ import annotations

import functools
import gzip
from importlib import resources

import numpy as np

from ..data.split import train_test_split

_NUM_PIXELS = 64


@functools.lru_cache(maxsize=1)
def _digits_table() -> np.ndarray:
    """The 1,797 rows of 64 pixel values (0..16) followed by the label, read once."""
    resource = resources.files(__package__).joinpath("data").joinpath("digits.csv.gz")
    with resource.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != _NUM_PIXELS + 1:
        raise ValueError(f"the packaged digits.csv.gz must have {_NUM_PIXELS + 1} columns, got shape {table.shape}")
    table.setflags(write=False)
    return table


def load_digits(test_size: float | int = 0.2, seed: int | None = 0, normalize: bool = True) -> tuple:
    """The UCI optical recognition of handwritten digits: 1,797 8x8 images of 0-9.

    Alpaydin and Kaynak (1998), UCI Machine Learning Repository, as carried by
    scikit-learn. Small enough to ship with cnnkit and train on in seconds, so
    examples and tests never need a download.

    Args:
        test_size: fraction (or count) of the images held out for testing.
        seed: seed of the stratified split; the default gives the same split
            everywhere. ``None`` draws from cnnkit's global generator.
        normalize: scale the pixels from 0..16 to [0, 1].

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: images float32, labels int64,
        every class in the same proportion in both parts.

    Shapes:
        x ``(n, 1, 8, 8)``, y ``(n,)``; with the default ``test_size`` n is 1437 and 360.
    """
    table = _digits_table()
    x = table[:, :_NUM_PIXELS].reshape(-1, 1, 8, 8).astype(np.float32)
    if normalize:
        x /= np.float32(16.0)
    y = table[:, _NUM_PIXELS].astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, stratify=y, seed=seed)
    return (x_train, y_train), (x_test, y_test)
