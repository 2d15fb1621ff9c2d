"""compile / fit / evaluate / predict: the Keras training loop, as functions bound to ``Model``.

One training step is ``loss = loss_fn(y, model(x, training=True)) + penalties``,
``loss.backward()``, ``optimizer.step(trainable weights)``. Data of any kind (NumPy
or CuPy arrays, tensors, a :class:`~cnnkit.data.DataLoader`) is cut into batches on
the model's device.

Everything about the data that can be checked is checked before the first step (NaN
in the arrays, the class indices over all of ``y``, one sample of the validation data
through the model and the loss). Inside the steps the host never waits for the GPU:
the loss sums, the metrics' batches and the steps' checks (see :mod:`cnnkit.checks`,
a finite loss among them) stay on the device and are read together at each progress
refresh, every :data:`DEVICE_REFRESH_STEPS` steps and at the epoch's end; a failed
check gates the optimizer update on the device, so a NaN loss never reaches the
weights. On the CPU a read costs nothing and the refresh comes after every step.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from .. import backend, checks, optimizers, regularizers
from .. import metrics as metrics_module
from ..autograd import Tensor, no_grad
from ..callbacks.base import CallbackList, History, ProgressBar, format_logs
from ..callbacks.monitoring import TerminateOnNaN
from ..data import DataLoader
from ..distributed import strategy as distribution
from .feed import (Batches, batch_of, combined_sample_weights, make_batches, sample_count, take,
                   validation_fields)
from .objective import Objective, takes_class_indices

_METRIC_REFRESH_SECONDS = 0.5
# On a GPU the host reads the losses, metrics and checks this often (and at every epoch's end).
DEVICE_REFRESH_STEPS = 32


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


def _train_batch(model, params: list, x: Any, y: Any, running: "_Running", guard: checks.StepChecks,
                 epoch: int, batch: int, strategy=distribution.LOCAL, sample_weight: Any = None) -> None:
    """One step on ``params`` (the trainable weights, gathered once per epoch); the loss includes their penalties.

    The loss goes to ``running`` (a non-finite one too, so that the epoch's logs show it);
    the step's checks (a finite loss, and those of the loss function) go to ``guard``, and
    on a GPU the update is applied only if they and every earlier step's passed.
    ``strategy`` averages the gradients over ranks in data-parallel training; the loss
    checked is the mean over ranks, so that every rank skips and stops at the same step.
    """
    with guard.step(epoch, batch, model.optimizer.iterations):
        loss, parts, y_pred = _compute_loss(model, x, y, training=True, sample_weight=sample_weight)
        penalty = regularizers.penalty(params)
        if penalty is not None:
            loss = loss + penalty
        global_loss, global_parts = strategy.global_losses(loss, parts)
        running.add(global_loss, global_parts, _batch_size(x), y, _detached(y_pred))
        value = global_loss.data  # the array only: the closure below must not hold the graph until the refresh
        checks.require(loss.xp.isfinite(value), lambda: f"the loss is {float(value)}", FloatingPointError)
    model.optimizer.zero_grad(params)
    loss.backward()
    strategy.reduce_gradients(params)
    model.optimizer.step(params, apply_if=guard.apply_flag())


def _detached(y_pred: Any) -> Any:
    return [p.detach() for p in y_pred] if isinstance(y_pred, list) else y_pred.detach()


class _Running:
    """An epoch's loss sums and the metrics' pending batches, on the device until a refresh reads them.

    With a data-parallel ``strategy`` the metrics are combined over ranks at each refresh,
    and so are the losses when ``local_losses`` (evaluation, where each rank has its shard;
    training adds the losses already averaged over ranks).
    """

    def __init__(self, objective: Objective, strategy=distribution.LOCAL, local_losses: bool = False):
        self.objective, self.strategy, self.local_losses = objective, strategy, local_losses
        self.totals: dict[str, Any] = {}  # log key -> sum over samples, a float64 device scalar
        self.samples = 0
        self.means: dict[str, float] = {}  # as of the last refresh
        self.pending: list[tuple] = []  # (y_true, y_pred) batches not yet given to the metrics
        objective.reset_metrics()

    def add(self, loss: Tensor, parts: dict, batch_size: int, y_true: Any, y_pred: Any) -> None:
        for key, value in {"loss": loss, **parts}.items():
            term = value.data.astype(np.float64) * batch_size
            self.totals[key] = term if key not in self.totals else self.totals[key] + term
        self.samples += batch_size
        if self.objective.metrics:
            self.pending.append((y_true, y_pred))

    def refresh(self, with_metrics: bool = True, prefix: str = "") -> dict:
        """Read the loss sums in one transfer and give the pending batches to the metrics."""
        if self.totals:
            keys = list(self.totals)
            xp = backend.get_array_module(self.totals["loss"])
            sums = backend.to_numpy(xp.stack([self.totals[key] for key in keys])).tolist()
            self.means = {key: total / self.samples for key, total in zip(keys, sums)}
            if self.local_losses:
                self.means = self._over_ranks(keys, sums)
        # Batch by batch, as the metrics were written for (a user's function sees one batch at a time).
        for y_true, y_pred in self.pending:
            self.objective.update_metrics(y_true, y_pred)
        self.pending = []
        logs = {prefix + key: mean for key, mean in self.means.items()}
        if with_metrics:
            logs.update(self.objective.metric_logs(prefix, self.strategy.combined(self.objective.output_metrics)))
        return logs

    def _over_ranks(self, keys: list, sums: list) -> dict:
        """The per-sample means over every rank's samples (this rank's alone without data parallelism)."""
        means = []
        for key, total in zip(keys, sums):
            mean = metrics_module.Mean(name=key)
            mean.total, mean.count = total, float(self.samples)
            means.append(mean)
        (means,) = self.strategy.combined([means])
        return {mean.name: float(mean.result()) for mean in means}


def _refresh_interval(model) -> int:
    return DEVICE_REFRESH_STEPS if model.device.is_cuda else 1


def _step_error(model, failure: checks.StepFailure, where: str) -> Exception:
    """The user's error for a failed step check, saying where, and for a bad loss what to try."""
    message = f"{where}, batch {failure.batch}: {failure.message}"
    if failure.error is FloatingPointError:
        message += (f"; that batch's update was not applied. Lower the learning rate (now "
                    f"{model.optimizer.learning_rate:g}), or clip the gradients (e.g. the optimizer's clipnorm=1.0)")
    return failure.error(message)


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
    _check_before_training(model, x, y, caller)
    if val_batches is not None:
        _check_before_training(model, val_x, val_y, f"{caller} (validation_data)")

    history = History()
    progress = ProgressBar(verbose) if verbose else None
    # History after the user's callbacks, so keys they add to the logs (such as "lr") are recorded.
    callbacks = strategy.callbacks([*(callbacks or []), history, *([progress] if progress else [])])
    callback_list = CallbackList(callbacks, model,
                                 {"epochs": epochs, "steps": len(train_batches), "batch_size": batch_size,
                                  "verbose": verbose, "data_placement": train_batches.placement,
                                  "log_keys": _log_keys(model, callbacks, val_batches is not None)})
    model.stop_training = False
    model.history = history
    model.initial_epoch = initial_epoch  # a callback may move it in on_train_begin (BackupAndRestore resumes)
    guard = checks.StepChecks()
    terminate_on_nan = next((c for c in callbacks if isinstance(c, TerminateOnNaN)), None)
    callback_list.on_train_begin()
    strategy.begin(model)  # after on_train_begin: a backup restored on rank 0 reaches every rank
    try:
        for epoch in range(model.initial_epoch, epochs):
            if model.stop_training:
                break
            callback_list.on_epoch_begin(epoch)
            logs = _run_epoch(model, epoch, train_batches, callback_list, guard, terminate_on_nan, strategy)
            if val_batches is not None and not model.stop_training:
                logs.update(_evaluate_batches(model, val_batches, prefix="val_", strategy=strategy,
                                              caller="fit (validation_data)"))
            model.epoch = epoch + 1
            callback_list.on_epoch_end(epoch, logs)
    finally:
        strategy.end()
    callback_list.on_train_end()
    return history


