"""compile / fit / evaluate / predict: the Keras training loop, as functions bound to ``Model``.

One training step is ``loss = loss_fn(y, model(x, training=True)) + penalties``,
``loss.backward()``, ``optimizer.step(trainable weights)``. Data of any kind (NumPy
or CuPy arrays, tensors, a :class:`~cnnkit.data.DataLoader`) is cut into batches on
the model's device.
"""
from __future__ import annotations

import time
from typing import Any, Iterable, Sequence

import numpy as np

from .. import backend, losses, optimizers, regularizers
from .. import metrics as metrics_module
from ..autograd import Tensor, no_grad
from ..callbacks.base import CallbackList, History, ProgressBar, format_logs
from ..data import DataLoader

_METRIC_REFRESH_SECONDS = 0.5


# ---------------------------------------------------------------- compile

def compile(model, optimizer: Any = "rmsprop", loss: Any = None, metrics: Sequence[Any] | None = None) -> None:
    """Choose how the model trains, by name or object.

    Args:
        optimizer: ``"adam"``, ``"sgd"``, ... or an :class:`~cnnkit.optimizers.Optimizer`.
        loss: ``"categorical_crossentropy"``, ``"mse"``, ... or a loss object or callable.
        metrics: names (``"accuracy"``, ``"f1"``, ...) or metric objects, reported by
            ``fit`` and ``evaluate``.
    """
    if loss is None:
        raise ValueError(f"{model.who}: compile() needs a loss, e.g. loss='sparse_categorical_crossentropy'; "
                         f"valid names are listed by cnnkit.losses.get")
    model.optimizer = optimizers.get(optimizer)
    model.loss = losses.get(loss)
    model.metrics = [metrics_module.get(m) for m in (metrics or [])]
    model.compiled = True


def _require_compiled(model, caller: str) -> None:
    if not model.compiled:
        raise RuntimeError(f"{model.who}: call compile(optimizer=..., loss=...) before {caller}()")


# ---------------------------------------------------------------- data

def _check_array(name: str, array: Any, floating: bool) -> None:
    """Catch the bad inputs that would otherwise fail deep inside a layer."""
    data = array.data if isinstance(array, Tensor) else array
    dtype = np.dtype(data.dtype)
    if floating and dtype.kind != "f":
        raise TypeError(f"{name} has dtype {dtype}; the model needs floating-point inputs "
                        f"(convert with .astype('float32'), and scale 8-bit images by 1/255)")
    if dtype.kind == "f":
        xp = backend.get_array_module(data)
        if not bool(xp.isfinite(data).all()):
            bad = int(backend.to_numpy(xp.argwhere(~xp.isfinite(data.reshape(len(data), -1)))[0, 0]))
            raise ValueError(f"{name} contains NaN or Inf (first at sample {bad}); clean the data before training")


def _length(array: Any) -> int:
    return int(array.shape[0])


def _make_loader(model, x: Any, y: Any, batch_size: int, shuffle: bool, caller: str, check: bool = True):
    """A DataLoader on the model's device for ``x`` (and ``y``), validating arrays first."""
    if isinstance(x, DataLoader):
        if y is not None:
            raise ValueError(f"{caller}: y must be None when x is a DataLoader (it yields (x, y) batches)")
        return x
    if x is None:
        raise ValueError(f"{caller}: x is required")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{caller}: batch_size must be a positive int, got {batch_size!r}")
    if check:
        _check_array(f"{caller}: x", x, floating=True)
    if y is None:
        return DataLoader((x,), batch_size=batch_size, shuffle=shuffle, device=model.device)
    if _length(x) != _length(y):
        raise ValueError(f"{caller}: x and y must have the same number of samples, got {_length(x)} and {_length(y)}")
    if check:
        _check_array(f"{caller}: y", y, floating=False)
    return DataLoader((x, y), batch_size=batch_size, shuffle=shuffle, device=model.device)


def _split_validation(x, y, fraction: float, caller: str):
    """Keras' validation_split: the last ``fraction`` of the samples, taken before shuffling."""
    if not 0 < fraction < 1:
        raise ValueError(f"{caller}: validation_split must be in (0, 1), got {fraction!r}")
    if isinstance(x, DataLoader):
        raise ValueError(f"{caller}: validation_split needs arrays; pass validation_data with a DataLoader")
    cut = int(_length(x) * (1 - fraction))
    if cut < 1 or cut == _length(x):
        raise ValueError(f"{caller}: validation_split={fraction} leaves no training or no validation samples "
                         f"out of {_length(x)}")
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def _ensure_built(model, loader: DataLoader) -> None:
    """Build the model from the shape of one sample, so callbacks see its weights before training."""
    if model.built:
        return
    first = next(iter(loader))
    model(first[0])


