"""Hold-out splits and k-fold cross-validation indices, optionally stratified by class."""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterator

import numpy as np

from .. import backend
from ..autograd import Tensor
from .dataset import as_array


def _generator(seed: int | None) -> np.random.Generator:
    return backend.rng() if seed is None else np.random.default_rng(seed)


def _class_codes(y: Any, name: str) -> np.ndarray:
    """Class labels (1-D labels of any sortable kind, or one-hot rows) as codes 0..K-1, on the host."""
    labels = backend.to_numpy(as_array(y, name))
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    elif labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels or 2-D one-hot rows, got shape {labels.shape}")
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


def _take(data: Any, indices: np.ndarray) -> Any:
    if isinstance(data, Tensor):
        return Tensor(_take(data.data, indices))
    array = as_array(data, "train_test_split: each array")
    return array[backend.get_array_module(array).asarray(indices)]


def _test_count(test_size: Any, n: int) -> int:
    if isinstance(test_size, (float, np.floating)) and 0.0 < test_size < 1.0:
        n_test = math.ceil(test_size * n)
    elif isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool) and test_size >= 1:
        n_test = int(test_size)
    else:
        raise ValueError(f"train_test_split: test_size must be a fraction in (0, 1) or a count >= 1, got {test_size!r}")
    if n_test >= n:
        raise ValueError(f"train_test_split: test_size={test_size!r} of {n} samples leaves no training samples")
    return n_test


def _stratified_test_indices(codes: np.ndarray, n_test: int, generator: np.random.Generator) -> np.ndarray:
    """Pick ``n_test`` indices with each class in the proportion it has in ``codes``.

    Each class gets the floor of its exact share; the samples left over go to the
    classes with the largest fractional shares (ties broken at random).
    """
    counts = np.bincount(codes)
    share = n_test * counts / len(codes)
    take = np.floor(share).astype(np.int64)
    fractions = share - take
    by_fraction = np.lexsort((generator.random(len(counts)), -fractions))
    take[by_fraction[: n_test - int(take.sum())]] += 1
    chosen = [generator.permutation(np.flatnonzero(codes == k))[: take[k]] for k in range(len(counts))]
    return np.concatenate(chosen)


def train_test_split(*arrays: Any, test_size: float | int = 0.25, shuffle: bool = True,
                     stratify: Any = None, seed: int | None = None) -> list:
    """Split equally long arrays into a training and a test part (the same rows of each).

    Args:
        *arrays: NumPy/CuPy arrays, Tensors or lists, all with the same first dimension.
        test_size: the fraction of samples for the test part (rounded up), or their count.
        shuffle: pick the test samples at random; otherwise the last ones are the test part.
        stratify: class labels (or one-hot rows) whose class proportions both parts
            keep; needs ``shuffle=True``.
        seed: seed of the random choice; ``None`` draws from cnnkit's global
            generator (reproducible under :func:`cnnkit.manual_seed`).

    Returns:
        ``[a_train, a_test, b_train, b_test, ...]``, in the order of scikit-learn's
        function of the same name, each part on its array's device.
    """
    if not arrays:
        raise ValueError("train_test_split: needs at least one array, got none")
    lengths = [len(as_array(a, "train_test_split: each array")) for a in arrays]
    if len(set(lengths)) > 1:
        raise ValueError(f"train_test_split: arrays must have the same length, got lengths {lengths}")
    n = lengths[0]
    n_test = _test_count(test_size, n)
    if stratify is not None:
        if not shuffle:
            raise ValueError("train_test_split: stratify needs shuffle=True")
        codes = _class_codes(stratify, "train_test_split: stratify")
        if len(codes) != n:
            raise ValueError(f"train_test_split: stratify must have one label per sample ({n}), got {len(codes)}")
        generator = _generator(seed)
        test = generator.permutation(_stratified_test_indices(codes, n_test, generator))
        in_test = np.zeros(n, dtype=bool)
        in_test[test] = True
        train = generator.permutation(np.flatnonzero(~in_test))
    elif shuffle:
        order = _generator(seed).permutation(n)
        test, train = order[:n_test], order[n_test:]
    else:
        train, test = np.arange(n - n_test), np.arange(n - n_test, n)
    parts = []
    for array in arrays:
        parts += [_take(array, train), _take(array, test)]
    return parts


