"""Data for fit / evaluate / predict: checked, cut into batches, grouped as the model's inputs and targets.

A model with one input takes ``x`` as one array; a functional model with several
inputs takes a list in the order of ``Model(inputs=[...])`` or a dict keyed by the
Input names, as Keras does, and likewise ``y`` for several outputs. A
:class:`~cnnkit.data.DataLoader` given instead yields flat batches: the inputs,
then the targets.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .. import backend
from ..autograd import Tensor
from ..data import DataLoader
from ..data.dataset import as_array
from .objective import output_names


def input_names(model) -> list[str] | None:
    """The names of a functional model's inputs, or None for a model with one input."""
    graph = getattr(model, "_graph", None)
    if graph is None or graph.single_input:
        return None
    return [tensor.node.layer.name for tensor in graph.inputs]


def _group(fields: list, names: list[str] | None):
    if names is None:
        return fields[0]
    return list(fields)


class Batches:
    """A DataLoader whose flat batches are regrouped into ``(inputs, targets, sample_weight)``.

    ``inputs`` is one tensor or a list (several model inputs); ``targets`` is one
    tensor, a list (several outputs) or None (prediction without targets);
    ``sample_weight`` is the (batch,) weights, the field after the targets, or None.
    """

    def __init__(self, loader: DataLoader, inputs: list[str] | None, targets: list[str] | None,
                 has_targets: bool, caller: str):
        self.loader, self.inputs, self.targets, self.caller = loader, inputs, targets, caller
        self.placement: str | None = None  # where the data lives on a GPU, for the progress output
        self.input_count = 1 if inputs is None else len(inputs)
        self.target_count = (1 if targets is None else len(targets)) if has_targets else 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple]:
        for batch in self.loader:
            yield self.split(batch)

    def split(self, batch: tuple) -> tuple:
        width = len(batch)
        targets_end = self.input_count + self.target_count
        weights = None
        if self.target_count and width == targets_end + 1:
            weights = batch[-1]  # Keras' (x, y, sample_weight)
        elif width != targets_end and not (self.target_count == 0 and width > self.input_count):
            # (predict() on a loader that also yields targets does not need them)
            targets = f" and {self.target_count} target(s)" if self.target_count else ""
            raise ValueError(f"{self.caller}: each batch should hold {self.input_count} input(s){targets}, got "
                             f"{width} field(s)" + (" (one more, after the targets, is read as sample weights)"
                                                    if self.target_count else ""))
        inputs = _group(list(batch[:self.input_count]), self.inputs)
        target_fields = list(batch[self.input_count:targets_end])
        targets = _group(target_fields, self.targets) if target_fields else None
        return inputs, targets, weights

    def first_inputs(self):
        """The inputs of the first batch (to build the model before training)."""
        return next(iter(self))[0]


def _fields(value: Any, names: list[str] | None, what: str, caller: str) -> list:
    """One array per model input (or output), from an array, a list in order or a dict by name."""
    if names is None:
        return [value]
    if len(names) == 1 and not isinstance(value, (list, tuple, dict)):
        return [value]  # Model([input], [output]) takes a plain array too, as in Keras
    if isinstance(value, dict):
        if sorted(value) != sorted(names):
            raise ValueError(f"{caller}: {what} should have the keys {names}, got {sorted(value)}")
        return [value[name] for name in names]
    if isinstance(value, (list, tuple)) and len(value) == len(names):
        return list(value)
    given = f"a list of {len(value)}" if isinstance(value, (list, tuple)) else type(value).__name__
    raise ValueError(f"{caller}: the model has {len(names)} {what} entries {names}; pass {what} as a list of "
                     f"{len(names)} arrays in that order or a dict keyed by those names, got {given}")


def check_array(name: str, array: Any, floating: bool, scan_finite: bool) -> None:
    """Catch the bad inputs that would otherwise fail deep inside a layer."""
    data = array.data if isinstance(array, Tensor) else array
    if not hasattr(data, "dtype") or not hasattr(data, "shape"):
        raise TypeError(f"{name} must be an array or a Tensor, got {type(array).__name__}")
    dtype = np.dtype(data.dtype)
    if floating and dtype.kind != "f":
        raise TypeError(f"{name} has dtype {dtype}; the model needs floating-point inputs "
                        f"(convert with .astype('float32'), and scale 8-bit images by 1/255)")
    if len(data) == 0:
        raise ValueError(f"{name} has no samples (shape {tuple(data.shape)})")
    if scan_finite and dtype.kind == "f":
        xp = backend.get_array_module(data)
        if not bool(xp.isfinite(data).all()):
            bad = int(backend.to_numpy(xp.argwhere(~xp.isfinite(data.reshape(len(data), -1)))[0, 0]))
            raise ValueError(f"{name} contains NaN or Inf (first at sample {bad}); clean the data first")


