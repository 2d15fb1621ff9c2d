"""Loss functions in the Keras style: ``loss(y_true, y_pred)`` gives a scalar tensor.

Each loss exists as a plain function returning one loss per sample (averaged over
every axis but the first where the loss is element-wise, as Keras averages over the
last) and as a class that also reduces over the batch. ``get`` finds either by name.

From probabilities, y_pred is clipped to [1e-7, 1 − 1e-7] before the logarithm, as
Keras does. Values outside [0, 1] cannot be probabilities: they are logits from a model
without a final softmax or sigmoid, which would otherwise train silently and badly, so
the cross-entropies raise at once (no warning first), naming the loss and suggesting
``from_logits=True``. With ``from_logits=True`` the fused, stable ops of
:mod:`cnnkit.ops.loss` are used instead, which is both faster and exact for large logits.

``y_true`` is a constant (no gradient reaches it): a Tensor, NumPy/CuPy array or list,
moved to y_pred's device. Every call checks that shapes and dtypes fit and that no NaN
or Inf slipped into the inputs. Checks of values go through :func:`cnnkit.checks.require`,
so inside ``fit`` on a GPU they cost no host round trip; there the loop has scanned the
inputs for NaN once, before training, and a non-finite prediction shows as a non-finite
loss, which the loop reports.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from . import backend, checks
from .autograd import Tensor, constant_like
from .ops.loss import sigmoid_binary_cross_entropy, softmax_cross_entropy
from .ops.math import clip, maximum
from .ops.shape import get_item

EPSILON = 1e-7
# Probabilities computed in float32 may stray from [0, 1] by rounding; logits stray much further.
PROBABILITY_TOLERANCE = 1e-5
REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------- input checks


def _as_pred(who: str, y_pred) -> Tensor:
    if not isinstance(y_pred, Tensor):
        y_pred = Tensor(y_pred)
    if y_pred.dtype.kind != "f":
        raise TypeError(f"{who}: y_pred must be a floating-point tensor, got dtype {y_pred.dtype}")
    if y_pred.ndim == 0 or y_pred.shape[0] == 0:
        raise ValueError(f"{who}: y_pred must hold a batch of at least one sample, got shape {y_pred.shape}")
    return y_pred


def _check_finite(who: str, y_true, y_pred: Tensor) -> None:
    """Raise naming the argument that holds NaN or Inf.

    One float64 sum over both inputs costs one pass and one device sync; only when it is
    not finite are the inputs inspected one by one (a huge but finite sum passes).
    Skipped inside a training loop, which checks its data and its loss itself.
    """
    if checks.collecting():
        return
    xp = y_pred.xp
    with np.errstate(over="ignore"):  # an overflowing sum is inspected below, not warned about
        total = y_pred.data.sum(dtype=np.float64)
        if y_true.dtype.kind == "f":
            total = total + y_true.sum(dtype=np.float64)
        if math.isfinite(float(total)):
            return
    for name, array in (("y_pred", y_pred.data), ("y_true", y_true)):
        if array.dtype.kind != "f":
            continue
        if bool(xp.isnan(array).any()):
            raise ValueError(f"{who}: {name} holds NaN")
        if bool(xp.isinf(array).any()):
            raise ValueError(f"{who}: {name} holds Inf")


def _prepare(who: str, y_true, y_pred) -> tuple[Any, Tensor]:
    """Check a dense (y_true, y_pred) pair; y_true comes back in y_pred's dtype and shape.

    A (N,) y_true with a (N, 1) y_pred (labels beside a one-unit sigmoid output) is
    reshaped to (N, 1); any other shape difference is an error.
    """
    y_pred = _as_pred(who, y_pred)
    y_true = constant_like(y_true, y_pred)
    if y_true.dtype.kind not in "biuf":
        raise TypeError(f"{who}: y_true must be numeric, got dtype {y_true.dtype}")
    if y_true.shape != y_pred.shape:
        if y_pred.shape[-1:] == (1,) and y_true.shape == y_pred.shape[:-1]:
            y_true = y_true.reshape(y_pred.shape)
        else:
            raise ValueError(f"{who}: y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; "
                             f"they must match")
    _check_finite(who, y_true, y_pred)
    return y_true.astype(y_pred.dtype, copy=False), y_pred


def _require_probabilities(who: str, y_pred: Tensor) -> None:
    """Refuse predictions that cannot be probabilities: the model outputs logits."""
    data = y_pred.data
    within = (data.min() >= -PROBABILITY_TOLERANCE) & (data.max() <= 1 + PROBABILITY_TOLERANCE)

    def explain() -> str:
        return (f"{who}: y_pred holds values from {float(data.min()):.4g} to {float(data.max()):.4g}, but with "
                f"from_logits=False it must hold probabilities in [0, 1]; the model outputs logits (no softmax or "
                f"sigmoid at the end): use the loss with from_logits=True, e.g. "
                f"{_CLASS_NAMES.get(who, 'the loss class')}(from_logits=True), or end the model with that activation")

    checks.require(within, explain)


def _check_classes(who: str, y_pred: Tensor) -> None:
    if y_pred.ndim != 2:
        raise ValueError(f"{who}: y_pred must have shape (batch, classes), got {y_pred.shape}")


def _per_sample_mean(losses: Tensor) -> Tensor:
    """Average an element-wise loss over every axis but the batch axis."""
    if losses.ndim == 1:
        return losses
    return losses.mean(axis=tuple(range(1, losses.ndim)))


# ---------------------------------------------------------------- per-sample losses


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy −Σ_c t_c log p_c against one-hot (or soft) targets, per sample.

    Args:
        y_true: (N, C) target probabilities, usually one-hot.
        y_pred: (N, C) probabilities (renormalised to sum to 1 and clipped, as Keras
            does), or logits with ``from_logits=True``.
        from_logits: y_pred holds logits; uses the fused stable softmax cross-entropy.
        label_smoothing: ε in [0, 1): targets become t·(1 − ε) + ε/C.

    Returns:
        A (N,) tensor.
    """
    who = "categorical_crossentropy"
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"{who}: label_smoothing must be in [0, 1), got {label_smoothing!r}")
    y_true, y_pred = _prepare(who, y_true, y_pred)
    _check_classes(who, y_pred)
    if label_smoothing:
        y_true = y_true * (1 - label_smoothing) + label_smoothing / y_pred.shape[1]
    if from_logits:
        return softmax_cross_entropy(y_pred, y_true)
    _require_probabilities(who, y_pred)
    probs = y_pred / y_pred.sum(axis=1, keepdims=True)
    return -(y_true * clip(probs, EPSILON, 1 - EPSILON).log()).sum(axis=1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False) -> Tensor:
    """Cross-entropy −log p_t against integer class indices t, per sample.

    Args:
        y_true: (N,) or (N, 1) integer class indices in [0, C).
        y_pred: (N, C) probabilities (renormalised and clipped), or logits with
            ``from_logits=True``.
        from_logits: y_pred holds logits; uses the fused stable softmax cross-entropy.

    Returns:
        A (N,) tensor.
    """
    who = "sparse_categorical_crossentropy"
    y_pred = _as_pred(who, y_pred)
    _check_classes(who, y_pred)
    N, C = y_pred.shape
    labels = constant_like(y_true, y_pred)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{who}: y_true must hold integer class indices in [0, {C}), got dtype {labels.dtype}")
    if labels.shape == (N, 1):
        labels = labels.reshape(N)
    if labels.shape != (N,):
        raise ValueError(f"{who}: y_true must have shape ({N},) (one class index per sample) for y_pred of "
                         f"shape {y_pred.shape}, got {labels.shape}")
    checks.require((labels.min() >= 0) & (labels.max() < C),
                   lambda: f"{who}: y_true must hold integer class indices in [0, {C}), got values from "
                           f"{int(labels.min())} to {int(labels.max())}")
    _check_finite(who, labels, y_pred)
    if from_logits:
        return softmax_cross_entropy(y_pred, labels)
    _require_probabilities(who, y_pred)
    probs = y_pred / y_pred.sum(axis=1, keepdims=True)
    picked = get_item(probs, (y_pred.xp.arange(N), labels))
    return -clip(picked, EPSILON, 1 - EPSILON).log()


