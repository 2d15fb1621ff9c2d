"""compile / fit / evaluate / predict: the Keras training loop, as functions bound to ``Model``.

One training step is ``loss = loss_fn(y, model(x, training=True)) + penalties``,
``loss.backward()``, ``optimizer.step(trainable weights)``. Data of any kind (NumPy
or CuPy arrays, tensors, a :class:`~cnnkit.data.DataLoader`) is cut into batches on
the model's device.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from .. import optimizers, regularizers
from .. import metrics as metrics_module
from ..autograd import Tensor, no_grad
from ..callbacks.base import CallbackList, History, ProgressBar, format_logs
from ..data import DataLoader
from ..distributed import strategy as distribution
from .feed import Batches, combined_sample_weights, make_batches, sample_count, take, validation_fields
from .objective import Objective

_METRIC_REFRESH_SECONDS = 0.5


# ---------------------------------------------------------------- compile

def compile(model, optimizer: Any = "rmsprop", loss: Any = None, metrics: Sequence[Any] | dict | None = None,
            loss_weights: Sequence[float] | dict | None = None) -> None:
    """Choose how the model trains, by name or object.

    Args:
        optimizer: ``"adam"``, ``"sgd"``, ... or an :class:`~cnnkit.optimizers.Optimizer`.
        loss: ``"categorical_crossentropy"``, ``"mse"``, ... or a loss object or callable;
            for a model with several outputs, one loss for all, a list in output order
            or a dict keyed by output name.
        metrics: names (``"accuracy"``, ``"f1"``, ...) or metric objects, reported by
            ``fit`` and ``evaluate``; with several outputs a flat list applies to each
            output, a list of lists or a dict gives each output its own.
        loss_weights: factors of the outputs' losses in the total (several outputs only).
    """
    if loss is None:
        raise ValueError(f"{model.who}: compile() needs a loss, e.g. loss='sparse_categorical_crossentropy'; "
                         f"valid names are listed by cnnkit.losses.get")
    objective = Objective(model, loss, loss_weights, metrics)
    model.optimizer = optimizers.get(optimizer)
    model.objective = objective
    model.loss = objective.loss
    model.metrics = objective.metrics
    model.compiled = True


def _require_compiled(model, caller: str) -> None:
    if not model.compiled:
        raise RuntimeError(f"{model.who}: call compile(optimizer=..., loss=...) before {caller}()")


def _split_validation(model, x, y, sample_weight, fraction: float, caller: str):
    """Keras' validation_split: the last ``fraction`` of the samples (and their weights), taken before shuffling."""
    if not 0 < fraction < 1:
        raise ValueError(f"{caller}: validation_split must be in (0, 1), got {fraction!r}")
    if isinstance(x, DataLoader):
        raise ValueError(f"{caller}: validation_split needs arrays; pass validation_data with a DataLoader")
    if x is None or y is None:
        raise ValueError(f"{caller}: validation_split needs both x and y")
    total = sample_count(model, x)
    cut = int(total * (1 - fraction))
    if cut < 1 or cut == total:
        raise ValueError(f"{caller}: validation_split={fraction} leaves no training or no validation samples "
                         f"out of {total}")
    train, held_out = slice(0, cut), slice(cut, None)
    weights = (None, None) if sample_weight is None else (sample_weight[train], sample_weight[held_out])
    return ((take(model, x, train, "x"), take(model, y, train, "y"), weights[0]),
            (take(model, x, held_out, "x"), take(model, y, held_out, "y"), weights[1]))


def _ensure_built(model, batches: Batches) -> None:
    """Build the model from the shape of one sample, so callbacks see its weights before training."""
    if not model.built:
        model(batches.first_inputs())


# ---------------------------------------------------------------- steps

def _compute_loss(model, x: Any, y: Any, training: bool, sample_weight: Any = None):
    """The total loss, each output's loss, and the predictions."""
    y_pred = model(x, training=training)
    loss, parts = model.objective.compute(y, y_pred, model.who, sample_weight)
    return loss, parts, y_pred