def _check_before_training(model, x: Any, y: Any, caller: str) -> None:
    """What can go wrong only later, checked now: one sample through the model and the loss, and all labels.

    Array data only; a DataLoader's batches are checked as they come.
    """
    if isinstance(x, DataLoader):
        return
    inputs, targets, _ = next(iter(make_batches(model, take(model, x, slice(0, 1), "x"),
                                                take(model, y, slice(0, 1), "y"), 1, False, caller,
                                                targets=True, scan_finite=False)))
    try:
        with no_grad():
            _, _, y_pred = _compute_loss(model, inputs, targets, training=False)
    except (ValueError, TypeError) as error:
        raise type(error)(f"{caller}: the first sample does not fit the model and its loss: {error}") from None
    predictions = y_pred if isinstance(y_pred, list) else [y_pred]
    label_sets = take(model, y, slice(None), "y")
    label_sets = label_sets if isinstance(label_sets, list) else [label_sets]
    names = model.objective.names or [None]
    for name, loss_fn, labels, prediction in zip(names, model.objective.losses, label_sets, predictions):
        if takes_class_indices(loss_fn):
            _check_class_indices(labels, prediction.shape[-1], "y" if name is None else f"y[{name!r}]", caller)


def _check_class_indices(labels: Any, classes: int, what: str, caller: str) -> None:
    """All class indices in [0, classes), read once for the whole array."""
    xp = backend.get_array_module(labels)
    if np.dtype(labels.dtype).kind not in "iu":
        return  # the loss names a wrong dtype itself, at the dry run
    bad = (labels < 0) | (labels >= classes)
    if bool(bad.any()):
        first = int(backend.to_numpy(xp.argwhere(bad.reshape(len(labels), -1))[0, 0]))
        raise ValueError(f"{caller}: {what} must hold class indices in [0, {classes}) for a model with {classes} "
                         f"output classes, got values from {int(labels.min())} to {int(labels.max())} (the first "
                         f"out of range at sample {first})")