class KFold:
    """k-fold cross-validation: each sample is in the test fold exactly once.

    The first ``n % n_splits`` folds hold one sample more than the others. Without
    shuffling the folds are consecutive blocks of samples.

    Args:
        n_splits: the number of folds (at least 2).
        shuffle: assign samples to folds in a random order.
        seed: seed of that order, giving the same folds at every call of ``split``;
            ``None`` draws a new order from cnnkit's global generator.
    """

    def __init__(self, n_splits: int = 5, shuffle: bool = False, seed: int | None = None):
        name = type(self).__name__
        if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
            raise ValueError(f"{name}: n_splits must be an integer >= 2, got {n_splits!r}")
        if not isinstance(shuffle, bool):
            raise TypeError(f"{name}: shuffle must be True or False, got {shuffle!r}")
        if seed is not None and not shuffle:
            raise ValueError(f"{name}: seed={seed!r} has no effect with shuffle=False; pass shuffle=True")
        self.n_splits, self.shuffle, self.seed = int(n_splits), shuffle, seed

    def get_n_splits(self) -> int:
        return self.n_splits

    def split(self, x: Any, y: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_indices, test_indices)`` for each fold: sorted int64 NumPy arrays.

        Args:
            x: the samples (only their number is used).
            y: class labels; only :class:`StratifiedKFold` uses them.
        """
        n = len(as_array(x, f"{type(self).__name__}.split: x"))
        if self.n_splits > n:
            raise ValueError(f"{type(self).__name__}: n_splits={self.n_splits} is more than the {n} samples")
        order = _generator(self.seed).permutation(n) if self.shuffle else np.arange(n)
        fold_of = self._assign(order, y)
        for k in range(self.n_splits):
            yield np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)

    def _assign(self, order: np.ndarray, y: Any) -> np.ndarray:
        """The fold of every sample: consecutive blocks of ``order``."""
        sizes = np.full(self.n_splits, len(order) // self.n_splits)
        sizes[: len(order) % self.n_splits] += 1
        fold_of = np.empty(len(order), dtype=np.int64)
        fold_of[order] = np.repeat(np.arange(self.n_splits), sizes)
        return fold_of

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_splits={self.n_splits}, shuffle={self.shuffle}, seed={self.seed})"


class StratifiedKFold(KFold):
    """k-fold cross-validation in which every fold keeps the class proportions of ``y``.

    Samples are grouped by class (in random order within each class when
    ``shuffle``) and dealt to the folds in turn, so each class's count differs by
    at most one between folds, and so do the fold sizes. ``split(x, y)`` needs ``y``
    (labels or one-hot rows). Arguments as for :class:`KFold`.
    """

    def _assign(self, order: np.ndarray, y: Any) -> np.ndarray:
        if y is None:
            raise ValueError("StratifiedKFold.split: y (the class labels) is required")
        codes = _class_codes(y, "StratifiedKFold.split: y")
        if len(codes) != len(order):
            raise ValueError(f"StratifiedKFold.split: y must have one label per sample ({len(order)}), "
                             f"got {len(codes)}")
        smallest = int(np.bincount(codes).min())
        if smallest < self.n_splits:
            warnings.warn(f"StratifiedKFold: the smallest class has {smallest} samples, fewer than "
                          f"n_splits={self.n_splits}, so some test folds lack it", stacklevel=3)
        grouped = order[np.argsort(codes[order], kind="stable")]
        fold_of = np.empty(len(order), dtype=np.int64)
        fold_of[grouped] = np.arange(len(order)) % self.n_splits
        return fold_of
