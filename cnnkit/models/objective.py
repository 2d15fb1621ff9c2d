"""What ``compile`` asks a model to minimise and report, matched to the model's outputs.

A model with one output has one loss and a list of metrics. A functional model with
several outputs takes, as Keras does, one loss for all outputs, a list (in output
order) or a dict keyed by output name, with optional ``loss_weights``; the total loss
is ``sum_i w_i * loss_i(y_i, y_pred_i)``. Its metrics are a list applied to every
output, a list of lists, or a dict; each output gets its own metric objects, logged as
``<output name>_<metric name>``, and each output's loss is logged as ``<output name>_loss``.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

from .. import custom_objects, losses
from .. import metrics as metrics_module
from ..autograd import Tensor


def output_names(model) -> list[str] | None:
    """The names of a functional model's outputs (their layers' names), or None for one output."""
    graph = getattr(model, "_graph", None)
    if graph is None or graph.single_output:
        return None
    names = [tensor.node.layer.name for tensor in graph.outputs]
    # The same layer can feed two outputs; number them so that every log key is unique.
    return [name if names.count(name) == 1 else f"{name}_{i}" for i, name in enumerate(names)]


def takes_class_indices(loss_fn: Any) -> bool:
    """Whether a compiled loss expects integer class indices as targets (checked over all of y before training)."""
    return (isinstance(loss_fn, losses.SparseCategoricalCrossentropy)
            or loss_fn is losses.sparse_categorical_crossentropy)


def _per_output(spec: Any, names: list[str], argument: str, who: str, resolve: Callable, default: Any) -> list:
    """Match a compile() argument to the outputs: one value for all, a list in output order, or a dict by name."""
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ValueError(f"{who}: compile({argument}=...) names unknown outputs {unknown}; "
                             f"the outputs are {names}")
        return [resolve(spec[name]) if name in spec else default() for name in names]
    if isinstance(spec, (list, tuple)):
        if len(spec) != len(names):
            raise ValueError(f"{who}: compile({argument}=...) has {len(spec)} entries for {len(names)} outputs "
                             f"{names}; give one per output, a dict by output name, or a single value for all")
        return [resolve(entry) for entry in spec]
    return [resolve(spec) for _ in names]


def _only_entry(spec: Any, argument: str, who: str) -> Any:
    """For a model with one output, per-output settings (a dict, or a list of them) may hold one entry."""
    per_output = isinstance(spec, dict) or (isinstance(spec, (list, tuple)) and (
        argument == "loss" or (spec and all(isinstance(entry, (list, tuple)) for entry in spec))))
    if not per_output:
        return spec
    entries = list(spec.values()) if isinstance(spec, dict) else list(spec)
    if len(entries) != 1:
        raise ValueError(f"{who}: compile({argument}=...) has {len(entries)} per-output entries but the model "
                         f"has one output")
    return entries[0]


def _fresh_metric(identifier: Any) -> metrics_module.Metric:
    """A metric object of its own, so that outputs never share one metric's state."""
    if isinstance(identifier, metrics_module.Metric):
        metric = copy.deepcopy(identifier)
        metric.reset_state()
        return metric
    return metrics_module.get(identifier)


