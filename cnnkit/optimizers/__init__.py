"""Optimizers (SGD, Adagrad, RMSprop, Adadelta, Adam, AdamW) and learning-rate schedules.

PyTorch style::

    optimizer = Adam(model.parameters(), lr=1e-3)
    loss.backward(); optimizer.step(); optimizer.zero_grad()

Keras style: ``model.compile(optimizer="adam")`` or ``Adam(learning_rate=1e-3)``, with
the parameters attached later through ``build(params)``.
"""
from __future__ import annotations

from typing import Any

from . import schedules
from .adam import Adam, AdamW
from .adaptive import Adadelta, Adagrad, RMSprop
from .base import Optimizer
from .sgd import SGD

_OPTIMIZERS = {cls.__name__.lower(): cls for cls in (SGD, Adagrad, RMSprop, Adadelta, Adam, AdamW)}


def get(identifier: Any) -> Optimizer:
    """An optimizer from a name, a config or an optimizer.

    Args:
        identifier: a name (``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``,
            ``"adagrad"``, ``"adadelta"``; any case) for a new instance with the
            default settings; ``{"class_name": ..., "config": ...}`` as written by
            :func:`serialize`; or an :class:`Optimizer`, returned as it is.

    Returns:
        An unbuilt optimizer (or the one given).
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return _class_named(identifier)()
    if isinstance(identifier, dict) and "class_name" in identifier:
        return _class_named(identifier["class_name"]).from_config(identifier.get("config", {}))
    raise TypeError(f"optimizer must be a name, a {{'class_name', 'config'}} dict or an Optimizer, got {identifier!r}")


def serialize(optimizer: Optimizer) -> dict:
    """``{"class_name": ..., "config": ...}``, the form :func:`get` reads back."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def _class_named(name: str) -> type:
    try:
        return _OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(_OPTIMIZERS)}") from None


__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "get", "serialize", "schedules"]
