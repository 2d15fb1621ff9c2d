"""k-fold cross-validation of a model-building function."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import backend
from ..data import KFold, StratifiedKFold
from .feed import fields_of, take


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
    model = _compiled(build_model())
    labels = backend.to_numpy(fields_of(model, y, "y")[0])  # the first output's targets, for stratifying
    folds = []
    for fold, (train_index, test_index) in enumerate(splitter.split(labels, labels)):
        if fold:
            model = _compiled(build_model())
        model.fit(take(model, x, train_index, "x"), take(model, y, train_index, "y"),
                  **{"verbose": 0, **fit_kwargs})
        folds.append(model.evaluate(take(model, x, test_index, "x"), take(model, y, test_index, "y"),
                                    verbose=0, return_dict=True))
    names = list(folds[0])
    return {
        "folds": folds,
        "mean": {name: float(np.mean([fold[name] for fold in folds])) for name in names},
        "std": {name: float(np.std([fold[name] for fold in folds])) for name in names},
    }


def _compiled(model):
    if not getattr(model, "compiled", False):
        raise ValueError("cross_validate: build_model must return a compiled model")
    return model
