"""Weights in torchvision's layout: import from .safetensors or .pth state dicts, export to .safetensors.

The zoo's layers carry the names of torchvision's modules, so the state-dict key of a
weight is ``<layer name>.<torch name>``:

    ======================  ==================  ===========================
    cnnkit weight           torchvision name    conversion
    ======================  ==================  ===========================
    Conv2D kernel           weight              none: both (F, C/groups, kh, kw)
    DepthwiseConv2D kernel  weight              none: both (C·m, 1, kh, kw)
    Dense kernel            weight              transposed: (in, out) ↔ (out, in)
    bias                    bias                none
    BatchNorm gamma, beta   weight, bias        none
    BatchNorm moving_mean   running_mean        none
    BatchNorm moving_var    running_var         none (both normalise with it as stored)
    ======================  ==================  ===========================

PyTorch's batch-norm ``eps`` and ``momentum`` are not in a state dict: the zoo builds
its batch-norm layers with PyTorch's ε = 1e-5 and momentum 0.1 (0.9 in Keras' sense),
and ``num_batches_tracked`` is read past on import and written as 0 on export (it only
matters to PyTorch's cumulative-average mode, momentum=None).

Nothing is downloaded: give the path of a file, for instance one that
``torchvision.models.resnet18(weights="IMAGENET1K_V1")`` has put in PyTorch's cache,
``~/.cache/torch/hub/checkpoints/`` (or ``$TORCH_HOME/hub/checkpoints``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from safetensors.numpy import load_file, save_file

from .. import backend
from ..layers import BatchNormalization, Dense
from ..models.model import Model
from ..models.saving import atomic_write

_TORCH_NAMES = {
    "kernel": "weight", "depthwise_kernel": "weight", "bias": "bias",
    "gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var",
}
_BATCH_COUNTER = "num_batches_tracked"
# Classifier modules that a model built with include_top=False leaves out; their tensors in a file are skipped.
_HEAD_MODULES = ("fc", "classifier")


def torchvision_state_dict(model: Model) -> dict[str, np.ndarray]:
    """The model's weights as a torchvision state dict of NumPy arrays (host copies, torchvision's shapes)."""
    state = {}
    for key, (layer, weight) in _torch_keys(model).items():
        value = backend.to_numpy(weight.data)
        state[key] = np.ascontiguousarray(value.T if _transposed(layer, weight) else value)
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            state[f"{layer.name}.{_BATCH_COUNTER}"] = np.zeros((), np.int64)
    return state


def save_torchvision_weights(model: Model, path: "str | os.PathLike") -> Path:
    """Write the model's weights to a torchvision-layout .safetensors file (loadable with
    ``torchvision_model.load_state_dict(safetensors.torch.load_file(path))``); written atomically.
    """
    state = torchvision_state_dict(model)
    return atomic_write(path, lambda temporary: save_file(state, temporary, metadata={"format": "pt"}))


def load_torchvision_weights(model: Model, source: "str | os.PathLike | Mapping[str, Any]") -> Model:
    """Load a torchvision state dict into a zoo model, checking every name and shape.

    Args:
        model: a model from :mod:`cnnkit.applications` (layers named after torchvision's modules).
        source: a .safetensors file, a .pth / .pt file (needs PyTorch; read with
            ``torch.load(weights_only=True)``, which runs no code from the file), or a
            mapping of names to arrays or CPU tensors.

    Returns:
        ``model``, its weights replaced (on its device, in its dtype).

    Raises:
        KeyError: a tensor the model needs is missing, or the file has tensors the model
            does not (a model without its top skips the file's classifier).
        ValueError: a tensor has the wrong shape; the message names it.
    """
    state = _read_state_dict(source) if not isinstance(source, Mapping) else dict(source)
    expected = _torch_keys(model)
    missing = [key for key in expected if key not in state]
    if missing:
        raise KeyError(f"load_torchvision_weights: {len(missing)} tensor(s) that {model.who} needs are missing from "
                       f"{_describe(source)}: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    layer_names = {layer.name for layer in model.layers}
    unexpected = [key for key in state if key not in expected and not _ignorable(key, layer_names)]
    if unexpected:
        raise KeyError(f"load_torchvision_weights: {_describe(source)} has tensor(s) that {model.who} has no place "
                       f"for (is it another architecture?): {', '.join(unexpected[:8])}"
                       f"{' ...' if len(unexpected) > 8 else ''}")
    converted = []
    for key, (layer, weight) in expected.items():
        value = np.asarray(state[key])
        torch_shape = tuple(reversed(weight.shape)) if _transposed(layer, weight) else tuple(weight.shape)
        if value.shape != torch_shape:
            raise ValueError(f"load_torchvision_weights: tensor {key!r} has shape {value.shape} in "
                             f"{_describe(source)}, but {layer.who} needs {torch_shape}")
        converted.append((weight, value.T if _transposed(layer, weight) else value))
    for weight, value in converted:  # only once every tensor has passed, so a failed load changes nothing
        weight.data = backend.to_device(np.ascontiguousarray(value, dtype=weight.dtype), weight.device)
    for layer in model.walk():  # as set_weights: imported batch-norm statistics stand for many batches already
        layer.set_state(None)
    return model


def _torch_keys(model: Model) -> dict[str, tuple]:
    """torchvision key -> (layer, weight) for every weight of the model."""
    keys = {}
    for layer in model.layers:
        for short_name, weight in layer._params.items():
            keys[f"{layer.name}.{_TORCH_NAMES.get(short_name, short_name)}"] = (layer, weight)
    return keys


def _transposed(layer: Any, weight: Any) -> bool:
    return isinstance(layer, Dense) and weight is layer.kernel


def _ignorable(key: str, layer_names: set) -> bool:
    """Batch counters, and a classifier's tensors when the model was built without its top."""
    module = key.rsplit(".", 1)[0]
    if key.endswith("." + _BATCH_COUNTER):
        return True
    return module.split(".")[0] in _HEAD_MODULES and module not in layer_names


def _read_state_dict(path: "str | os.PathLike") -> dict[str, np.ndarray]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"load_torchvision_weights: no file {str(path)!r} (cnnkit downloads nothing; "
                                f"PyTorch keeps the files it downloads in ~/.cache/torch/hub/checkpoints/)")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    if path.suffix in (".pth", ".pt", ".bin"):
        return _read_torch_file(path)
    raise ValueError(f"load_torchvision_weights: {str(path)!r} should be a .safetensors, .pth or .pt file")


def _read_torch_file(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise ImportError(f"load_torchvision_weights: reading {path.name} needs PyTorch (pip install torch), which "
                          f"cnnkit does not require; or convert it once where PyTorch is installed: "
                          f"safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')"
                          ) from None
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(f"load_torchvision_weights: {path.name} does not hold a state dict (a mapping of names "
                         f"to tensors), got {type(state).__name__}")
    return {key: value.detach().float().numpy() if value.is_floating_point() else value.numpy()
            for key, value in state.items()}


def _describe(source: Any) -> str:
    return "the state dict" if isinstance(source, Mapping) else f"{str(source)!r}"
