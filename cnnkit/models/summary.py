"""``model.summary()``: each layer's output shape and parameter count, totals, and memory."""
from __future__ import annotations

import math
from typing import Callable

from ..layers.base import InputLayer, _show


def format_bytes(size: float) -> str:
    """``size`` bytes in B, KB, MB or GB (powers of 1024), whichever keeps the number below 1024."""
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KB", "MB"):
        size /= 1024
        if size < 1024:
            return f"{size:.2f} {unit}"
    return f"{size / 1024:.2f} GB"


def _rows(model) -> list[tuple[str, str, str, str]]:
    """(layer (type), output shape, params, connected to) per layer call."""
    graph = model._graph
    if graph is None:
        return [(f"{layer.name} ({type(layer).__name__})", "?", f"{layer.count_params():,}", "")
                for layer in model.layers]
    branching = any(len(node.inputs) > 1 for node in graph.nodes) or len(graph.inputs) > 1
    rows = []
    for node in graph.nodes:
        layer = node.layer
        if isinstance(layer, InputLayer) and not model.lists_input_layers:
            continue
        connected = ", ".join(t.node.layer.name for t in node.inputs) if branching else ""
        rows.append((f"{layer.name} ({type(layer).__name__})", _show(node.outputs[0].shape),
                     f"{layer.count_params():,}", connected))
    return rows


def _activation_bytes(model, batch_size: int) -> int:
    """Bytes of every layer output for one batch (what a forward pass keeps alive for backward)."""
    if model._graph is None:
        return 0
    total = 0
    for node in model._graph.nodes:
        for output in node.outputs:
            shape = [batch_size if s is None else s for s in output.shape]
            total += math.prod(shape) * output.dtype.itemsize
    return total


def summary(model, batch_size: int = 32, print_fn: Callable[[str], None] = print) -> None:
    """Print the layers with output shapes and parameter counts, the totals, and memory use.

    Args:
        batch_size: the batch for which activation memory is estimated.
        print_fn: called once per line (``print`` by default).
    """
    if not model.built:
        raise ValueError(f"{model.who} has not been built yet, so its shapes are unknown: give input_shape= to the "
                         f"first layer, start with an Input(...), call build((None, ...)), or fit it on data first")
    rows = _rows(model)
    headers = ("Layer (type)", "Output Shape", "Param #", "Connected to")
    show_connections = any(row[3] for row in rows)
    columns = 4 if show_connections else 3
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) + 3 for i in range(columns)]
    line_length = sum(widths)

    def line(values) -> str:
        return "".join(str(v).ljust(w) for v, w in zip(values, widths)).rstrip()

    weights = model.weights
    trainable = sum(w.size for w in weights if w.trainable)
    frozen = sum(w.size for w in weights if not w.trainable)
    weight_bytes = sum(w.size * w.dtype.itemsize for w in weights)
    lines = [f'Model: "{model.name}"', "_" * line_length, line(headers[:columns]), "=" * line_length]
    for index, row in enumerate(rows):
        lines.append(line(row[:columns]))
        lines.append("_" * line_length if index < len(rows) - 1 else "=" * line_length)
    lines += [
        f"Total params: {trainable + frozen:,} ({format_bytes(weight_bytes)})",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {frozen:,}",
    ]
    activations = _activation_bytes(model, batch_size)
    if activations:
        lines.append(f"Memory: weights {format_bytes(weight_bytes)}, layer outputs for a batch of {batch_size} "
                     f"{format_bytes(activations)}")
    lines.append(f"Device: {model.device}")
    for text in lines:
        print_fn(text)
