"""Saving and loading what cnnkit does not know by name: user layers, losses, metrics, activations, ...

A saved model refers to everything by name. Built-in objects have their own names;
a user's class is stored as its class name and ``get_config()``, and a user's
function as its ``__name__``. Loading finds them again in the ``custom_objects``
mapping given to :func:`cnnkit.load_model` (or in a :func:`custom_object_scope`),
as Keras does::

    model = cnnkit.load_model("run.safetensors", custom_objects={"squared_error": squared_error})
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

_scopes: list[dict[str, Any]] = []


@contextmanager
def custom_object_scope(objects: dict[str, Any] | None) -> Iterator[None]:
    """Make ``objects`` (name -> class or function) findable by name while loading."""
    _scopes.append(dict(objects or {}))
    try:
        yield
    finally:
        _scopes.pop()


def find(name: str) -> Any | None:
    """The custom object registered under ``name`` in the innermost scope that has it, else None."""
    for scope in reversed(_scopes):
        if name in scope:
            return scope[name]
    return None


def lookup(name: str, known: dict[str, Any], what: str) -> Any:
    """``name`` among the custom objects, else among the built-in ``known`` ones (lower-case keys).

    Raises:
        ValueError: for a name found in neither, listing the built-in names.
    """
    custom = find(name)
    if custom is not None:
        return custom
    key = str(name).lower()
    if key not in known:
        raise ValueError(f"unknown {what} {name!r}; valid names: {', '.join(sorted(known))}")
    return known[key]


def serialize(obj: Any, what: str) -> dict:
    """A user's object as plain data: its class name and config, or a function's name.

    Raises:
        TypeError: for an object that cannot be found again by name (a lambda, or an
            object without ``get_config``), naming ``what`` it is.
    """
    if hasattr(obj, "get_config") and not isinstance(obj, type):
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    name = getattr(obj, "__name__", None)
    if callable(obj) and name and name != "<lambda>":
        return {"function": name}
    raise TypeError(f"cannot save {what} {obj!r}: it has no name to find it by when loading; use a named "
                    f"function or a class with get_config(), or save only the weights with save_weights()")


def deserialize(entry: dict, what: str, known: dict[str, Any] | None = None) -> Any:
    """Rebuild what :func:`serialize` (or a built-in serializer) wrote.

    Args:
        entry: ``{"class_name": ..., "config": ...}`` or ``{"function": ...}``.
        what: how errors name the object ("loss", "activation", ...).
        known: built-in classes or functions by name, tried after the custom scope.
    """
    name = entry.get("class_name", entry.get("function"))
    found = find(name)
    if found is None and known is not None:
        found = known.get(name)
    if found is None:
        raise ValueError(f"unknown {what} {name!r} in the saved model; pass it to load_model(..., "
                         f"custom_objects={{{name!r}: ...}}), or load with compile=False if it is a loss or metric")
    if "function" in entry:
        return found
    config = entry.get("config", {})
    return found.from_config(config) if hasattr(found, "from_config") else found(**config)