def binary_crossentropy(y_true, y_pred, from_logits: bool = False) -> Tensor:
    """Binary cross-entropy −(t log p + (1 − t) log(1 − p)), averaged per sample.

    Args:
        y_true: targets in [0, 1], of y_pred's shape ((N,) labels for a (N, 1) y_pred also work).
        y_pred: probabilities (clipped), or logits with ``from_logits=True``.
        from_logits: y_pred holds logits; uses the stable sigmoid binary cross-entropy.

    Returns:
        A (N,) tensor.
    """
    who = "binary_crossentropy"
    y_true, y_pred = _prepare(who, y_true, y_pred)
    if from_logits:
        return _per_sample_mean(sigmoid_binary_cross_entropy(y_pred, y_true))
    _require_probabilities(who, y_pred)
    p = clip(y_pred, EPSILON, 1 - EPSILON)
    return _per_sample_mean(-(y_true * p.log() + (1 - y_true) * (1 - p).log()))


def mean_squared_error(y_true, y_pred) -> Tensor:
    """Mean of (y_pred − y_true)² per sample. Returns a (N,) tensor."""
    y_true, y_pred = _prepare("mean_squared_error", y_true, y_pred)
    difference = y_pred - y_true
    return _per_sample_mean(difference * difference)


def mean_absolute_error(y_true, y_pred) -> Tensor:
    """Mean of |y_pred − y_true| per sample. Returns a (N,) tensor."""
    y_true, y_pred = _prepare("mean_absolute_error", y_true, y_pred)
    return _per_sample_mean((y_pred - y_true).abs())


