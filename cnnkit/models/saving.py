"""Saving and loading models as one safetensors file.

The tensors are the weights, keyed by their place in the model (``layers.0.kernel``,
``layers.3.moving_mean``; attribute names for subclassed models), so a file loads into
any model of the same structure whatever its layers are called, plus the optimizer's
slots. The metadata holds the architecture (JSON config), the compile settings, the
optimizer's hyperparameters and step count, the epochs completed and the state of
cnnkit's random generator. Arrays are stored from the host, so a checkpoint written
on a GPU loads on a CPU-only machine.

Files are written to a temporary file in the target directory and renamed over the
target, so a crash never leaves a half-written checkpoint; temporaries that an earlier,
killed process left behind are removed by the next save to the same path. Each tensor's
CRC-32 is stored in the metadata and checked on loading, so a file whose bytes rotted
or were damaged in a copy is refused, naming the tensor (files from before checksums
load unchecked).
"""
from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as serialize

from .. import backend, losses, optimizers
from ..custom_objects import custom_object_scope, deserialize
from .. import metrics as metrics_module
from ..autograd import Parameter
from ..version import __version__

FORMAT = "cnnkit"
FORMAT_VERSION = "1"
SUPPORTED_EXTENSIONS = (".safetensors",)
_OPTIMIZER_PREFIX = "optimizer."
# A temporary older than this is left over from a killed save, not one in progress (even a huge, slow one).
STALE_TEMPORARY_SECONDS = 3600


