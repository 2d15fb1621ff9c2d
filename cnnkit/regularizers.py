"""Weight penalties added to the training loss: L1, L2 and both.

    L1(w)   = l1 · Σ |w|
    L2(w)   = l2 · Σ w²
    L1L2(w) = l1 · Σ |w| + l2 · Σ w²

A layer's ``kernel_regularizer`` / ``bias_regularizer`` is attached to the weight;
``Model.fit`` (or a hand-written loop through :func:`penalty`) adds it to the loss.
"""
from __future__ import annotations

from typing import Any, Iterable

from . import custom_objects
from .autograd import Tensor


class Regularizer:
    """Callable ``penalty = regularizer(weight)`` returning a scalar tensor."""

    def __call__(self, weight: Tensor) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict) -> "Regularizer":
        return cls(**config)


class L1L2(Regularizer):
    """l1 · Σ|w| + l2 · Σw²."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        if l1 < 0 or l2 < 0:
            raise ValueError(f"regularization factors must be non-negative, got l1={l1}, l2={l2}")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, weight: Tensor) -> Tensor:
        penalty = None
        if self.l1:
            penalty = weight.abs().sum() * self.l1
        if self.l2:
            squares = (weight * weight).sum() * self.l2
            penalty = squares if penalty is None else penalty + squares
        if penalty is None:
            penalty = (weight * 0.0).sum()
        return penalty

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """l1 · Σ|w| (Keras' default factor 0.01)."""

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(L1L2):
    """l2 · Σw² (Keras' default factor 0.01)."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


def l1(factor: float = 0.01) -> L1:
    return L1(factor)


def l2(factor: float = 0.01) -> L2:
    return L2(factor)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    return L1L2(l1, l2)


_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def get(identifier: Any) -> Regularizer | None:
    """A regularizer from None, a name ("l2" with Keras' default factor), a config dict or an object."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        if "function" in identifier:
            return custom_objects.deserialize(identifier, "regularizer")
        return _lookup(identifier.get("class_name")).from_config(identifier.get("config", {}))
    if isinstance(identifier, str):
        return _lookup(identifier)()
    if callable(identifier):
        return identifier
    raise TypeError(f"regularizer must be None, a name, a config dict or a Regularizer, got {identifier!r}")


def _lookup(name: str):
    return custom_objects.lookup(name, _BY_NAME, "regularizer")


def serialize(regularizer: Regularizer | None) -> dict | None:
    """Plain data that :func:`get` turns back into the regularizer (user ones through custom_objects)."""
    if regularizer is None:
        return None
    name = {L1: "l1", L2: "l2", L1L2: "l1_l2"}.get(type(regularizer))
    if name is None:
        return custom_objects.serialize(regularizer, "regularizer")
    return {"class_name": name, "config": regularizer.get_config()}


def penalty(weights: Iterable[Any]) -> Tensor | None:
    """Sum of the penalties of every weight that has a regularizer (None when none has)."""
    total = None
    for weight in weights:
        regularizer = getattr(weight, "regularizer", None)
        if regularizer is not None and weight.trainable:
            term = regularizer(weight)
            total = term if total is None else total + term
    return total
