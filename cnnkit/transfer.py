"""Transfer learning the Keras way: freeze a trained base, put a new head on it, fine-tune.

    model = replace_head(pretrained, Dense(5), freeze_base=True)   # new classifier, base frozen
    model.compile(optimizer="adam", loss=..., metrics=["accuracy"])
    model.fit(x_small, y_small, epochs=10)                           # trains the head only
    unfreeze(model)                                                  # then fine-tune everything
    model.compile(optimizer=cnnkit.optimizers.Adam(learning_rate=1e-4), loss=..., metrics=["accuracy"])
    model.fit(x_small, y_small, epochs=5)

Freezing sets ``trainable=False`` on layers: their weights get no gradients, ``fit``
leaves them out of the optimizer, and a frozen ``BatchNormalization`` runs on its moving
statistics (it neither uses nor updates batch statistics), so a frozen layer does not
change at all while the rest trains. To use a network as a fixed feature extractor,
``model.extract_features(x, layer=...)`` returns a layer's outputs.
"""
from __future__ import annotations

from typing import Sequence

from .layers.base import Input, Layer
from .layers.norm import BatchNormalization
from .models.model import Model
from .models.sequential import Sequential


def freeze(model: Model, up_to: "str | int | Layer | None" = None) -> list[Layer]:
    """Make the first layers of ``model`` untrainable, through ``up_to`` (inclusive).

    Args:
        model: a built model.
        up_to: the last layer to freeze, by name, index into ``model.layers`` or object;
            None freezes every layer.

    Returns:
        The layers now frozen.
    """
    layers = model.layers
    end = len(layers) if up_to is None else _position(model, up_to, "freeze") + 1
    for layer in layers[:end]:
        layer.trainable = False
    return layers[:end]


def unfreeze(model: Model, from_layer: "str | int | Layer | None" = None, *,
             include_batch_norm: bool = False) -> list[Layer]:
    """Make the layers of ``model`` from ``from_layer`` (inclusive) to the end trainable again, for fine-tuning.

    Args:
        model: a built model.
        from_layer: the first layer to unfreeze, by name, index or object; None
            unfreezes every layer.
        include_batch_norm: also unfreeze ``BatchNormalization`` layers. Off by default,
            as the Keras guide advises: a batch-norm layer that trains switches to the
            statistics of the (small) fine-tuning batches and updates its moving
            statistics, which can undo what the base learned.

    Returns:
        The layers now trainable.
    """
    layers = model.layers
    start = 0 if from_layer is None else _position(model, from_layer, "unfreeze")
    chosen = [layer for layer in layers[start:] if include_batch_norm or not isinstance(layer, BatchNormalization)]
    for layer in chosen:
        layer.trainable = True
    return chosen


def replace_head(model: Model, head: "Layer | Sequence[Layer]", *, cut_at: "str | int | Layer | None" = None,
                 freeze_base: bool = False, name: str | None = None) -> Model:
    """A new model: the base of ``model`` up to ``cut_at``, followed by the ``head`` layers.

    The base layers are shared with ``model``, not copied (as when a Keras model is
    built from another's layers): training the new model changes them in both.

    Args:
        model: a built Sequential or functional model.
        head: the new layer, or layers applied in order to the base's output.
        cut_at: the last layer of ``model`` kept, by name, index into ``model.layers``
            or object; None keeps every layer but the last (the old classifier).
        freeze_base: make every kept layer untrainable (see :func:`freeze`).
        name: the new model's name.

    Returns:
        A Sequential for a Sequential ``model``, otherwise a functional Model, on ``model``'s
        device; not compiled.
    """
    new_layers = [head] if isinstance(head, Layer) else list(head)
    if not new_layers or not all(isinstance(layer, Layer) for layer in new_layers):
        raise TypeError(f"replace_head: head must be a Layer or a non-empty list of Layers, got {head!r}")
    try:
        model_input = model.input
    except AttributeError:
        raise ValueError(f"replace_head: {model.who} has no symbolic graph; build it from an Input (a subclassed "
                         f"model must be rebuilt in code)") from None
    layers = model.layers
    end = len(layers) - 1 if cut_at is None else _position(model, cut_at, "replace_head") + 1
    base = layers[:end]
    if isinstance(model, Sequential):
        if not base:
            raise ValueError(f"replace_head: cut_at leaves no layer of {model.who}")
        new_model = Sequential([Input(model_input.shape[1:], dtype=model.dtype), *base, *new_layers], name=name,
                               dtype=model.dtype)
    else:
        if isinstance(model_input, list):
            raise ValueError(f"replace_head: {model.who} has several inputs; build the new model with "
                             f"Model(model.inputs, head(layer.output)) instead")
        x = base[-1].output
        for layer in new_layers:
            x = layer(x)
        new_model = Model(model_input, x, name=name)
    if freeze_base:
        for layer in base:
            layer.trainable = False
    return new_model.to(model.device)  # the head's weights were created on the default device


def _position(model: Model, layer: "str | int | Layer", who: str) -> int:
    """The index in ``model.layers`` of a layer given by name, index or object."""
    layers = model.layers
    if isinstance(layer, str):
        layer = model.get_layer(name=layer)
    if isinstance(layer, Layer):
        for index, existing in enumerate(layers):
            if existing is layer:
                return index
        raise ValueError(f"{who}: {layer.who} is not a layer of {model.who}")
    if isinstance(layer, int) and not isinstance(layer, bool):
        if not -len(layers) <= layer < len(layers):
            raise ValueError(f"{who}: layer index {layer} is out of range for {model.who} with {len(layers)} layers")
        return layer % len(layers)
    raise TypeError(f"{who}: a layer must be given by name, index or object, got {layer!r}")