def _signed_labels(y_true):
    """Labels that are all 0 or 1 become −1 or 1 (as Keras does); ±1 labels pass unchanged.

    Chosen on the device with ``where``, so that no host read is needed.
    """
    xp = backend.get_array_module(y_true)
    zero_one = xp.all((y_true == 0) | (y_true == 1))
    return xp.where(zero_one, 2 * y_true - 1, y_true)


def hinge(y_true, y_pred, margin: float = 1.0) -> Tensor:
    """Hinge loss mean(max(margin − t·y, 0)) per sample, with labels t in {−1, 1}.

    Args:
        y_true: labels in {0, 1} or {−1, 1}; 0/1 labels are mapped to −1/1.
        y_pred: scores (not probabilities), of y_true's shape.
        margin: 1 gives the SVM hinge; 0 gives the perceptron criterion.

    Returns:
        A (N,) tensor.
    """
    y_true, y_pred = _prepare("hinge", y_true, y_pred)
    return _per_sample_mean(maximum(margin - _signed_labels(y_true) * y_pred, 0.0))


def squared_hinge(y_true, y_pred) -> Tensor:
    """Squared hinge mean(max(1 − t·y, 0)²) per sample, labels as in :func:`hinge`. Returns (N,)."""
    y_true, y_pred = _prepare("squared_hinge", y_true, y_pred)
    violation = maximum(1 - _signed_labels(y_true) * y_pred, 0.0)
    return _per_sample_mean(violation * violation)


def categorical_hinge(y_true, y_pred) -> Tensor:
    """Multi-class hinge max(max_{c ≠ true} y_c − y_true + 1, 0) per sample.

    Computed as max(max_c (1 − t_c)·y_c − Σ_c t_c·y_c + 1, 0) with one-hot t (as Keras does).

    Args:
        y_true: (N, C) one-hot targets.
        y_pred: (N, C) scores.

    Returns:
        A (N,) tensor.
    """
    who = "categorical_hinge"
    y_true, y_pred = _prepare(who, y_true, y_pred)
    _check_classes(who, y_pred)
    positive = (y_true * y_pred).sum(axis=1)
    negative = ((1 - y_true) * y_pred).max(axis=1)
    return maximum(negative - positive + 1, 0.0)


# ---------------------------------------------------------------- loss objects


def weigh_samples(losses: Tensor, sample_weight, who: str) -> Tensor:
    """Per-sample losses (N,) times per-sample weights (N,) (constants, moved to the losses' device)."""
    weights = constant_like(sample_weight, losses)
    if losses.ndim != 1 or weights.shape != losses.shape:
        raise ValueError(f"{who}: sample_weight must have one weight per sample, shape {tuple(losses.shape[:1])}, "
                         f"for per-sample losses of shape {tuple(losses.shape)}; got shape {tuple(weights.shape)}")
    return losses * weights.astype(losses.dtype, copy=False)


class Loss:
    """A loss with a batch reduction: ``loss(y_true, y_pred, sample_weight=None)`` returns a tensor.

    Per-sample weights (N,) multiply the per-sample losses before the reduction; as in
    Keras, ``"mean"`` still divides by the batch size, not by the sum of the weights.

    Args:
        reduction: ``"mean"`` (the sum of per-sample losses over the batch size, the
            default), ``"sum"``, or ``"none"`` (the (N,) per-sample tensor).
        name: the loss's name in logs and configs.
    """

    default_name = "loss"

    def __init__(self, reduction: str = "mean", name: str | None = None):
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {', '.join(REDUCTIONS)}, "
                             f"got {reduction!r}")
        self.reduction = reduction
        self.name = name or self.default_name

    def __call__(self, y_true, y_pred, sample_weight=None) -> Tensor:
        losses = self.call(y_true, y_pred)
        if sample_weight is not None:
            losses = weigh_samples(losses, sample_weight, type(self).__name__)
        if self.reduction == "mean":
            return losses.mean()
        if self.reduction == "sum":
            return losses.sum()
        return losses

    def call(self, y_true, y_pred) -> Tensor:
        """The (N,) per-sample losses; each subclass defines it."""
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor arguments as plain data: ``type(loss)(**loss.get_config())`` rebuilds it."""
        return {"reduction": self.reduction, "name": self.name}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class CategoricalCrossentropy(Loss):
    """Cross-entropy for one-hot targets; see :func:`categorical_crossentropy`."""

    default_name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, reduction: str = "mean",
                 name: str | None = None):
        super().__init__(reduction, name)
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"CategoricalCrossentropy: label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)

    def call(self, y_true, y_pred) -> Tensor:
        return categorical_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing)

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing, **super().get_config()}


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy for integer class indices; see :func:`sparse_categorical_crossentropy`."""

    default_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False, reduction: str = "mean", name: str | None = None):
        super().__init__(reduction, name)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred) -> Tensor:
        return sparse_categorical_crossentropy(y_true, y_pred, self.from_logits)

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits, **super().get_config()}