def check_file_name(path: "str | os.PathLike", who: str = "save") -> Path:
    """``path`` as a Path if cnnkit can write a model there; a folder or another format is refused.

    Keras users type ``model.h5`` or ``model.keras``: writing safetensors under those
    names would mislead every tool that trusts the extension, so they are refused.
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{who}: {str(target)!r} is a folder; give a file name ending in "
                         f"{' or '.join(SUPPORTED_EXTENSIONS)}, e.g. {str(target / 'model.safetensors')!r}")
    if target.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise ValueError(f"{who}: cannot write {str(target)!r}: models are saved as safetensors files, so the name "
                         f"must end in {' or '.join(SUPPORTED_EXTENSIONS)} (got {target.suffix or 'no extension'!r})")
    return target


def named_layers(layer, prefix: str = "") -> dict[str, Any]:
    """``layer`` and every layer under it keyed by structural path (``""``, ``layers.0.``, ``block.conv.``)."""
    found = {prefix: layer}
    # Functional and Sequential models number their layers; layers and subclassed models use attribute names.
    if getattr(layer, "_graph", None) is not None or hasattr(layer, "_stack"):
        children = [(f"layers.{i}.", child) for i, child in enumerate(layer.layers)]
    else:
        children = [(f"{attribute}.", child) for attribute, child in layer._sublayers.items()]
    for child_prefix, child in children:
        found.update(named_layers(child, prefix + child_prefix))
    return found


def named_weights(layer, prefix: str = "") -> dict[str, Parameter]:
    """Every weight under ``layer`` keyed by its structural path, each parameter once."""
    found: dict[str, Parameter] = {}
    seen: set[int] = set()
    for path, current in named_layers(layer, prefix).items():
        for short_name, parameter in current._params.items():
            if id(parameter) not in seen:
                seen.add(id(parameter))
                found[path + short_name] = parameter
    return found


def _layer_states(model) -> dict[str, dict]:
    """The non-empty ``get_state()`` of every layer, by structural path."""
    return {path: state for path, layer in named_layers(model).items() if (state := layer.get_state())}


def _restore_layer_states(model, metadata: dict) -> None:
    """Give every layer its saved state; a file without one (older, or not saved by this layer) gives None."""
    states = json.loads(metadata.get("layer_states", "{}"))
    for path, layer in named_layers(model).items():
        layer.set_state(states.get(path))


def atomic_write(path: "str | os.PathLike", write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)``, flush it to disk, then rename it to ``path``.

    The temporary sits beside ``path`` as ``.<name>.<random>.tmp``; it is removed if anything
    fails, and stale ones from earlier interrupted saves are removed first. A failure of the
    file system (a full disk, a read-only folder) is an ``OSError`` naming ``path``, never
    the temporary.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(target)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise _naming(error, target) from None
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; a saved file gets the usual mode
        os.replace(temporary, target)
    except OSError as error:
        _remove(temporary)
        raise _naming(error, target) from None
    except BaseException:
        _remove(temporary)
        raise
    return target


def _naming(error: OSError, target: Path) -> OSError:
    """The same kind of OSError, about ``target`` instead of the temporary file."""
    reason = error.strerror or str(error)
    return type(error)(error.errno or errno.EIO, f"cannot save to {str(target)!r}: {reason}", str(target))


def _remove(temporary: str) -> None:
    if os.path.exists(temporary):
        os.remove(temporary)


def _remove_stale_temporaries(target: Path) -> None:
    """Delete temporaries of ``target`` that saves killed before they could clean up left behind."""
    if not target.parent.is_dir():
        return
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]{{8}}\.tmp")
    oldest_allowed = time.time() - STALE_TEMPORARY_SECONDS
    for entry in os.scandir(target.parent):
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < oldest_allowed:
                    os.remove(entry.path)
            except FileNotFoundError:  # another process cleaned it up first
                pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_safetensors(tensors: dict[str, np.ndarray], metadata: dict) -> Callable[[str], None]:
    """A writer for :func:`atomic_write`: the file in memory first, then written by Python,
    so that a full disk is an ``OSError`` rather than an error of the safetensors library."""
    metadata = {**metadata, "checksums": json.dumps({key: _checksum(array) for key, array in tensors.items()})}
    data = serialize(tensors, metadata=metadata)

    def write(temporary: str) -> None:
        with open(temporary, "wb") as stream:
            stream.write(data)

    return write


def _checksum(array: np.ndarray) -> str:
    return f"crc32:{zlib.crc32(np.ascontiguousarray(array).data):08x}"


def _verify_checksums(tensors: dict[str, np.ndarray], metadata: dict, path: Path) -> None:
    """Refuse a file whose tensors do not match the checksums saved with them."""
    if "checksums" not in metadata:
        return  # written before checksums were stored
    expected = json.loads(metadata["checksums"])
    for key in sorted(set(expected) | set(tensors)):
        if key not in tensors or key not in expected:
            raise ValueError(f"{str(path)!r} is damaged: tensor {key!r} is "
                             f"{'missing' if key not in tensors else 'not listed in the checksums'}")
        if _checksum(tensors[key]) != expected[key]:
            raise ValueError(f"{str(path)!r} is damaged: the bytes of tensor {key!r} do not match the checksum "
                             f"saved with them (a bad copy or a failing disk); restore the file from a backup")


def _weights_as_arrays(model) -> dict[str, np.ndarray]:
    return {path: np.ascontiguousarray(weight.numpy()) for path, weight in named_weights(model).items()}


def _compile_metadata(model) -> dict:
    return {**model.objective.get_config(),
            "optimizer": {"class_name": type(model.optimizer).__name__, "config": model.optimizer.get_config()}}


def _optimizer_tensors(model) -> tuple[dict, dict]:
    """The optimizer's slots as tensors, and its step count and parameter order as metadata."""
    optimizer = model.optimizer
    if optimizer is None or optimizer.params is None:
        return {}, {}
    state = optimizer.state_dict()
    paths = {id(p): path for path, p in named_weights(model).items()}
    # The optimizer may still hold weights of layers since removed (Sequential.pop): they are not saved.
    kept = [(paths[id(p)], slots) for p, slots in zip(optimizer.params, state["slots"]) if id(p) in paths]
    param_paths = [path for path, _ in kept]
    tensors = {}
    for path, slots in kept:
        for slot_name, value in slots.items():
            tensors[f"{_OPTIMIZER_PREFIX}{path}.{slot_name}"] = np.ascontiguousarray(value)
    return tensors, {"iterations": state["iterations"], "params": param_paths,
                     "slot_names": [sorted(slots) for _, slots in kept]}