def _loss_weight(value: Any, who: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{who}: compile(loss_weights=...) entries must be numbers, got {value!r}")
    return float(value)


class Objective:
    """The compiled loss and metrics of a model.

    Args:
        model: the model being compiled (its outputs decide single or per-output mode).
        loss: a loss identifier (see :func:`cnnkit.losses.get`), or per output a list or dict;
            ``loss`` is then the loss object, or with several outputs a dict of them by output name.
        loss_weights: per output a list or dict of factors (1 for outputs left out).
        metrics: metric identifiers; per output a list of lists or a dict.
    """

    def __init__(self, model, loss: Any, loss_weights: Any, metrics: Sequence[Any] | dict | None):
        who = model.who
        self.names = output_names(model)
        if self.names is None:
            loss, metrics = _only_entry(loss, "loss", who), _only_entry(metrics, "metrics", who)
            if loss_weights is not None:
                raise ValueError(f"{who}: loss_weights need a functional model with several outputs; "
                                 f"this model has one output")
            self.loss = losses.get(loss)
            self.losses = [self.loss]
            self.weights = [1.0]
            # One output's metric objects are used as given, so the caller can read them after fit.
            self.output_metrics = [[metrics_module.get(m) for m in _entries(metrics)]]
            return
        self.losses = _per_output(loss, self.names, "loss", who, losses.get, default=lambda: None)
        missing = [name for name, fn in zip(self.names, self.losses) if fn is None]
        if missing:
            raise ValueError(f"{who}: compile(loss={{...}}) gives no loss for outputs {missing}")
        self.loss = dict(zip(self.names, self.losses))
        self.weights = ([1.0] * len(self.names) if loss_weights is None else
                        _per_output(loss_weights, self.names, "loss_weights", who,
                                    lambda w: _loss_weight(w, who), default=lambda: 1.0))
        self.output_metrics = _per_output(_metrics_per_output(metrics, len(self.names)), self.names, "metrics",
                                          who, _metric_list, default=list)

    @property
    def metrics(self) -> list:
        """Every metric object, output by output."""
        return [metric for group in self.output_metrics for metric in group]

    def compute(self, y_true: Any, y_pred: Any, who: str, sample_weight: Any = None) -> tuple[Tensor, dict]:
        """The total loss, and each output's loss by log key (empty for a single output).

        ``sample_weight`` (N,) weighs every output's per-sample losses (the metrics stay
        unweighted, as Keras' ``metrics``).
        """
        if self.names is None:
            if isinstance(y_pred, (list, tuple)):
                raise ValueError(f"{who}: the model returned {len(y_pred)} outputs but was compiled for one; "
                                 f"build it as a functional Model(inputs, [outputs]) to train several outputs")
            return _loss_value(self.loss, y_true, y_pred, sample_weight, who), {}
        parts = {}
        total = None
        for name, loss_fn, weight, target, prediction in zip(self.names, self.losses, self.weights,
                                                             y_true, y_pred):
            value = _loss_value(loss_fn, target, prediction, sample_weight, who)
            parts[f"{name}_loss"] = value
            term = value if weight == 1.0 else value * weight
            total = term if total is None else total + term
        return total, parts

    def update_metrics(self, y_true: Any, y_pred: Any) -> None:
        if self.names is None:
            y_true, y_pred = [y_true], [y_pred]
        for group, target, prediction in zip(self.output_metrics, y_true, y_pred):
            for metric in group:
                metric.update_state(target, prediction)

    def metric_logs(self, prefix: str = "", output_metrics: list | None = None) -> dict:
        """The scalar metrics' results, keyed as the training loop logs them.

        ``output_metrics`` replaces :attr:`output_metrics` (data-parallel training passes
        copies that hold every rank's state).
        """
        logs = {}
        for i, group in enumerate(self.output_metrics if output_metrics is None else output_metrics):
            output_prefix = prefix if self.names is None else f"{prefix}{self.names[i]}_"
            logs.update({output_prefix + m.name: float(m.result()) for m in group if m.is_scalar})
        return logs

    def reset_metrics(self) -> None:
        for metric in self.metrics:
            metric.reset_state()

    def get_config(self) -> dict:
        """Plain data for saving: loss and metrics per output (or single), and the loss weights."""
        if self.names is None:
            return {"loss": custom_objects.serialize(self.loss, "loss"),
                    "metrics": [custom_objects.serialize(m, "metric") for m in self.metrics]}
        return {"loss": {name: custom_objects.serialize(fn, "loss") for name, fn in zip(self.names, self.losses)},
                "loss_weights": dict(zip(self.names, self.weights)),
                "metrics": {name: [custom_objects.serialize(m, "metric") for m in group]
                            for name, group in zip(self.names, self.output_metrics)}}


def _loss_value(loss_fn: Callable, y_true: Any, y_pred: Any, sample_weight: Any, who: str) -> Tensor:
    """``loss_fn`` on one output, its per-sample losses weighted when ``sample_weight`` is given."""
    if sample_weight is None:
        return loss_fn(y_true, y_pred)
    if isinstance(loss_fn, losses.Loss):
        return loss_fn(y_true, y_pred, sample_weight)
    per_sample = loss_fn(y_true, y_pred)
    if per_sample.ndim != 1:
        name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
        raise ValueError(f"{who}: sample weights need one loss per sample, but the loss {name!r} returned shape "
                         f"{tuple(per_sample.shape)}; return a (batch,) tensor, or subclass cnnkit.losses.Loss")
    return losses.weigh_samples(per_sample, sample_weight, who).mean()


def _metrics_per_output(metrics: Any, count: int) -> Any:
    """A flat list of metrics means every output; a list of lists (or a dict) means one entry per output."""
    if not metrics:
        return [[] for _ in range(count)]
    if isinstance(metrics, (list, tuple)) and not all(isinstance(m, (list, tuple)) or m is None for m in metrics):
        return [list(metrics) for _ in range(count)]
    return metrics


def _entries(entry: Any) -> list:
    """None, one metric or a list of them, as a list."""
    if entry is None:
        return []
    return list(entry) if isinstance(entry, (list, tuple)) else [entry]


def _metric_list(entry: Any) -> list:
    return [_fresh_metric(identifier) for identifier in _entries(entry)]