class BinaryCrossentropy(Loss):
    """Binary cross-entropy; see :func:`binary_crossentropy`."""

    default_name = "binary_crossentropy"

    def __init__(self, from_logits: bool = False, reduction: str = "mean", name: str | None = None):
        super().__init__(reduction, name)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred) -> Tensor:
        return binary_crossentropy(y_true, y_pred, self.from_logits)

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits, **super().get_config()}


class MeanSquaredError(Loss):
    """Mean squared error; see :func:`mean_squared_error`."""

    default_name = "mean_squared_error"

    def call(self, y_true, y_pred) -> Tensor:
        return mean_squared_error(y_true, y_pred)


class MeanAbsoluteError(Loss):
    """Mean absolute error; see :func:`mean_absolute_error`."""

    default_name = "mean_absolute_error"

    def call(self, y_true, y_pred) -> Tensor:
        return mean_absolute_error(y_true, y_pred)


class Hinge(Loss):
    """Hinge loss with a margin (0 gives the perceptron criterion); see :func:`hinge`."""

    default_name = "hinge"

    def __init__(self, margin: float = 1.0, reduction: str = "mean", name: str | None = None):
        super().__init__(reduction, name)
        if margin < 0:
            raise ValueError(f"Hinge: margin must be non-negative, got {margin!r}")
        self.margin = float(margin)

    def call(self, y_true, y_pred) -> Tensor:
        return hinge(y_true, y_pred, self.margin)

    def get_config(self) -> dict:
        return {"margin": self.margin, **super().get_config()}


class SquaredHinge(Loss):
    """Squared hinge loss; see :func:`squared_hinge`."""

    default_name = "squared_hinge"

    def call(self, y_true, y_pred) -> Tensor:
        return squared_hinge(y_true, y_pred)


class CategoricalHinge(Loss):
    """Multi-class hinge loss; see :func:`categorical_hinge`."""

    default_name = "categorical_hinge"

    def call(self, y_true, y_pred) -> Tensor:
        return categorical_hinge(y_true, y_pred)


def _perceptron() -> Loss:
    return Hinge(margin=0.0, name="perceptron")


_BY_NAME: dict[str, Callable[[], Loss]] = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "hinge": Hinge,
    "perceptron": _perceptron,
    "squared_hinge": SquaredHinge,
    "categorical_hinge": CategoricalHinge,
}
_CLASS_NAMES = {"categorical_crossentropy": "CategoricalCrossentropy",
                "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
                "binary_crossentropy": "BinaryCrossentropy"}
_BY_CLASS_NAME: dict[str, type] = {cls.__name__: cls for cls in (
    CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy, MeanSquaredError,
    MeanAbsoluteError, Hinge, SquaredHinge, CategoricalHinge)}


def get(identifier: "str | Loss | Callable") -> "Loss | Callable":
    """A loss object for a name, or ``identifier`` itself when it is a Loss or a callable.

    Args:
        identifier: a name (case-insensitive): "categorical_crossentropy",
            "sparse_categorical_crossentropy", "binary_crossentropy", "mse" /
            "mean_squared_error", "mae" / "mean_absolute_error", "hinge", "perceptron"
            (hinge with margin 0), "squared_hinge", "categorical_hinge"; a class name
            such as "CategoricalCrossentropy"; a :class:`Loss` class or object; or any
            callable ``f(y_true, y_pred) -> Tensor``.

    Returns:
        A callable ``loss(y_true, y_pred)``; a fresh :class:`Loss` object for a name or class.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
        TypeError: for anything else.
    """
    if isinstance(identifier, str):
        make = _BY_NAME.get(identifier.lower()) or _BY_CLASS_NAME.get(identifier)
        if make is None:
            raise ValueError(f"unknown loss {identifier!r}; valid names: {', '.join(_BY_NAME)} "
                             f"(or a class name: {', '.join(_BY_CLASS_NAME)})")
        return make()
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(f"loss must be a name, a Loss or a callable, got {type(identifier).__name__}: {identifier!r}")