# ---------------------------------------------------------------- steps

def _compute_loss(model, x: Tensor, y: Tensor, training: bool):
    y_pred = model(x, training=training)
    loss = model.loss(y, y_pred)
    penalty = regularizers.penalty(model.trainable_weights) if training else None
    return (loss if penalty is None else loss + penalty), y_pred


def _train_batch(model, params: list, x: Tensor, y: Tensor):
    loss, y_pred = _compute_loss(model, x, y, training=True)
    model.optimizer.zero_grad(params)
    loss.backward()
    model.optimizer.step(params)
    return loss, y_pred


def _metric_logs(metrics: Iterable, prefix: str = "") -> dict:
    return {prefix + m.name: float(m.result()) for m in metrics if m.is_scalar}


def _reset(metrics: Iterable) -> None:
    for metric in metrics:
        metric.reset_state()


# ---------------------------------------------------------------- fit

def fit(model, x: Any = None, y: Any = None, batch_size: int = 32, epochs: int = 1, verbose: int = 1,
        callbacks: Sequence[Any] | None = None, validation_split: float = 0.0, validation_data: Any = None,
        shuffle: bool = True, initial_epoch: int = 0, device: Any = None) -> History:
    """Train for ``epochs`` passes over the data; returns a :class:`~cnnkit.callbacks.History`.

    Args:
        x, y: inputs and targets (NumPy/CuPy arrays or tensors), or a DataLoader as x.
        batch_size: samples per step.
        epochs: the index of the last epoch to run (training runs from ``initial_epoch``).
        verbose: 0 silent, 1 a progress bar (one line per epoch when not on a terminal),
            2 one line per epoch.
        callbacks: :class:`~cnnkit.callbacks.Callback` objects.
        validation_split: fraction of the samples (taken from the end, before shuffling)
            held out for validation.
        validation_data: ``(x_val, y_val)`` or a DataLoader, evaluated after every epoch.
        shuffle: reshuffle the training data every epoch (seeded by ``cnnkit.manual_seed``).
        initial_epoch: epoch to start from (to resume training).
        device: move the model there first (``"cuda"``, ``"cpu"``); batches follow the model.
    """
    caller = f"{model.who}.fit"
    _require_compiled(model, "fit")
    if device is not None:
        model.to(device)
    if not isinstance(epochs, int) or epochs < 0 or not isinstance(initial_epoch, int) or initial_epoch < 0:
        raise ValueError(f"{caller}: epochs and initial_epoch must be non-negative ints, "
                         f"got epochs={epochs!r}, initial_epoch={initial_epoch!r}")
    if validation_split:
        if validation_data is not None:
            raise ValueError(f"{caller}: give validation_split or validation_data, not both")
        (x, y), validation_data = _split_validation(x, y, validation_split, caller)
    train_loader = _make_loader(model, x, y, batch_size, shuffle, caller)
    val_loader = None
    if validation_data is not None:
        val_x, val_y = (validation_data, None) if isinstance(validation_data, DataLoader) else validation_data
        val_loader = _make_loader(model, val_x, val_y, batch_size, False, f"{caller} (validation_data)")
    _ensure_built(model, train_loader)

    history = History()
    progress = ProgressBar(verbose) if verbose else None
    # History after the user's callbacks, so keys they add to the logs (such as "lr") are recorded.
    callback_list = CallbackList([*(callbacks or []), history, *([progress] if progress else [])], model,
                                 {"epochs": epochs, "steps": len(train_loader), "batch_size": batch_size,
                                  "verbose": verbose})
    model.stop_training = False
    model.history = history
    model.initial_epoch = initial_epoch  # a callback may move it in on_train_begin (BackupAndRestore resumes)
    callback_list.on_train_begin()
    for epoch in range(model.initial_epoch, epochs):
        if model.stop_training:
            break
        callback_list.on_epoch_begin(epoch)
        logs = _run_epoch(model, train_loader, callback_list)
        if val_loader is not None and not model.stop_training:
            logs.update(_evaluate_loader(model, val_loader, prefix="val_"))
        model.epoch = epoch + 1
        callback_list.on_epoch_end(epoch, logs)
    callback_list.on_train_end()
    return history


