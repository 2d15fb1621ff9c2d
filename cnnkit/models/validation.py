"""k-fold cross-validation of a model-building function."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import backend
from ..autograd import Tensor
from ..data import KFold, StratifiedKFold
from .feed import first_array, take


def cross_validate(build_model: Callable[[], Any], x: Any, y: Any, n_splits: int = 5, stratified: bool = True,
                   shuffle: bool = True, seed: int | None = 0, **fit_kwargs) -> dict:
    """Train a fresh model on each of ``n_splits`` folds and evaluate it on the held-out fold.

    Args:
        build_model: returns a new compiled model each call (weights must not be shared
            between folds).
        x, y: the whole data set (arrays, or lists or dicts of them for models with several
            inputs or outputs); y (its first array) holds class labels or one-hot rows when
            ``stratified``.
        n_splits: number of folds (k).
        stratified: keep the class proportions in every fold (StratifiedKFold).
        shuffle, seed: shuffle the samples before dealing them into folds.
        **fit_kwargs: passed to ``fit`` (epochs, batch_size, verbose, callbacks, ...).

    Returns:
        ``{"folds": [{metric: value} per fold], "mean": {...}, "std": {...}}`` with the
        metrics ``evaluate`` reports (loss first).
    """
    splitter = (StratifiedKFold if stratified else KFold)(n_splits=n_splits, shuffle=shuffle, seed=seed)
    first = first_array(y)
    labels = backend.to_numpy(first.data if isinstance(first, Tensor) else first)
    folds = []
    for train_index, test_index in splitter.split(labels, labels):
        model = build_model()
        if not getattr(model, "compiled", False):
            raise ValueError("cross_validate: build_model must return a compiled model")
        model.fit(take(x, train_index), take(y, train_index), **{"verbose": 0, **fit_kwargs})
        folds.append(model.evaluate(take(x, test_index), take(y, test_index), verbose=0, return_dict=True))
    names = list(folds[0])
    return {
        "folds": folds,
        "mean": {name: float(np.mean([fold[name] for fold in folds])) for name in names},
        "std": {name: float(np.std([fold[name] for fold in folds])) for name in names},
    }
