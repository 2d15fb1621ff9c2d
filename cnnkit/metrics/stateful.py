"""Stateful metrics for the training loop, in the style of Keras.

A :class:`Metric` accumulates counts over the batches of an epoch with
``update_state(y_true, y_pred)``, reports with ``result()`` and starts over with
``reset_state()``. Every metric keeps exact sufficient statistics (match counts,
a confusion matrix, or all scores for AUC), so the epoch result equals the
corresponding function of :mod:`cnnkit.metrics.functions` applied to the whole
epoch at once, never an average of per-batch values. Before any update, scalar
metrics report 0.0, as Keras does.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import custom_objects, losses
from . import functions as F


class Metric:
    """Base class: subclasses implement ``update_state``, ``result`` and ``reset_state``.

    Args:
        name: the key under which the training loop logs the result; defaults to
            the class's ``default_name``.
    """

    default_name = "metric"

    def __init__(self, name: str | None = None):
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"{type(self).__name__}: name must be a non-empty string or None, got {name!r}")
        self.name = name or self.default_name
        self.reset_state()

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        """Add one batch of labels and predictions to the state."""
        raise NotImplementedError(f"{type(self).__name__} must implement update_state")

    def result(self) -> Any:
        """The metric over everything added since the last reset."""
        raise NotImplementedError(f"{type(self).__name__} must implement result")

    def reset_state(self) -> None:
        """Forget all batches (called at the start of every epoch)."""
        raise NotImplementedError(f"{type(self).__name__} must implement reset_state")

    def merge_state(self, metrics: list["Metric"]) -> None:
        """Add the states of ``metrics`` (of this class) to this one's, as if their batches had come here.

        Data-parallel training combines the metric of every rank this way, so that each
        reports the figure over the whole epoch.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement merge_state(metrics) to be combined "
                                  f"across ranks in distributed training")

    @property
    def is_scalar(self) -> bool:
        """Whether ``result()`` is one float, so that it can be logged per epoch."""
        return True

    def get_config(self) -> dict:
        """The constructor arguments as plain data: ``type(m).from_config(m.get_config())`` rebuilds it."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        return cls(**config)

    def __call__(self, y_true: Any, y_pred: Any) -> Any:
        """Update with one batch and return the running result."""
        self.update_state(y_true, y_pred)
        return self.result()

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

    def _where(self) -> str:
        return f"{type(self).__name__} {self.name!r}"


class Mean(Metric):
    """A running (weighted) mean of values, e.g. the loss over an epoch.

    ``update_state(values, sample_weight)`` adds ``sum(values * w)`` to a total
    and ``sum(w)`` to a count (w = 1 when omitted); ``result()`` is total / count.
    For a per-batch mean loss, pass the batch size as ``sample_weight`` to get
    the exact per-sample mean over an epoch with a short last batch.
    """

    default_name = "mean"

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        values = F.to_host(values, self._where(), "values").astype(np.float64)
        if sample_weight is None:
            weights = np.ones_like(values)
        else:
            weights = F.to_host(sample_weight, self._where(), "sample_weight").astype(np.float64)
            try:
                weights = np.broadcast_to(weights, values.shape)
            except ValueError:
                raise ValueError(f"{self._where()}: sample_weight of shape {weights.shape} does not broadcast "
                                 f"to values of shape {values.shape}") from None
        self.total += float((values * weights).sum())
        self.count += float(weights.sum())

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0

    def merge_state(self, metrics: list[Metric]) -> None:
        for other in metrics:
            self.total += other.total
            self.count += other.count


class MeanMetricWrapper(Metric):
    """A plain function ``fn(y_true, y_pred) -> number`` averaged over an epoch.

    A scalar result counts once per sample of the batch (weight ``len(y_true)``),
    so when ``fn`` returns a batch mean the epoch result is the per-sample mean;
    an array result is averaged element-wise. The function is saved by name, so a
    user's function is found again through ``load_model(custom_objects=...)``.

    Args:
        fn: the function to average.
        name: defaults to ``fn.__name__``.
    """

    def __init__(self, fn: Callable[[Any, Any], Any], name: str | None = None):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper: fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.mean = Mean()
        super().__init__(name or getattr(fn, "__name__", type(fn).__name__))

    def reset_state(self) -> None:
        self.mean.reset_state()

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        value = F.to_host(self.fn(y_true, y_pred), self._where(), "the function's result")
        self.mean.update_state(value, sample_weight=len(y_true) if value.ndim == 0 else None)

    def result(self) -> float:
        return self.mean.result()

    def merge_state(self, metrics: list[Metric]) -> None:
        self.mean.merge_state([other.mean for other in metrics])

    def get_config(self) -> dict:
        return {"fn": custom_objects.serialize(self.fn, "metric function"), "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        # A loss function makes a fine metric, so both modules' functions load by name.
        fn = custom_objects.deserialize(config["fn"], "metric function", {**vars(losses), **vars(F)})
        return cls(fn, config.get("name"))


# ---------------------------------------------------------------- accuracies

class _FixedMean(MeanMetricWrapper):
    """A mean of a function the class fixes, so that only the name is configurable."""

    function: Callable[[Any, Any], Any]

    def __init__(self, name: str | None = None):
        super().__init__(type(self).function, name or self.default_name)

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        return cls(**config)


class MeanAbsoluteError(_FixedMean):
    """Mean absolute error over an epoch; see :func:`cnnkit.metrics.mean_absolute_error`."""

    default_name = "mean_absolute_error"
    function = staticmethod(F.mean_absolute_error)


class MeanSquaredError(_FixedMean):
    """Mean squared error over an epoch; see :func:`cnnkit.metrics.mean_squared_error`."""

    default_name = "mean_squared_error"
    function = staticmethod(F.mean_squared_error)


class _MatchCounter(Metric):
    """Counts matches and entries; the result is matches / entries."""

    def reset_state(self) -> None:
        self.matches = 0
        self.count = 0

    def result(self) -> float:
        return self.matches / self.count if self.count else 0.0

    def merge_state(self, metrics: list[Metric]) -> None:
        for other in metrics:
            self.matches += other.matches
            self.count += other.count

    def _add(self, matches: np.ndarray) -> None:
        self.matches += int(matches.sum())
        self.count += int(matches.size)

    def _host(self, y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
        where = self._where()
        return F.to_host(y_true, where, "y_true"), F.to_host(y_pred, where, "y_pred")


class Accuracy(_MatchCounter):
    """Accuracy whose kind follows the shapes, as Keras' ``"accuracy"`` string.

    Class scores ``(N, C)`` with labels ``(N,)``/``(N, 1)`` score as sparse
    categorical accuracy, with one-hot ``(N, C)`` labels as categorical accuracy,
    and float probabilities ``(N,)``/``(N, 1)`` as binary accuracy at 0.5 (see
    :func:`cnnkit.metrics.accuracy`).
    """

    default_name = "accuracy"

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        true, pred, _ = F.class_predictions(*self._host(y_true, y_pred), self._where())
        self._add(true == pred)


class SparseCategoricalAccuracy(_MatchCounter):
    """Accuracy for integer labels ``(N,)`` or ``(N, 1)`` against class scores ``(N, C)``."""

    default_name = "sparse_categorical_accuracy"

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        y_true, y_pred = self._host(y_true, y_pred)
        if y_pred.ndim != 2:
            raise ValueError(f"{self._where()}: y_pred must hold class scores of shape (N, C), got {y_pred.shape}")
        if not (y_true.ndim == 1 or (y_true.ndim == 2 and y_true.shape[1] == 1)):
            raise ValueError(f"{self._where()}: y_true must hold class indices of shape (N,) or (N, 1), got "
                             f"{y_true.shape}; use CategoricalAccuracy for one-hot labels")
        true, pred, _ = F.class_predictions(y_true, y_pred, self._where())
        self._add(true == pred)


class CategoricalAccuracy(_MatchCounter):
    """Accuracy for one-hot labels ``(N, C)`` against class scores ``(N, C)``."""

    default_name = "categorical_accuracy"

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        y_true, y_pred = self._host(y_true, y_pred)
        if y_pred.ndim != 2 or y_true.shape != y_pred.shape:
            raise ValueError(f"{self._where()}: y_true (one-hot) and y_pred (class scores) must both have shape "
                             f"(N, C), got {y_true.shape} and {y_pred.shape}; use SparseCategoricalAccuracy "
                             f"for integer labels")
        true, pred, _ = F.class_predictions(y_true, y_pred, self._where())
        self._add(true == pred)


class BinaryAccuracy(_MatchCounter):
    """Fraction of entries where ``y_pred > threshold`` agrees with the 0/1 label.

    Args:
        threshold: the decision threshold (0 for logits).
        name: the logged name.
    """

    default_name = "binary_accuracy"

    def __init__(self, threshold: float = 0.5, name: str | None = None):
        self.threshold = float(threshold)
        super().__init__(name)

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        self._add(F.binary_matches(*self._host(y_true, y_pred), self.threshold, self._where()))

    def get_config(self) -> dict:
        return {**super().get_config(), "threshold": self.threshold}


class TopKCategoricalAccuracy(_MatchCounter):
    """Fraction of samples whose true class is among the ``k`` top scores (labels sparse or one-hot).

    Args:
        k: how many top classes count.
        name: the logged name.
    """

    default_name = "top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str | None = None):
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"TopKCategoricalAccuracy: k must be a positive integer, got {k!r}")
        self.k = int(k)
        super().__init__(name)

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        self._add(F.top_k_hits(*self._host(y_true, y_pred), self.k, self._where()))

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}


# ---------------------------------------------------------------- confusion-matrix metrics

class ConfusionMatrix(Metric):
    """The confusion matrix summed over batches: rows true class, columns predicted.

    ``result()`` returns the ``(C, C)`` int64 matrix, so the metric is not a
    scalar (``is_scalar`` is False); :meth:`format` renders it for logs.

    Args:
        num_classes: C; inferred per batch as in :func:`cnnkit.metrics.confusion_matrix`
            when omitted, the matrix growing if a later batch shows a larger label.
        name: the logged name.
    """

    default_name = "confusion_matrix"

    def __init__(self, num_classes: int | None = None, name: str | None = None):
        F.check_num_classes(num_classes, type(self).__name__)
        self.num_classes = num_classes
        super().__init__(name)

    def reset_state(self) -> None:
        size = self.num_classes or 0
        self.matrix = np.zeros((size, size), dtype=np.int64)

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        where = self._where()
        true, pred, num_classes = F.class_predictions(F.to_host(y_true, where, "y_true"),
                                                      F.to_host(y_pred, where, "y_pred"), where, self.num_classes)
        self._grow(num_classes)
        self.matrix[:num_classes, :num_classes] += F.confusion_from_labels(true, pred, num_classes)

    def _grow(self, size: int) -> None:
        if size > len(self.matrix):
            grown = np.zeros((size, size), dtype=np.int64)
            grown[:len(self.matrix), :len(self.matrix)] = self.matrix
            self.matrix = grown

    def merge_state(self, metrics: list[Metric]) -> None:
        for other in metrics:
            size = len(other.matrix)
            self._grow(size)
            self.matrix[:size, :size] += other.matrix

    def result(self) -> np.ndarray:
        return self.matrix.copy()

    @property
    def is_scalar(self) -> bool:
        return False

    def format(self, class_names: list[str] | None = None) -> str:
        """The matrix as an aligned text table with labelled rows (true) and columns (predicted)."""
        names = [str(c) for c in (class_names if class_names is not None else range(len(self.matrix)))]
        if len(names) != len(self.matrix):
            raise ValueError(f"{self._where()}: class_names has {len(names)} entries for {len(self.matrix)} classes")
        corner = "true\\pred"
        label_width = max([len(corner)] + [len(n) for n in names])
        width = max([1] + [len(n) for n in names] + [len(str(v)) for v in self.matrix.ravel()])
        lines = [f"{corner:>{label_width}} " + " ".join(f"{n:>{width}}" for n in names)]
        for name, row in zip(names, self.matrix):
            lines.append(f"{name:>{label_width}} " + " ".join(f"{v:>{width}}" for v in row))
        return "\n".join(lines)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes}


class _ConfusionScore(ConfusionMatrix):
    """Precision, recall or F1 from a confusion matrix accumulated over batches."""

    score = ""

    def __init__(self, average: str | None = "macro", num_classes: int | None = None, name: str | None = None):
        F.check_average(average, type(self).__name__)
        self.average = average
        super().__init__(num_classes, name)

    def result(self) -> float | np.ndarray:
        if not self.matrix.sum():
            return 0.0 if self.average is not None else np.zeros(len(self.matrix))
        return F.score_from_confusion(self.matrix, self.score, self.average, self._where())

    @property
    def is_scalar(self) -> bool:
        return self.average is not None

    def get_config(self) -> dict:
        return {**super().get_config(), "average": self.average}


class Precision(_ConfusionScore):
    """Precision, tp / (tp + fp), over an epoch; see :func:`cnnkit.metrics.precision` for ``average``."""

    default_name = "precision"
    score = "precision"


class Recall(_ConfusionScore):
    """Recall, tp / (tp + fn), over an epoch; see :func:`cnnkit.metrics.precision` for ``average``."""

    default_name = "recall"
    score = "recall"


class F1Score(_ConfusionScore):
    """F1, 2 tp / (2 tp + fp + fn), over an epoch; see :func:`cnnkit.metrics.precision` for ``average``."""

    default_name = "f1_score"
    score = "f1_score"


# ---------------------------------------------------------------- AUC

class AUC(Metric):
    """Exact ROC AUC over an epoch: keeps every label and score, ranks them at ``result()``.

    Args:
        multi_class: ``"ovr"``, as in :func:`cnnkit.metrics.roc_auc`.
        average: as in :func:`cnnkit.metrics.roc_auc`; None gives per-class values.
        name: the logged name.
    """

    default_name = "auc"

    def __init__(self, multi_class: str = "ovr", average: str | None = "macro", name: str | None = None):
        if multi_class not in F.MULTI_CLASS:
            raise ValueError(f"AUC: multi_class must be one of {', '.join(map(repr, F.MULTI_CLASS))}, "
                             f"got {multi_class!r}")
        F.check_average(average, "AUC", F.AUC_AVERAGES)
        self.multi_class = multi_class
        self.average = average
        super().__init__(name)

    def reset_state(self) -> None:
        self.labels: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        where = self._where()
        y_true, y_pred = F.to_host(y_true, where, "y_true"), F.to_host(y_pred, where, "y_pred")
        F.check_lengths(where, y_true, y_pred)
        if y_pred.ndim > 2:
            raise ValueError(f"{where}: y_pred must have shape (N,), (N, 1) or (N, C), got {y_pred.shape}")
        if self.scores and y_pred.shape[1:] != self.scores[0].shape[1:]:
            raise ValueError(f"{where}: y_pred of shape {y_pred.shape} does not match earlier batches "
                             f"of shape (N, {', '.join(map(str, self.scores[0].shape[1:]))})")
        self.labels.append(y_true)
        self.scores.append(y_pred)

    def merge_state(self, metrics: list[Metric]) -> None:
        for other in metrics:
            self.labels.extend(other.labels)
            self.scores.extend(other.scores)

    def result(self) -> float | np.ndarray:
        if not self.scores:
            return 0.0
        return F.roc_auc(np.concatenate(self.labels), np.concatenate(self.scores), self.multi_class, self.average)

    @property
    def is_scalar(self) -> bool:
        return self.average is not None

    def get_config(self) -> dict:
        return {**super().get_config(), "multi_class": self.multi_class, "average": self.average}


# ---------------------------------------------------------------- lookup by name

_NAMED: dict[str, Callable[[str], Metric]] = {
    "accuracy": lambda name: Accuracy(name=name),
    "acc": lambda name: Accuracy(name=name),
    "sparse_categorical_accuracy": lambda name: SparseCategoricalAccuracy(name=name),
    "categorical_accuracy": lambda name: CategoricalAccuracy(name=name),
    "binary_accuracy": lambda name: BinaryAccuracy(name=name),
    "top_k_accuracy": lambda name: TopKCategoricalAccuracy(k=5, name=name),
    "top_k_categorical_accuracy": lambda name: TopKCategoricalAccuracy(k=5, name=name),
    "top5": lambda name: TopKCategoricalAccuracy(k=5, name=name),
    "precision": lambda name: Precision(name=name),
    "recall": lambda name: Recall(name=name),
    "f1": lambda name: F1Score(name=name),
    "f1_score": lambda name: F1Score(name=name),
    "auc": lambda name: AUC(name=name),
    "confusion_matrix": lambda name: ConfusionMatrix(name=name),
    "mae": lambda name: MeanAbsoluteError(name=name),
    "mean_absolute_error": lambda name: MeanAbsoluteError(name=name),
    "mse": lambda name: MeanSquaredError(name=name),
    "mean_squared_error": lambda name: MeanSquaredError(name=name),
}


def get(identifier: Any) -> Metric:
    """A metric from what ``model.compile(metrics=[...])`` accepts.

    Args:
        identifier: a name (``"accuracy"``/``"acc"``, ``"sparse_categorical_accuracy"``,
            ``"categorical_accuracy"``, ``"binary_accuracy"``, ``"top_k_accuracy"``/
            ``"top5"`` (k = 5), ``"precision"``, ``"recall"``, ``"f1"``/``"f1_score"``,
            ``"auc"``, ``"confusion_matrix"``, ``"mae"``, ``"mse"``), giving a new metric logged under that
            name; a :class:`Metric` instance, returned as is; a Metric subclass,
            instantiated with defaults; or a function ``fn(y_true, y_pred) -> number``,
            wrapped in a :class:`MeanMetricWrapper`.

    Returns:
        A :class:`Metric`.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        if identifier not in _NAMED:
            raise ValueError(f"unknown metric {identifier!r}; valid names are {', '.join(sorted(_NAMED))}")
        return _NAMED[identifier](identifier)
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(f"a metric must be a name, a Metric or a function (y_true, y_pred) -> number, "
                    f"got {type(identifier).__name__}")