def save_model(model, path: "str | os.PathLike", include_optimizer: bool = True) -> Path:
    """Save architecture, weights, compile settings and (by default) optimizer state to ``path``.

    Use :func:`cnnkit.load_model` to read it back, on any device. ``path`` must end in
    ``.safetensors`` (the one format cnnkit writes).
    """
    check_file_name(path, f"{model.who}.save")
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "cnnkit_version": __version__,
                "class_name": type(model).__name__, "config": json.dumps(model.get_config()),
                "epoch": str(model.epoch), "rng_state": json.dumps(backend.get_rng_state()),
                "layer_states": json.dumps(_layer_states(model))}
    tensors = _weights_as_arrays(model)
    if model.compiled:
        metadata["compile"] = json.dumps(_compile_metadata(model))
        if include_optimizer:
            optimizer_tensors, optimizer_state = _optimizer_tensors(model)
            tensors.update(optimizer_tensors)
            if optimizer_state:
                metadata["optimizer_state"] = json.dumps(optimizer_state)
    return atomic_write(path, _write_safetensors(tensors, metadata))


def save_weights(model, path: "str | os.PathLike") -> Path:
    """Save only the weights (see :meth:`load_weights`) to a ``.safetensors`` file."""
    check_file_name(path, f"{model.who}.save_weights")
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "cnnkit_version": __version__,
                "content": "weights", "layer_states": json.dumps(_layer_states(model))}
    return atomic_write(path, _write_safetensors(_weights_as_arrays(model), metadata))


def _read(path: "str | os.PathLike") -> tuple[dict, dict]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved model at {str(path)!r}")
    try:
        with safe_open(str(path), framework="numpy") as stream:
            metadata = stream.metadata() or {}
            tensors = {key: stream.get_tensor(key) for key in stream.keys()}
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{str(path)!r} is not a readable safetensors file ({error})") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} was not written by cnnkit (metadata format {metadata.get('format')!r})")
    _verify_checksums(tensors, metadata, path)
    return tensors, metadata


def _assign_weights(model, arrays: dict[str, np.ndarray], strict: bool, source: str) -> None:
    weights = named_weights(model)
    missing = [key for key in weights if key not in arrays]
    unexpected = [key for key in arrays if key not in weights]
    wrong = [f"{key} (model {weights[key].shape}, file {arrays[key].shape})"
             for key in weights if key in arrays and tuple(arrays[key].shape) != weights[key].shape]
    if wrong or (strict and (missing or unexpected)):
        problems = []
        if missing:
            problems.append(f"missing from the file: {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected in the file: {', '.join(unexpected)}")
        if wrong:
            problems.append(f"wrong shape: {', '.join(wrong)}")
        raise ValueError(f"cannot load weights from {source!r} into {model.who}: " + "; ".join(problems))
    for key, weight in weights.items():
        if key in arrays:
            weight.data = backend.to_device(arrays[key].astype(weight.dtype), weight.device)
            weight.grad = None


def load_weights(model, path: "str | os.PathLike", strict: bool = True) -> None:
    """Load weights saved by ``save_weights`` or ``save``; strict by default.

    Args:
        strict: every weight of the model must be in the file and nothing else;
            with ``strict=False`` missing and extra weights are skipped (shapes must
            still match), for partial loading such as transfer learning.
    """
    tensors, metadata = _read(path)
    if not model.built:
        raise ValueError(f"{model.who} must be built before load_weights (call it on data or build it first)")
    arrays = {k: v for k, v in tensors.items() if not k.startswith(_OPTIMIZER_PREFIX)}
    _assign_weights(model, arrays, strict, str(path))
    _restore_layer_states(model, metadata)


def _rebuild(entry: dict, module, what: str) -> Any:
    return deserialize(entry, what, vars(module))


def _rebuild_each(entries: Any, module, what: str) -> Any:
    """Rebuild one saved entry, a list of them, or a dict of either (per-output settings)."""
    if isinstance(entries, list):
        return [_rebuild_each(entry, module, what) for entry in entries]
    if "class_name" in entries or "function" in entries:
        return _rebuild(entries, module, what)
    return {key: _rebuild_each(value, module, what) for key, value in entries.items()}