def make_batches(model, x: Any, y: Any, batch_size: int, shuffle: bool, caller: str, *,
                 targets: bool, scan_finite: bool, sample_weight: Any = None) -> Batches:
    """Batches of ``x`` (and ``y`` when ``targets``, and ``sample_weight``) on the model's device, checked first.

    Args:
        targets: whether the caller needs targets (fit, evaluate) or not (predict).
        scan_finite: look for NaN and Inf in the data (fit does; a full scan costs a pass).
        sample_weight: (N,) non-negative weights of the samples' losses, or None.
    """
    names_in = input_names(model)
    names_out = output_names(model)
    if isinstance(x, DataLoader):
        if y is not None:
            raise ValueError(f"{caller}: y must be None when x is a DataLoader (it yields the targets too)")
        return Batches(x, names_in, names_out, targets, caller)
    if x is None:
        raise ValueError(f"{caller}: x is required")
    if targets and y is None:
        raise ValueError(f"{caller}: y is required (the targets), or pass a DataLoader that yields them as x")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{caller}: batch_size must be a positive int, got {batch_size!r}")
    x_fields, y_fields = _checked_fields(model, x, y if targets else None, caller, scan_finite, sample_weight)
    fields, prefetch, placement = place_on_device((*x_fields, *y_fields), model.device)
    loader = DataLoader(fields, batch_size=batch_size, shuffle=shuffle, device=model.device, prefetch=prefetch)
    batches = Batches(loader, names_in, names_out, targets, caller)
    batches.placement = placement
    return batches


def _checked_fields(model, x: Any, y: Any, caller: str, scan_finite: bool,
                    sample_weight: Any = None) -> tuple[list, list]:
    """The arrays of ``x`` and ``y`` (None: no targets; then ``sample_weight``, if any), checked."""
    names_in, names_out = input_names(model), output_names(model)
    x_fields = [as_array(v, "x") for v in _fields(x, names_in, "x", caller)]
    y_fields = [] if y is None else [as_array(v, "y") for v in _fields(y, names_out, "y", caller)]
    x_labels = _labels("x", names_in)
    y_labels = [] if y is None else _labels("y", names_out)
    for label, field in zip(x_labels, x_fields):
        check_array(f"{caller}: {label}", field, floating=True, scan_finite=scan_finite)
    for label, field in zip(y_labels, y_fields):
        check_array(f"{caller}: {label}", field, floating=False, scan_finite=scan_finite)
    if sample_weight is not None:
        y_fields.append(_checked_weights(as_array(sample_weight, "sample_weight"), f"{caller}: sample_weight"))
        y_labels.append("sample_weight")
    lengths = {label: int(field.shape[0]) for label, field in zip(x_labels + y_labels, x_fields + y_fields)}
    if len(set(lengths.values())) > 1:
        counts = ", ".join(f"{label}: {n}" for label, n in lengths.items())
        raise ValueError(f"{caller}: every array must have the same number of samples, got {counts}")
    return x_fields, y_fields


def batch_of(model, x: Any, y: Any, caller: str, scan_finite: bool = False, sample_weight: Any = None) -> tuple:
    """``(inputs, targets, sample weights or None)`` as one batch of tensors on the model's device.

    The arrays are used as they are: moved to the device if needed, never gathered into a copy.
    """
    x_fields, y_fields = _checked_fields(model, x, y, caller, scan_finite, sample_weight)
    on_model = [Tensor(backend.to_device(field, model.device)) for field in (*x_fields, *y_fields)]
    inputs, targets = on_model[:len(x_fields)], on_model[len(x_fields):]
    weights = None if sample_weight is None else targets.pop()
    return _group(inputs, input_names(model)), _group(targets, output_names(model)), weights


# The training arrays are copied to the GPU whole when they take at most this fraction of its free
# memory, leaving the rest for weights, activations and the memory pool's slack.
DEVICE_DATA_FRACTION = 0.5
STREAMED_PREFETCH = 2