def _train_batch(model, params: list, x: Any, y: Any, strategy=distribution.LOCAL, sample_weight: Any = None):
    """One step on ``params`` (the trainable weights, gathered once per epoch); the loss includes their penalties.

    ``strategy`` averages the gradients over ranks in data-parallel training.
    """
    loss, parts, y_pred = _compute_loss(model, x, y, training=True, sample_weight=sample_weight)
    penalty = regularizers.penalty(params)
    if penalty is not None:
        loss = loss + penalty
    model.optimizer.zero_grad(params)
    loss.backward()
    strategy.reduce_gradients(params)
    model.optimizer.step(params)
    return loss, parts, y_pred


def _detached(y_pred: Any) -> Any:
    return [p.detach() for p in y_pred] if isinstance(y_pred, list) else y_pred.detach()


class _LossMeans:
    """Per-sample means over an epoch of the total loss and of each output's loss."""

    def __init__(self):
        self.means: dict[str, metrics_module.Mean] = {}

    def update(self, loss: Tensor, parts: dict, batch_size: int) -> None:
        for key, value in {"loss": loss, **parts}.items():
            self.means.setdefault(key, metrics_module.Mean(name=key)).update_state(value.item(),
                                                                                    sample_weight=batch_size)

    def logs(self, prefix: str = "", strategy=distribution.LOCAL) -> dict:
        """The means; with a data-parallel ``strategy``, over the samples of every rank."""
        (means,) = strategy.combined([list(self.means.values())])
        return {prefix + mean.name: float(mean.result()) for mean in means}


def _batch_size(x: Any) -> int:
    return len(x[0]) if isinstance(x, list) else len(x)


# ---------------------------------------------------------------- fit

def fit(model, x: Any = None, y: Any = None, batch_size: int = 32, epochs: int = 1, verbose: int = 1,
        callbacks: Sequence[Any] | None = None, validation_split: float = 0.0, validation_data: Any = None,
        shuffle: bool = True, initial_epoch: int = 0, device: Any = None, distributed: Any = False,
        class_weight: dict | None = None, sample_weight: Any = None) -> History:
    """Train for ``epochs`` passes over the data; returns a :class:`~cnnkit.callbacks.History`.

    Args:
        x, y: inputs and targets (NumPy/CuPy arrays or tensors; lists or dicts by name for
            models with several inputs or outputs), or a DataLoader as x.
        batch_size: samples per step.
        epochs: the index of the last epoch to run (training runs from ``initial_epoch``).
        verbose: 0 silent, 1 a progress bar (one line per epoch when not on a terminal),
            2 one line per epoch.
        callbacks: :class:`~cnnkit.callbacks.Callback` objects.
        validation_split: fraction of the samples (taken from the end, before shuffling)
            held out for validation.
        validation_data: ``(x_val, y_val)``, ``(x_val, y_val, val_sample_weight)`` or a
            DataLoader, evaluated after every epoch.
        shuffle: reshuffle the training data every epoch (seeded by ``cnnkit.manual_seed``).
        initial_epoch: epoch to start from (to resume training).
        device: move the model there first (``"cuda"``, ``"cpu"``); batches follow the model.
        distributed: ``True`` (or a :class:`cnnkit.distributed.DataParallel`) trains
            data-parallel on every rank of an ``mpirun`` job; ``batch_size`` is then per rank.
        class_weight: ``{class index: weight}`` for each class in ``y`` (integer labels or
            one-hot rows): each sample's loss is multiplied by its class's weight.
        sample_weight: (N,) weights of the samples' losses (times their class weights);
            the loss is still divided by the batch size, and metrics stay unweighted, as in Keras.
    """
    caller = f"{model.who}.fit"
    _require_compiled(model, "fit")
    strategy = distribution.resolve(distributed)
    strategy.place(model, device)
    if not isinstance(epochs, int) or epochs < 0 or not isinstance(initial_epoch, int) or initial_epoch < 0:
        raise ValueError(f"{caller}: epochs and initial_epoch must be non-negative ints, "
                         f"got epochs={epochs!r}, initial_epoch={initial_epoch!r}")
    sample_weight = combined_sample_weights(model, y, class_weight, sample_weight, caller)
    if validation_split:
        if validation_data is not None:
            raise ValueError(f"{caller}: give validation_split or validation_data, not both")
        (x, y, sample_weight), validation_data = _split_validation(model, x, y, sample_weight, validation_split,
                                                                   caller)
    train_batches = strategy.shard(make_batches(model, x, y, batch_size, shuffle, caller, targets=True,
                                                scan_finite=True, sample_weight=sample_weight), training=True)
    val_batches = None
    if validation_data is not None:
        val_x, val_y, val_weights = validation_fields(validation_data, caller)
        val_batches = strategy.shard(make_batches(model, val_x, val_y, batch_size, False,
                                                  f"{caller} (validation_data)", targets=True, scan_finite=True,
                                                  sample_weight=val_weights),
                                     training=False)
    _ensure_built(model, train_batches)

    history = History()
    progress = ProgressBar(verbose) if verbose else None
    # History after the user's callbacks, so keys they add to the logs (such as "lr") are recorded.
    callback_list = CallbackList(strategy.callbacks([*(callbacks or []), history, *([progress] if progress else [])]),
                                 model,
                                 {"epochs": epochs, "steps": len(train_batches), "batch_size": batch_size,
                                  "verbose": verbose, "data_placement": train_batches.placement})
    model.stop_training = False
    model.history = history
    model.initial_epoch = initial_epoch  # a callback may move it in on_train_begin (BackupAndRestore resumes)
    callback_list.on_train_begin()
    strategy.begin(model)  # after on_train_begin: a backup restored on rank 0 reaches every rank
    try:
        for epoch in range(model.initial_epoch, epochs):
            if model.stop_training:
                break
            callback_list.on_epoch_begin(epoch)
            logs = _run_epoch(model, train_batches, callback_list, strategy)
            if val_batches is not None and not model.stop_training:
                logs.update(_evaluate_batches(model, val_batches, prefix="val_", strategy=strategy))
            model.epoch = epoch + 1
            callback_list.on_epoch_end(epoch, logs)
    finally:
        strategy.end()
    callback_list.on_train_end()
    return history