def load_model(path: "str | os.PathLike", device: Any = None, compile: bool = True,  # noqa: A002 (Keras' name)
               restore_rng_state: bool = False, custom_objects: dict[str, Any] | None = None):
    """Rebuild a model saved with ``model.save``: architecture, weights, compile settings, optimizer state.

    Args:
        device: where to put the weights (the default device if omitted); a file
            saved on a GPU loads on a CPU-only machine.
        compile: restore the optimizer, loss and metrics so training can continue.
        restore_rng_state: also restore cnnkit's random generator as it was at saving,
            so that resumed training draws the same shuffles and dropout masks.
        custom_objects: the user's layers, losses, metrics, activations, initializers
            and regularizers the file names, by name: ``{"smooth_l1": smooth_l1}``.
    """
    tensors, metadata = _read(path)
    if "config" not in metadata:
        raise ValueError(f"{str(path)!r} holds only weights; build the model in code and call load_weights()")
    with custom_object_scope(custom_objects), backend.default_device(backend.as_device(device)):
        model = _model_from_config(metadata.get("class_name"), json.loads(metadata["config"]))
        if compile and "compile" in metadata:
            _compile_from(model, json.loads(metadata["compile"]))
    _load_training_state(model, tensors, metadata, str(path), restore_rng_state)
    return model


def _model_from_config(class_name: str | None, config: dict):
    from .model import Model
    from .sequential import Sequential
    return {"Sequential": Sequential}.get(class_name, Model).from_config(config)


def model_to_json(model, **dumps_options) -> str:
    """The architecture alone (no weights), as JSON; :func:`model_from_json` rebuilds it, untrained."""
    return json.dumps({"class_name": type(model).__name__, "config": model.get_config(),
                       "cnnkit_version": __version__}, **dumps_options)


def model_from_json(text: str, custom_objects: dict[str, Any] | None = None):
    """A fresh, uncompiled model of the architecture ``to_json`` wrote (new weights)."""
    try:
        document = json.loads(text)
        class_name, config = document["class_name"], document["config"]
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"model_from_json: expected the JSON that model.to_json() writes ({error!r})") from None
    with custom_object_scope(custom_objects):
        return _model_from_config(class_name, config)


def _compile_from(model, settings: dict) -> None:
    """Compile ``model`` as it was when saved (optimizer, losses, loss weights, metrics)."""
    model.compile(optimizer=_rebuild(settings["optimizer"], optimizers, "optimizer"),
                  loss=_rebuild_each(settings["loss"], losses, "loss"),
                  metrics=_rebuild_each(settings["metrics"], metrics_module, "metric"),
                  loss_weights=settings.get("loss_weights"))


def restore_training_state(model, path: "str | os.PathLike", restore_rng_state: bool = True) -> int:
    """Load a file written by ``model.save`` into ``model`` itself, to continue training it.

    Restores the weights, the optimizer's slots, step count and learning rate (when the
    model is compiled), cnnkit's random generator (by default) and ``model.epoch``.

    Returns:
        The number of epochs completed when the file was written.
    """
    tensors, metadata = _read(path)
    _load_training_state(model, tensors, metadata, str(path), restore_rng_state)
    return model.epoch


def _load_training_state(model, tensors: dict, metadata: dict, source: str, restore_rng_state: bool) -> None:
    _assign_weights(model, {k: v for k, v in tensors.items() if not k.startswith(_OPTIMIZER_PREFIX)},
                    strict=True, source=source)
    _restore_layer_states(model, metadata)
    if model.optimizer is not None and "optimizer_state" in metadata:
        _restore_optimizer(model, tensors, json.loads(metadata["optimizer_state"]))
    if restore_rng_state and "rng_state" in metadata:
        backend.set_rng_state(json.loads(metadata["rng_state"]))
    model.epoch = int(metadata.get("epoch", 0))


def _restore_optimizer(model, tensors: dict, state: dict) -> None:
    weights = named_weights(model)
    params = [weights[path] for path in state["params"]]
    slots = [{name: tensors[f"{_OPTIMIZER_PREFIX}{path}.{name}"] for name in names}
             for path, names in zip(state["params"], state["slot_names"])]
    model.optimizer.build(params)
    model.optimizer.load_state_dict({"class": type(model.optimizer).__name__,
                                     "config": model.optimizer.get_config(),
                                     "iterations": state["iterations"], "slots": slots})