def _log_keys(model, callbacks: list, validation: bool) -> list[str]:
    """The keys fit's epoch logs will have, for callbacks that check their settings before training."""
    keys = ["loss", *(f"{name}_loss" for name in model.objective.names or [])]
    keys += list(model.objective.metric_logs())
    if validation:
        keys += [f"val_{key}" for key in keys]
    for callback in callbacks:
        keys += list(getattr(callback, "adds_log_keys", ()))
    return keys


def _run_epoch(model, epoch: int, batches: Batches, callback_list: CallbackList, guard: checks.StepChecks,
               terminate_on_nan: TerminateOnNaN | None, strategy=distribution.LOCAL) -> dict:
    params = model.trainable_weights
    running = _Running(model.objective, strategy)
    every = _refresh_interval(model)
    last = len(batches) - 1
    metrics_shown = time.perf_counter()
    batch_logs: dict = {}
    try:
        for step, (x, y, weights) in enumerate(batches):
            callback_list.on_train_batch_begin(step)
            _train_batch(model, params, x, y, running, guard, epoch, step, strategy, weights)
            if (step + 1) % every == 0 or step == last:
                guard.read()
                now = time.perf_counter()
                # Every rank shows the metrics at the same refreshes, as combining them needs them all.
                show_metrics = strategy.agree(now - metrics_shown >= _METRIC_REFRESH_SECONDS)
                metrics_shown = now if show_metrics else metrics_shown
                batch_logs = running.refresh(show_metrics)
            callback_list.on_train_batch_end(step, batch_logs)
            if model.stop_training:
                break
        guard.read()
    except checks.StepFailure as failure:
        model.optimizer.iterations = failure.iterations  # the failed steps were not applied
        if failure.error is not FloatingPointError or terminate_on_nan is None:
            raise _step_error(model, failure, f"{model.who}.fit: epoch {epoch + 1}") from None
        terminate_on_nan.stop(failure.epoch, failure.batch, f"{failure.message}, so that batch's update was not "
                                                            f"applied (try a lower learning rate)")
    return running.refresh()


# ---------------------------------------------------------------- evaluate / predict

def _evaluate_batches(model, batches: Batches, prefix: str = "", strategy=distribution.LOCAL,
                      caller: str = "evaluate") -> dict:
    running = _Running(model.objective, strategy, local_losses=True)
    guard = checks.StepChecks()
    every = _refresh_interval(model)
    try:
        with no_grad():
            for step, (x, y, weights) in enumerate(batches):
                with guard.step(0, step, 0):
                    loss, parts, y_pred = _compute_loss(model, x, y, training=False, sample_weight=weights)
                running.add(loss, parts, _batch_size(x), y, y_pred)
                if (step + 1) % every == 0:
                    guard.read()
                    running.refresh(with_metrics=False)
        guard.read()
    except checks.StepFailure as failure:
        raise _step_error(model, failure, f"{model.who}.{caller}") from None
    return running.refresh(prefix=prefix)


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
                                          scan_finite=True, sample_weight=sample_weight), training=False)
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


def train_on_batch(model, x: Any, y: Any, sample_weight: Any = None, class_weight: dict | None = None,
                   return_dict: bool = False):
    """One optimizer step on exactly this batch; returns its loss (and metrics), as Keras does.

    ``sample_weight`` and ``class_weight`` weigh the samples' losses as in :func:`fit`.
    The arrays are used as given (moved to the model's device if needed, never gathered
    into a copy), and not scanned for NaN: a non-finite loss is caught instead, and only
    then are the inputs looked at, to say whether they or the training diverged.
    """
    _require_compiled(model, "train_on_batch")
    caller = f"{model.who}.train_on_batch"
    weights = combined_sample_weights(model, y, class_weight, sample_weight, caller)
    x_batch, y_batch, weights = batch_of(model, x, y, caller, sample_weight=weights)
    if not model.built:
        model(x_batch)
    running = _Running(model.objective)
    guard = checks.StepChecks()
    try:
        _train_batch(model, model.trainable_weights, x_batch, y_batch, running, guard, 0, 0, sample_weight=weights)
        guard.read()
    except checks.StepFailure as failure:
        model.optimizer.iterations = failure.iterations
        if failure.error is FloatingPointError:
            batch_of(model, x, y, caller, scan_finite=True)  # blames NaN in the data, if that is the cause
        raise _step_error(model, failure, caller) from None
    return _as_result(running.refresh(), return_dict)


def test_on_batch(model, x: Any, y: Any, sample_weight: Any = None, return_dict: bool = False):
    """Loss (and metrics) of exactly this batch in inference mode, without updating the weights."""
    _require_compiled(model, "test_on_batch")
    caller = f"{model.who}.test_on_batch"
    weights = combined_sample_weights(model, y, None, sample_weight, caller)
    batch = batch_of(model, x, y, caller, scan_finite=True, sample_weight=weights)
    return _as_result(_evaluate_batches(model, [batch], caller="test_on_batch"), return_dict)


def predict_on_batch(model, x: Any) -> np.ndarray:
    """Outputs for exactly this batch, as a NumPy array."""
    return predict(model, x, batch_size=max(sample_count(model, x), 1))