def place_on_device(fields: tuple, device: backend.Device) -> tuple[tuple, int, str | None]:
    """Where the batches of ``fields`` come from on ``device``, and the sentence that says so.

    On a GPU, arrays that fit (see ``DEVICE_DATA_FRACTION``) are moved there once, so each
    step gathers its batch on the device with no host transfer; otherwise batches are
    prefetched and uploaded through pinned buffers on a copy stream while the previous
    step computes. On the CPU nothing changes.

    Returns:
        ``(fields, prefetch, placement)``: the arrays to batch, the DataLoader's prefetch
        depth, and a line for the progress output (None on the CPU).
    """
    if not device.is_cuda:
        return fields, 0, None
    from .. import cuda  # only here: the GPU's free memory
    from .summary import format_bytes

    samples, nbytes = len(fields[0]), sum(int(field.nbytes) for field in fields)
    free = cuda.memory_info(device).free
    if all(backend.is_cuda_array(field) for field in fields) or nbytes <= DEVICE_DATA_FRACTION * free:
        moved = tuple(backend.to_device(field, device) for field in fields)
        return moved, 0, f"Data: {samples} samples kept on {device} ({format_bytes(nbytes)})"
    return fields, STREAMED_PREFETCH, (f"Data: {samples} samples ({format_bytes(nbytes)}, more than "
                                       f"{DEVICE_DATA_FRACTION:.0%} of the {format_bytes(free)} free on {device}) "
                                       f"streamed from host memory through pinned buffers")


def _checked_weights(weights: Any, name: str) -> Any:
    if weights.ndim != 1 or weights.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a 1-D array of numbers, one per sample; got {weights.dtype} of shape "
                         f"{tuple(weights.shape)}")
    xp = backend.get_array_module(weights)
    if not bool(xp.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ValueError(f"{name} must hold finite, non-negative weights")
    return weights.astype(np.float32)


def combined_sample_weights(model, y: Any, class_weight: dict | None, sample_weight: Any, caller: str) -> Any:
    """fit's per-sample loss weights: ``sample_weight`` times the class weights of ``y``'s labels, or None.

    ``class_weight`` is Keras' ``{class index: weight}``; a sample weighs as its class
    (integer labels, or one-hot rows by their argmax). Small host arrays: the batches
    carry them to the model's device.
    """
    if sample_weight is not None:
        sample_weight = backend.to_numpy(as_array(sample_weight, "sample_weight"))
    if class_weight is None:
        return sample_weight
    if not isinstance(class_weight, dict):
        raise TypeError(f"{caller}: class_weight must be a dict {{class index: weight}}, got {class_weight!r}")
    if output_names(model) is not None or y is None:
        raise ValueError(f"{caller}: class_weight needs array targets y of a model with one output")
    labels = backend.to_numpy(as_array(y, "y"))
    if labels.ndim == 2 and labels.shape[1] > 1:
        labels = labels.argmax(axis=1)
    labels = labels.reshape(len(labels)).astype(np.int64)
    missing = sorted(set(np.unique(labels).tolist()) - set(class_weight))
    if missing:
        raise ValueError(f"{caller}: class_weight gives no weight for classes {missing} present in y "
                         f"(it has {sorted(class_weight)})")
    table = np.zeros(max(labels.max(), *class_weight) + 1, np.float32)
    for cls, weight in class_weight.items():
        table[int(cls)] = weight
    weights = table[labels]
    if sample_weight is None:
        return weights
    if sample_weight.shape != weights.shape:
        raise ValueError(f"{caller}: sample_weight must have shape {weights.shape}, one weight per sample of y, "
                         f"got {sample_weight.shape}")
    return weights * sample_weight


def validation_fields(validation_data: Any, caller: str) -> tuple:
    """``(x, y, sample_weight or None)`` from fit's ``validation_data``: a DataLoader, a pair or a triple."""
    if isinstance(validation_data, DataLoader):
        return validation_data, None, None
    if isinstance(validation_data, (list, tuple)) and len(validation_data) in (2, 3):
        return (*validation_data, None)[:3]
    raise ValueError(f"{caller}: validation_data must be (x_val, y_val), (x_val, y_val, sample_weight) or a "
                     f"DataLoader")


def _labels(what: str, names: list[str] | None) -> list[str]:
    return [what] if names is None else [f"{what}[{name!r}]" for name in names]


def fields_of(model, data: Any, what: str) -> list:
    """``data`` as one array per model input (``what="x"``) or output (``what="y"``), in the model's order."""
    names = input_names(model) if what == "x" else output_names(model)
    return [as_array(value, what) for value in _fields(data, names, what, model.who)]


def take(model, data: Any, index: Any, what: str) -> Any:
    """The samples ``index`` (a slice or index array) of ``data``, grouped as the model takes it."""
    parts = [field[index] for field in fields_of(model, data, what)]
    names = input_names(model) if what == "x" else output_names(model)
    return parts[0] if names is None else parts


def sample_count(model, x: Any) -> int:
    """How many samples ``x`` holds (the first input's length when the model has several)."""
    return int(fields_of(model, x, "x")[0].shape[0])