def _metric_logs(objective: Objective, strategy, prefix: str = "") -> dict:
    return objective.metric_logs(prefix, strategy.combined(objective.output_metrics))


def _run_epoch(model, batches: Batches, callback_list: CallbackList, strategy=distribution.LOCAL) -> dict:
    params = model.trainable_weights
    objective = model.objective
    loss_means = _LossMeans()
    objective.reset_metrics()
    refreshed = time.perf_counter()
    for step, (x, y, weights) in enumerate(batches):
        callback_list.on_train_batch_begin(step)
        loss, parts, y_pred = _train_batch(model, params, x, y, strategy, weights)
        loss, parts = strategy.global_losses(loss, parts)
        loss_means.update(loss, parts, _batch_size(x))
        objective.update_metrics(y, _detached(y_pred))
        batch_logs = loss_means.logs()
        now = time.perf_counter()
        if strategy.agree(now - refreshed >= _METRIC_REFRESH_SECONDS):  # every rank reports at the same steps
            refreshed = now
            batch_logs.update(_metric_logs(objective, strategy))
        callback_list.on_train_batch_end(step, batch_logs)
        if model.stop_training:
            break
    return {**loss_means.logs(), **_metric_logs(objective, strategy)}


# ---------------------------------------------------------------- evaluate / predict

def _evaluate_batches(model, batches: Batches, prefix: str = "", strategy=distribution.LOCAL) -> dict:
    loss_means = _LossMeans()
    model.objective.reset_metrics()
    with no_grad():
        for x, y, weights in batches:
            loss, parts, y_pred = _compute_loss(model, x, y, training=False, sample_weight=weights)
            loss_means.update(loss, parts, _batch_size(x))
            model.objective.update_metrics(y, y_pred)
    return {**loss_means.logs(prefix, strategy), **_metric_logs(model.objective, strategy, prefix)}


def _as_result(logs: dict, return_dict: bool):
    """Keras' return value: the dict, or the loss alone, or ``[loss, ...]`` in log order."""
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def evaluate(model, x: Any = None, y: Any = None, batch_size: int = 32, verbose: int = 1,
             return_dict: bool = False, distributed: Any = False, sample_weight: Any = None):
    """Loss and metrics on ``(x, y)`` in inference mode; ``sample_weight`` (N,) weighs the loss as in ``fit``.

    With ``distributed`` (as in :func:`fit`), each rank evaluates its shard and every
    rank returns the figures over all the samples.

    Returns:
        A dict with ``return_dict``; otherwise the loss alone when there are no metrics,
        else ``[loss, (output losses), metric_1, ...]`` in ``compile`` order, as Keras does.
    """
    _require_compiled(model, "evaluate")
    strategy = distribution.resolve(distributed)
    batches = strategy.shard(make_batches(model, x, y, batch_size, False, f"{model.who}.evaluate", targets=True,
                                          scan_finite=False, sample_weight=sample_weight), training=False)
    started = time.perf_counter()
    logs = _evaluate_batches(model, batches, strategy=strategy)
    if verbose and strategy.is_main_process:
        print(f"evaluate - {time.perf_counter() - started:.1f}s - {format_logs(logs)}", flush=True)
    return _as_result(logs, return_dict)


