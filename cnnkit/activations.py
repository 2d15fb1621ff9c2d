"""Activation functions by name, for layers' ``activation=`` arguments (like ``keras.activations``).

``get("relu")`` returns :func:`relu`; ``serialize(relu)`` returns ``"relu"`` for a
layer's config. The functions themselves live in :mod:`cnnkit.ops.activation`.
"""
from __future__ import annotations

from typing import Callable

from . import custom_objects
from .autograd import Tensor
from .ops.activation import elu, gelu, leaky_relu, log_softmax, maxout, relu, sigmoid, silu, softmax, swish, tanh

__all__ = ["elu", "gelu", "get", "leaky_relu", "linear", "log_softmax", "maxout", "relu", "serialize", "sigmoid",
           "silu", "softmax", "swish", "tanh"]


def linear(x) -> Tensor:
    """The identity: y = x (the activation of a layer without one)."""
    return x


_BY_NAME: dict[str, Callable] = {
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "silu": silu,
    "swish": swish,
    "gelu": gelu,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "linear": linear,
}


def get(identifier: "str | Callable | None") -> Callable:
    """The activation function for a name, or ``identifier`` itself when it is callable.

    Args:
        identifier: one of "relu", "leaky_relu", "elu", "sigmoid", "tanh", "silu",
            "swish", "gelu", "softmax", "log_softmax", "linear" (case-insensitive);
            ``None`` (meaning :func:`linear`); or any callable mapping a tensor to a tensor.

    Returns:
        A callable ``f(x) -> Tensor``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
        TypeError: for anything that is neither a string, None nor callable.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        return custom_objects.lookup(identifier, _BY_NAME, "activation")
    if isinstance(identifier, dict):
        return custom_objects.deserialize(identifier, "activation", _BY_NAME)
    if callable(identifier):
        return identifier
    raise TypeError(f"activation must be a name, a callable or None, got {type(identifier).__name__}: "
                    f"{identifier!r}")


def serialize(fn: Callable) -> "str | dict":
    """The name under which :func:`get` finds ``fn`` (for a layer's config).

    ``swish`` is the same function as ``silu`` and serialises as ``"silu"``. A user's
    function is stored by its ``__name__`` and found again through ``custom_objects``.

    Raises:
        TypeError: for a callable that has no name to store (a lambda).
    """
    for name, known in _BY_NAME.items():
        if fn is known:
            return name
    return custom_objects.serialize(fn, "activation")
