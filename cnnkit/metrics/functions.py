"""Classification metrics as plain functions of whole arrays.

Every function takes NumPy or CuPy arrays, :class:`~cnnkit.Tensor` objects or
nested lists, copies them to the host and counts there: metrics are cheap next to
training and need exact integer counts, so they return Python floats (or NumPy
arrays for per-class results) whatever device the inputs came from.

Label and prediction shapes follow Keras:

* ``y_true`` holds integer class indices of shape ``(N,)`` or ``(N, 1)`` (floats
  with integer values are accepted), or one-hot rows of shape ``(N, C)`` (the
  class is the row's argmax).
* ``y_pred`` holds class scores of shape ``(N, C)`` (probabilities or logits; the
  predicted class is the argmax), integer class indices of shape ``(N,)`` or
  ``(N, 1)``, or, for binary problems, floating-point probabilities of class 1 of
  shape ``(N,)`` or ``(N, 1)``, thresholded at 0.5.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..autograd import Tensor

AVERAGES = ("macro", "micro", "weighted", "binary", None)
AUC_AVERAGES = ("macro", "micro", "weighted", None)
MULTI_CLASS = ("ovr",)


# ---------------------------------------------------------------- input checks

def to_host(x: Any, where: str, arg: str) -> np.ndarray:
    """``x`` as a NumPy array on the host, checked to be numeric."""
    if isinstance(x, Tensor):
        x = x.data
    array = backend.to_numpy(x)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where}: {arg} must be numeric (bool, integer or float), got dtype {array.dtype}")
    return array


def check_lengths(where: str, y_true: np.ndarray, y_pred: np.ndarray, pred_arg: str = "y_pred") -> None:
    """Both arrays hold one entry per sample, for the same non-zero number of samples."""
    for arg, y in (("y_true", y_true), (pred_arg, y_pred)):
        if y.ndim == 0:
            raise ValueError(f"{where}: {arg} must hold one entry per sample, got a scalar")
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"{where}: y_true and {pred_arg} must have the same number of samples, got "
            f"{len(y_true)} in y_true (shape {y_true.shape}) and {len(y_pred)} in {pred_arg} (shape {y_pred.shape})"
        )
    if len(y_true) == 0:
        raise ValueError(f"{where}: needs at least one sample, got empty y_true and {pred_arg}")


def check_average(average: Any, where: str, valid: tuple = AVERAGES) -> None:
    if average not in valid:
        names = ", ".join(repr(a) for a in valid)
        raise ValueError(f"{where}: average must be one of {names}, got {average!r}")


def check_num_classes(num_classes: Any, where: str) -> None:
    if num_classes is not None and (not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool)
                                    or num_classes < 1):
        raise ValueError(f"{where}: num_classes must be a positive integer or None, got {num_classes!r}")


def _is_column(y: np.ndarray) -> bool:
    return y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)


def _as_labels(y: np.ndarray, where: str, arg: str, num_classes: int | None) -> np.ndarray:
    """Integer class indices from an ``(N,)`` or ``(N, 1)`` array, checked against ``[0, num_classes)``."""
    y = y.reshape(len(y))
    expected = f"integer class indices in [0, {num_classes})" if num_classes else "non-negative integer class indices"
    if y.dtype.kind == "f":
        fractional = y != np.floor(y)
        if fractional.any():
            raise ValueError(f"{where}: {arg} must hold {expected}, got the non-integer value {y[fractional][0]}")
    y = y.astype(np.int64)
    outside = (y < 0) | (y >= num_classes) if num_classes else y < 0
    if outside.any():
        raise ValueError(f"{where}: {arg} must hold {expected}, got {y[outside][0]}")
    return y


def class_predictions(y_true: np.ndarray, y_pred: np.ndarray, where: str,
                      num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """True and predicted class indices, and the number of classes, from host arrays.

    Returns:
        ``(true, pred, C)``: two int64 arrays of shape ``(N,)`` with values in
        ``[0, C)``. ``C`` is ``num_classes`` when given, else the number of columns
        of ``y_pred`` or of one-hot ``y_true``, else 2 for binary probabilities,
        else one more than the largest label seen.
    """
    check_lengths(where, y_true, y_pred)
    check_num_classes(num_classes, where)
    columns = {}
    if _is_column(y_pred):
        if y_pred.dtype.kind == "f":
            pred = (y_pred.reshape(-1) > 0.5).astype(np.int64)
            columns["y_pred"] = 2
        else:
            pred = y_pred
    elif y_pred.ndim == 2:
        pred = y_pred.argmax(axis=1)
        columns["y_pred"] = y_pred.shape[1]
    else:
        raise ValueError(f"{where}: y_pred must have shape (N,), (N, 1) or (N, C), got {y_pred.shape}")
    if _is_column(y_true):
        true = y_true
    elif y_true.ndim == 2:
        true = y_true.argmax(axis=1)
        columns["y_true"] = y_true.shape[1]
    else:
        raise ValueError(f"{where}: y_true must have shape (N,), (N, 1) or one-hot (N, C), got {y_true.shape}")
    if len(set(columns.values())) > 1:
        raise ValueError(f"{where}: y_true is one-hot with {columns['y_true']} classes but y_pred gives "
                         f"{columns['y_pred']} (y_true shape {y_true.shape}, y_pred shape {y_pred.shape})")
    inferred = next(iter(columns.values()), None)
    if num_classes is not None and inferred is not None and inferred != num_classes:
        arg = next(iter(columns))
        raise ValueError(f"{where}: num_classes is {num_classes} but {arg} gives {inferred} classes "
                         f"(shape {y_pred.shape if arg == 'y_pred' else y_true.shape})")
    num_classes = num_classes or inferred
    true = _as_labels(true, where, "y_true", num_classes)
    pred = _as_labels(pred, where, "y_pred", num_classes)
    if num_classes is None:
        num_classes = int(max(true.max(), pred.max())) + 1
    return true, pred, num_classes


def binary_matches(y_true: np.ndarray, y_pred: np.ndarray, threshold: float, where: str) -> np.ndarray:
    """Element-wise ``(y_pred > threshold) == y_true`` for 0/1 labels of the same shape."""
    check_lengths(where, y_true, y_pred)
    if y_true.shape != y_pred.shape:
        if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
            y_true = y_true.reshape(y_pred.shape)
        elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
            y_pred = y_pred.reshape(y_true.shape)
        else:
            raise ValueError(f"{where}: y_true and y_pred must have the same shape, "
                             f"got {y_true.shape} and {y_pred.shape}")
    not_binary = (y_true != 0) & (y_true != 1)
    if not_binary.any():
        raise ValueError(f"{where}: y_true must hold binary labels 0 or 1, got {y_true[not_binary][0]}")
    return (y_pred > threshold) == (y_true == 1)


def top_k_hits(y_true: np.ndarray, y_pred: np.ndarray, k: int, where: str) -> np.ndarray:
    """Per sample: is the true class among the ``k`` highest scores? Shape ``(N,)``, bool."""
    check_lengths(where, y_true, y_pred)
    if y_pred.ndim != 2:
        raise ValueError(f"{where}: y_pred must hold class scores of shape (N, C), got {y_pred.shape}")
    num_classes = y_pred.shape[1]
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{where}: k must be a positive integer, got {k!r}")
    if k > num_classes:
        raise ValueError(f"{where}: k={k} is larger than the number of classes, {num_classes} "
                         f"(y_pred shape {y_pred.shape})")
    true, _, _ = class_predictions(y_true, y_pred, where)
    true_score = y_pred[np.arange(len(true)), true]
    # Scores tied with the true class's do not push it out of the top k (as TensorFlow's in_top_k).
    higher = (y_pred > true_score[:, None]).sum(axis=1)
    return higher < k


def confusion_from_labels(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs as a ``(C, C)`` int64 matrix."""
    counts = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _divide_or_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` with 0 where the denominator is 0 (scikit-learn's ``zero_division=0``)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0)


def score_from_confusion(matrix: np.ndarray, score: str, average: str | None, where: str) -> float | np.ndarray:
    """Precision, recall or F1 from a confusion matrix (rows true, columns predicted).

    Per class c, with tp = M[c, c], fp = column sum - tp and fn = row sum - tp:
    precision = tp / (tp + fp), recall = tp / (tp + fn) and
    F1 = 2 tp / (2 tp + fp + fn), each 0 where its denominator is 0.
    """
    tp = np.diag(matrix)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    if score == "precision":
        per_class = _divide_or_zero(tp, tp + fp)
    elif score == "recall":
        per_class = _divide_or_zero(tp, tp + fn)
    else:
        per_class = _divide_or_zero(2 * tp, 2 * tp + fp + fn)
    if average is None:
        return per_class
    if average == "micro":
        return float(per_class)
    if average == "macro":
        return float(per_class.mean())
    if average == "binary":
        if len(matrix) != 2:
            raise ValueError(f"{where}: average='binary' needs exactly 2 classes, got {len(matrix)}; "
                             f"use 'macro', 'micro', 'weighted' or None")
        return float(per_class[1])
    support = matrix.sum(axis=1)
    return float((per_class * support).sum() / support.sum()) if support.sum() else 0.0


# ---------------------------------------------------------------- regression errors

def _paired_values(y_true: Any, y_pred: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as (N, features) float64, checked to hold the same number of values per sample."""
    true = to_host(y_true, where, "y_true").astype(np.float64)
    pred = to_host(y_pred, where, "y_pred").astype(np.float64)
    check_lengths(where, true, pred)
    true, pred = true.reshape(len(true), -1), pred.reshape(len(pred), -1)
    if true.shape != pred.shape:
        raise ValueError(f"{where}: y_true and y_pred must hold the same number of values per sample, "
                         f"got {true.shape[1]} and {pred.shape[1]}")
    return true, pred


def mean_absolute_error(y_true: Any, y_pred: Any) -> float:
    """``mean(|y_true - y_pred|)`` over every value (Keras' ``"mae"`` metric)."""
    true, pred = _paired_values(y_true, y_pred, "mean_absolute_error")
    return float(np.mean(np.abs(true - pred)))


def mean_squared_error(y_true: Any, y_pred: Any) -> float:
    """``mean((y_true - y_pred)^2)`` over every value (Keras' ``"mse"`` metric)."""
    true, pred = _paired_values(y_true, y_pred, "mean_squared_error")
    return float(np.mean((true - pred) ** 2))


# ---------------------------------------------------------------- accuracy

def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of samples whose predicted class is the true class.

    Args:
        y_true: class indices, or one-hot rows.
        y_pred: class scores (probabilities or logits; argmax is taken), class
            indices, or binary probabilities of class 1 (thresholded at 0.5).

    Returns:
        The accuracy in [0, 1].

    Shapes:
        y_true: ``(N,)``, ``(N, 1)`` or ``(N, C)``; y_pred: ``(N, C)``, ``(N,)`` or ``(N, 1)``.
    """
    true, pred, _ = class_predictions(to_host(y_true, "accuracy", "y_true"),
                                      to_host(y_pred, "accuracy", "y_pred"), "accuracy")
    return float(np.mean(true == pred))


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> float:
    """Fraction of entries where ``y_pred > threshold`` agrees with the 0/1 label.

    Works element-wise, so multi-label targets ``(N, L)`` are scored per label.
    For logits instead of probabilities use ``threshold=0``.

    Args:
        y_true: 0/1 labels.
        y_pred: probabilities (or scores) of class 1, of the same shape.
        threshold: the decision threshold.

    Returns:
        The accuracy in [0, 1].

    Shapes:
        y_true, y_pred: the same shape, ``(N,)`` and ``(N, 1)`` being interchangeable.
    """
    matches = binary_matches(to_host(y_true, "binary_accuracy", "y_true"),
                             to_host(y_pred, "binary_accuracy", "y_pred"), threshold, "binary_accuracy")
    return float(matches.mean())


def top_k_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> float:
    """Fraction of samples whose true class is among the ``k`` highest-scoring classes.

    A sample counts as a hit when fewer than ``k`` classes score strictly higher
    than its true class, so scores tied with the true class never push it out.

    Args:
        y_true: class indices, or one-hot rows.
        y_pred: class scores (probabilities or logits).
        k: how many top classes count; at most C.

    Returns:
        The top-k accuracy in [0, 1].

    Shapes:
        y_true: ``(N,)``, ``(N, 1)`` or ``(N, C)``; y_pred: ``(N, C)``.
    """
    hits = top_k_hits(to_host(y_true, "top_k_accuracy", "y_true"),
                      to_host(y_pred, "top_k_accuracy", "y_pred"), k, "top_k_accuracy")
    return float(hits.mean())


# ---------------------------------------------------------------- confusion-matrix scores

def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts of samples by true class (rows) and predicted class (columns).

    Args:
        y_true: class indices, or one-hot rows.
        y_pred: class scores (argmax is taken), class indices, or binary probabilities.
        num_classes: C; inferred from the columns of ``y_pred`` or one-hot
            ``y_true``, else from the largest label, when omitted.

    Returns:
        An int64 array ``M`` with ``M[i, j]`` = number of samples of class i predicted as j.

    Shapes:
        y_true: ``(N,)``, ``(N, 1)`` or ``(N, C)``; y_pred: ``(N, C)``, ``(N,)`` or ``(N, 1)``;
        result: ``(C, C)``.
    """
    true, pred, num_classes = class_predictions(to_host(y_true, "confusion_matrix", "y_true"),
                                                to_host(y_pred, "confusion_matrix", "y_pred"),
                                                "confusion_matrix", num_classes)
    return confusion_from_labels(true, pred, num_classes)


def _confusion_score(score: str, y_true: Any, y_pred: Any, average: str | None,
                     num_classes: int | None) -> float | np.ndarray:
    check_average(average, score)
    true, pred, num_classes = class_predictions(to_host(y_true, score, "y_true"), to_host(y_pred, score, "y_pred"),
                                                score, num_classes)
    return score_from_confusion(confusion_from_labels(true, pred, num_classes), score, average, score)


def precision(y_true: Any, y_pred: Any, average: str | None = "macro",
              num_classes: int | None = None) -> float | np.ndarray:
    """Of the samples predicted as class c, the fraction that truly are c: tp / (tp + fp).

    Args:
        y_true: class indices, or one-hot rows.
        y_pred: class scores (argmax is taken), class indices, or binary probabilities.
        average: how per-class values combine: ``"macro"`` (unweighted mean over
            all C classes), ``"micro"`` (from tp, fp and fn summed over classes;
            for single-label data this equals accuracy), ``"weighted"`` (mean
            weighted by each class's number of true samples), ``"binary"`` (class
            1 only, as Keras' binary Precision; needs C = 2) or ``None``
            (per-class values).
        num_classes: C, inferred as in :func:`confusion_matrix` when omitted.

    Returns:
        A float, or a float64 array of shape ``(C,)`` when ``average`` is None. A
        class whose denominator is 0 (for precision: never predicted) scores 0, as
        scikit-learn's ``zero_division=0``, and still counts in the macro mean.

    Shapes:
        y_true: ``(N,)``, ``(N, 1)`` or ``(N, C)``; y_pred: ``(N, C)``, ``(N,)`` or ``(N, 1)``.
    """
    return _confusion_score("precision", y_true, y_pred, average, num_classes)


def recall(y_true: Any, y_pred: Any, average: str | None = "macro",
           num_classes: int | None = None) -> float | np.ndarray:
    """Of the samples of class c, the fraction predicted as c: tp / (tp + fn).

    Arguments, averaging and shapes are those of :func:`precision`; a class with
    no true samples has recall 0.
    """
    return _confusion_score("recall", y_true, y_pred, average, num_classes)


def f1_score(y_true: Any, y_pred: Any, average: str | None = "macro",
             num_classes: int | None = None) -> float | np.ndarray:
    """Harmonic mean of precision and recall per class: 2 tp / (2 tp + fp + fn).

    Arguments, averaging and shapes are those of :func:`precision`. The macro F1
    is the mean of the per-class F1 values (not the F1 of macro precision and
    recall); a class never present and never predicted has F1 0.
    """
    return _confusion_score("f1_score", y_true, y_pred, average, num_classes)


# ---------------------------------------------------------------- ROC AUC

def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, tied values all getting the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts_group = np.concatenate(([True], sorted_x[1:] != sorted_x[:-1]))
    group = np.cumsum(starts_group) - 1
    first = np.flatnonzero(starts_group)
    sizes = np.diff(np.append(first, len(x)))
    group_rank = first + (sizes + 1) / 2.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = group_rank[group]
    return ranks


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """AUC = U / (n_pos n_neg), U = (sum of positive ranks) - n_pos (n_pos + 1) / 2 (Mann-Whitney)."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    u = _average_ranks(score)[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _check_both_present(positive: np.ndarray, where: str, what: str) -> None:
    n_pos = int(positive.sum())
    if n_pos == 0 or n_pos == len(positive):
        value = "positive" if n_pos else "negative"
        raise ValueError(f"{where}: {what} has only {value} samples in y_true ({len(positive)} of them), "
                         f"so its ROC AUC is undefined; it needs both positive and negative samples")


def _binary_targets(y_true: np.ndarray, where: str) -> np.ndarray:
    not_binary = (y_true != 0) & (y_true != 1)
    if not_binary.any():
        raise ValueError(f"{where}: y_true must hold 0/1 indicators per class, got {y_true[not_binary][0]}")
    return y_true == 1


def roc_auc(y_true: Any, y_score: Any, multi_class: str = "ovr", average: str | None = "macro") -> float | np.ndarray:
    """Area under the ROC curve, computed exactly from ranks.

    The AUC is the probability that a random positive sample scores higher than
    a random negative one, ties counting one half. It equals the Mann-Whitney U
    statistic over n_pos n_neg: ``U = R_pos - n_pos (n_pos + 1) / 2``, where
    ``R_pos`` sums the positives' ranks among all scores and tied scores share
    their average rank. For C > 2 classes each class is scored against the rest
    (one-vs-rest) and the per-class AUCs are combined by ``average``.

    Args:
        y_true: binary labels 0/1; class indices; or one-hot (multi-hot for
            multi-label data) rows, whose columns are the per-class targets.
        y_score: scores of class 1 ``(N,)``, or per-class scores ``(N, C)``
            (for C = 2 the second column is used). Any monotone score works:
            probabilities or logits.
        multi_class: ``"ovr"`` (one-vs-rest), the only scheme supported.
        average: for C > 2: ``"macro"`` (mean over classes), ``"weighted"`` (by
            the number of positives of each class), ``"micro"`` (one AUC over all
            (sample, class) pairs) or ``None`` (per-class array). Ignored for
            binary problems.

    Returns:
        The AUC in [0, 1], or a float64 array of shape ``(C,)`` when ``average`` is None.

    Raises:
        ValueError: when a class has only positive or only negative samples in
            ``y_true``, for which the AUC is undefined.

    Shapes:
        y_true: ``(N,)``, ``(N, 1)`` or ``(N, C)``; y_score: ``(N,)``, ``(N, 1)`` or ``(N, C)``.
    """
    where = "roc_auc"
    if multi_class not in MULTI_CLASS:
        raise ValueError(f"{where}: multi_class must be one of {', '.join(map(repr, MULTI_CLASS))}, "
                         f"got {multi_class!r}")
    check_average(average, where, AUC_AVERAGES)
    y_true, y_score = to_host(y_true, where, "y_true"), to_host(y_score, where, "y_score")
    check_lengths(where, y_true, y_score, "y_score")
    if y_score.ndim > 2:
        raise ValueError(f"{where}: y_score must have shape (N,), (N, 1) or (N, C), got {y_score.shape}")
    num_classes = 2 if _is_column(y_score) else y_score.shape[1]
    if _is_column(y_true):
        labels = _as_labels(y_true, where, "y_true", num_classes)
        targets = labels[:, None] == np.arange(num_classes)
    elif y_true.ndim == 2 and y_true.shape[1] == num_classes:
        targets = _binary_targets(y_true, where)
    else:
        raise ValueError(f"{where}: y_true of shape {y_true.shape} does not match y_score of shape {y_score.shape}; "
                         f"expected class indices (N,) or per-class indicators (N, {num_classes})")
    if num_classes == 2:
        score = y_score.reshape(-1) if _is_column(y_score) else y_score[:, 1]
        _check_both_present(targets[:, 1], where, "the binary problem")
        return _binary_auc(targets[:, 1], score)
    if average == "micro":
        _check_both_present(targets.ravel(), where, "the micro-averaged problem")
        return _binary_auc(targets.ravel(), y_score.ravel())
    for c in range(num_classes):
        _check_both_present(targets[:, c], where, f"class {c} (one-vs-rest)")
    aucs = np.array([_binary_auc(targets[:, c], y_score[:, c]) for c in range(num_classes)])
    if average is None:
        return aucs
    if average == "weighted":
        return float(np.average(aucs, weights=targets.sum(axis=0)))
    return float(aucs.mean())