def _run_epoch(model, loader: DataLoader, callback_list: CallbackList) -> dict:
    params = model.trainable_weights
    loss_mean = metrics_module.Mean(name="loss")
    _reset(model.metrics)
    refreshed = time.perf_counter()
    batch_logs: dict = {}
    for step, (x, y) in enumerate(loader):
        callback_list.on_train_batch_begin(step)
        loss, y_pred = _train_batch(model, params, x, y)
        loss_mean.update_state(loss.item(), sample_weight=len(x))
        for metric in model.metrics:
            metric.update_state(y, y_pred.detach())
        batch_logs = {"loss": float(loss_mean.result())}
        now = time.perf_counter()
        if now - refreshed >= _METRIC_REFRESH_SECONDS:
            refreshed = now
            batch_logs.update(_metric_logs(model.metrics))
        callback_list.on_train_batch_end(step, batch_logs)
        if model.stop_training:
            break
    return {"loss": float(loss_mean.result()), **_metric_logs(model.metrics)}


# ---------------------------------------------------------------- evaluate / predict

def _evaluate_loader(model, loader: DataLoader, prefix: str = "") -> dict:
    loss_mean = metrics_module.Mean(name="loss")
    _reset(model.metrics)
    with no_grad():
        for x, y in loader:
            loss, y_pred = _compute_loss(model, x, y, training=False)
            loss_mean.update_state(loss.item(), sample_weight=len(x))
            for metric in model.metrics:
                metric.update_state(y, y_pred)
    return {prefix + "loss": float(loss_mean.result()), **_metric_logs(model.metrics, prefix)}


def evaluate(model, x: Any = None, y: Any = None, batch_size: int = 32, verbose: int = 1,
             return_dict: bool = False):
    """Loss and metrics on ``(x, y)`` in inference mode.

    Returns:
        A dict with ``return_dict``; otherwise the loss alone when there are no metrics,
        else ``[loss, metric_1, ...]`` in ``compile`` order, as Keras does.
    """
    _require_compiled(model, "evaluate")
    loader = _make_loader(model, x, y, batch_size, False, f"{model.who}.evaluate")
    started = time.perf_counter()
    logs = _evaluate_loader(model, loader)
    if verbose:
        print(f"evaluate - {time.perf_counter() - started:.1f}s - {format_logs(logs)}", flush=True)
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def predict(model, x: Any, batch_size: int = 32, verbose: int = 0) -> np.ndarray:
    """Outputs for ``x`` in inference mode, batched, as a NumPy array (a list of them for several outputs)."""
    loader = _make_loader(model, x, None, batch_size, False, f"{model.who}.predict")
    outputs: list = []
    with no_grad():
        for (batch,) in loader:
            y = model(batch, training=False)
            outputs.append([t.numpy() for t in y] if isinstance(y, list) else y.numpy())
    if verbose:
        print(f"predict - {len(outputs)} batches", flush=True)
    if outputs and isinstance(outputs[0], list):
        return [np.concatenate(column) for column in zip(*outputs)]
    return np.concatenate(outputs)


def train_on_batch(model, x: Any, y: Any, return_dict: bool = False):
    """One optimizer step on exactly this batch; returns its loss (and metrics), as Keras does."""
    _require_compiled(model, "train_on_batch")
    batch = next(iter(_make_loader(model, x, y, max(_length(x), 1), False, f"{model.who}.train_on_batch")))
    x_batch, y_batch = batch
    if not model.built:
        model(x_batch)
    _reset(model.metrics)
    loss, y_pred = _train_batch(model, model.trainable_weights, x_batch, y_batch)
    for metric in model.metrics:
        metric.update_state(y_batch, y_pred.detach())
    return _batch_result(model, loss, return_dict)


def test_on_batch(model, x: Any, y: Any, return_dict: bool = False):
    """Loss (and metrics) of exactly this batch in inference mode, without updating the weights."""
    _require_compiled(model, "test_on_batch")
    x_batch, y_batch = next(iter(_make_loader(model, x, y, max(_length(x), 1), False,
                                              f"{model.who}.test_on_batch")))
    _reset(model.metrics)
    with no_grad():
        loss, y_pred = _compute_loss(model, x_batch, y_batch, training=False)
        for metric in model.metrics:
            metric.update_state(y_batch, y_pred)
    return _batch_result(model, loss, return_dict)


def _batch_result(model, loss: Tensor, return_dict: bool):
    logs = {"loss": float(loss.item()), **_metric_logs(model.metrics)}
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def predict_on_batch(model, x: Any) -> np.ndarray:
    """Outputs for exactly this batch, as a NumPy array."""
    return predict(model, x, batch_size=max(_length(x), 1))