def predict(model, x: Any, batch_size: int = 32, verbose: int = 0, distributed: Any = False) -> np.ndarray:
    """Outputs for ``x`` in inference mode, batched, as a NumPy array (a list of them for several outputs).

    ``x`` may also be a DataLoader; targets it yields are ignored. With ``distributed``
    (as in :func:`fit`), each rank predicts its shard and every rank returns all the outputs.
    """
    strategy = distribution.resolve(distributed)
    batches = strategy.shard(make_batches(model, x, None, batch_size, False, f"{model.who}.predict",
                                          targets=False, scan_finite=False), training=False)
    outputs: list = []
    with no_grad():
        for inputs, _, _ in batches:
            y = model(inputs, training=False)
            outputs.append([t.numpy() for t in y] if isinstance(y, list) else y.numpy())
    if verbose and strategy.is_main_process:
        print(f"predict - {len(outputs)} batches", flush=True)
    if not outputs:
        raise ValueError(f"{model.who}.predict: the data yielded no batches")
    if isinstance(outputs[0], list):
        return strategy.gather_predictions([np.concatenate(column) for column in zip(*outputs)], batches)
    return strategy.gather_predictions(np.concatenate(outputs), batches)


def _whole_batch(model, x: Any, y: Any, caller: str, sample_weight: Any = None,
                 class_weight: dict | None = None) -> tuple:
    """``(x, y, sample weights or None)`` as one batch of tensors on the model's device."""
    caller = f"{model.who}.{caller}"
    sample_weight = combined_sample_weights(model, y, class_weight, sample_weight, caller)
    batches = make_batches(model, x, y, max(sample_count(model, x), 1), False, caller, targets=True,
                           scan_finite=True, sample_weight=sample_weight)
    return next(iter(batches))


def train_on_batch(model, x: Any, y: Any, sample_weight: Any = None, class_weight: dict | None = None,
                   return_dict: bool = False):
    """One optimizer step on exactly this batch; returns its loss (and metrics), as Keras does.

    ``sample_weight`` and ``class_weight`` weigh the samples' losses as in :func:`fit`.
    """
    _require_compiled(model, "train_on_batch")
    x_batch, y_batch, weights = _whole_batch(model, x, y, "train_on_batch", sample_weight, class_weight)
    if not model.built:
        model(x_batch)
    model.objective.reset_metrics()
    loss, parts, y_pred = _train_batch(model, model.trainable_weights, x_batch, y_batch, sample_weight=weights)
    model.objective.update_metrics(y_batch, _detached(y_pred))
    return _batch_result(model, loss, parts, return_dict)


def test_on_batch(model, x: Any, y: Any, sample_weight: Any = None, return_dict: bool = False):
    """Loss (and metrics) of exactly this batch in inference mode, without updating the weights."""
    _require_compiled(model, "test_on_batch")
    x_batch, y_batch, weights = _whole_batch(model, x, y, "test_on_batch", sample_weight)
    model.objective.reset_metrics()
    with no_grad():
        loss, parts, y_pred = _compute_loss(model, x_batch, y_batch, training=False, sample_weight=weights)
        model.objective.update_metrics(y_batch, y_pred)
    return _batch_result(model, loss, parts, return_dict)


def _batch_result(model, loss: Tensor, parts: dict, return_dict: bool):
    logs = {"loss": float(loss.item()), **{key: float(value.item()) for key, value in parts.items()},
            **model.objective.metric_logs()}
    return _as_result(logs, return_dict)


def predict_on_batch(model, x: Any) -> np.ndarray:
    """Outputs for exactly this batch, as a NumPy array."""
    return predict(model, x, batch_size=max(sample_count(model, x), 1))
