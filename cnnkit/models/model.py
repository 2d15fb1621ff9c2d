"""Keras-style models: the functional ``Model(inputs, outputs)`` and subclassed models.

A model is a layer made of layers, plus what training needs: ``compile`` stores an
optimizer, a loss and metrics; ``fit``/``evaluate``/``predict`` run the loops in
:mod:`cnnkit.models.training`; ``summary`` and ``save`` live in their own modules.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

from .. import backend
from ..autograd import Tensor
from ..layers.base import Layer, SymbolicTensor, _show
from . import saving, summary, training
from .graph import Graph


def layout_hint(shape: tuple, expected: tuple) -> str:
    """Why data of ``shape`` may not fit ``expected``: a missing batch axis, or channels last."""
    if tuple(shape) == tuple(expected[1:]):
        return "; this looks like a single sample: add a batch axis, e.g. x[None] or np.expand_dims(x, 0)"
    if len(shape) == len(expected) >= 3 and tuple(shape[1:-1]) == tuple(expected[2:]) and shape[-1] == expected[1]:
        return f"; {_CHANNELS_LAST_HINT.format(order=_channels_first_order(len(shape)))}"
    return ""


_CHANNELS_LAST_HINT = ("these look like channels-last images (N, H, W, C); cnnkit is channels-first (N, C, H, W), "
                       "as PyTorch: use x.transpose{order}")


def _channels_first_order(ndim: int) -> tuple:
    return (0, ndim - 1, *range(1, ndim - 1))


def warn_if_channels_last(input_shape: tuple, who: str) -> None:
    """Warn when a model whose input shape comes from the data is given what looks like channels-last images.

    Images (rank 3 to 5) whose last axis has 1, 3 or 4 entries (grey, RGB, RGBA) while
    the second has more are almost surely (N, ..., C): a model built on them would take
    the rows for channels and train silently on scrambled data.
    """
    shape = tuple(input_shape)
    if 3 <= len(shape) <= 5 and shape[-1] in (1, 3, 4) and shape[1] is not None and shape[1] not in (1, 3, 4):
        warnings.warn(f"{who}: built for inputs of shape {_show(shape)}: "
                      f"{_CHANNELS_LAST_HINT.format(order=_channels_first_order(len(shape)))}, or start the model "
                      f"with cnnkit.Input((C, H, W)) to have such input refused", UserWarning, stacklevel=4)


class Model(Layer):
    """A network of layers that can be trained.

    Three ways to make one, as in Keras:

    * functional: ``Model(inputs, outputs)`` with symbolic tensors from
      :func:`~cnnkit.Input` passed through layers (branches and residual ``Add``\\ s work);
    * :class:`~cnnkit.Sequential`: a plain stack;
    * subclassing: define layers in ``__init__`` and the computation in ``call``.

    Args:
        inputs, outputs: symbolic tensors (functional models only).
        name: the model's name.
    """

    lists_input_layers = True  # summary() shows the Input layers (a Sequential's Input is implicit)

    def __init__(self, inputs: Any = None, outputs: Any = None, *, name: str | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._graph: Graph | None = None
        self.optimizer = None
        self.objective = None  # the compiled loss and metrics (see cnnkit.models.objective)
        self.loss = None
        self.metrics: list = []
        self.compiled = False
        self.stop_training = False
        self.history = None
        self.epoch = 0  # epochs completed by fit, saved in checkpoints
        self.initial_epoch = 0  # where the current fit started (callbacks may move it)
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError(f"{self.who}: a functional model needs both inputs and outputs")
            self._graph = Graph(inputs, outputs, self.who)
            self.built = True
            # Inputs are cast to the model's dtype on entry: take it from the Input, so float64 stays float64.
            self.dtype = self._graph.inputs[0].dtype
            self._device = self._graph.layers[-1].device if self._graph.layers else None

    # ------------------------------------------------------------ structure
    @property
    def layers(self) -> list[Layer]:
        """The layers in running order (a functional model lists its Input layers too, as Keras does)."""
        if self._graph is not None:
            return list(self._graph.layers)
        return super().sublayers

    @property
    def sublayers(self) -> list[Layer]:
        return self.layers

    @property
    def inputs(self) -> list[SymbolicTensor]:
        return self._require_graph("inputs").inputs

    @property
    def outputs(self) -> list[SymbolicTensor]:
        return self._require_graph("outputs").outputs

    @property
    def input(self):
        graph = self._require_graph("input")
        return graph.inputs[0] if graph.single_input else graph.inputs

    @property
    def output(self):
        graph = self._require_graph("output")
        return graph.outputs[0] if graph.single_output else graph.outputs

    @property
    def input_shape(self):
        """The shape of the input, batch axis first (None); a list of them for several inputs."""
        graph = self._require_graph("input shape")
        shapes = [tensor.shape for tensor in graph.inputs]
        return shapes[0] if graph.single_input else shapes

    @property
    def output_shape(self):
        """The shape of the output, batch axis first (None); a list of them for several outputs."""
        graph = self._require_graph("output shape")
        shapes = [tensor.shape for tensor in graph.outputs]
        return shapes[0] if graph.single_output else shapes

    def _require_graph(self, what: str) -> Graph:
        if self._graph is None:
            raise AttributeError(f"{self.who} has no symbolic {what}: it is not a functional model, or it has "
                                 f"not been built from an input shape yet")
        return self._graph

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by index into ``layers``."""
        if (name is None) == (index is None):
            raise ValueError(f"{self.who}: get_layer takes exactly one of name= and index=")
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.who}: no layer named {name!r}; layers: {', '.join(l.name for l in self.layers)}")

    # ------------------------------------------------------------ calling
    def call(self, inputs, training: bool = False):
        if self._graph is None:
            raise NotImplementedError(f"{self.who}: a subclassed model must implement call(), or build a "
                                      f"functional model with Model(inputs, outputs)")
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        self._check_inputs(inputs)
        return self._graph.run(inputs, training)

    def _check_inputs(self, inputs: Sequence[Tensor]) -> None:
        expected = self._graph.inputs
        if len(inputs) != len(expected):
            raise ValueError(f"{self.who}: expects {len(expected)} input(s), got {len(inputs)}")
        for i, (tensor, symbol) in enumerate(zip(inputs, expected)):
            shape = tuple(tensor.shape)
            if len(shape) != len(symbol.shape) or any(
                    s is not None and s != t for s, t in zip(symbol.shape[1:], shape[1:])):
                which = "the input" if len(expected) == 1 else f"input {i}"
                raise ValueError(f"{self.who}: expected {which} to have shape {_show(symbol.shape)} "
                                 f"(batch first), got {_show(shape)}{layout_hint(shape, symbol.shape)}")

    def compute_output_shape(self, input_shape):
        if self._graph is not None:
            outputs = [t.shape for t in self._graph.outputs]
            return outputs[0] if self._graph.single_output else outputs
        raise NotImplementedError(f"{self.who}: the output shape of a subclassed model is known only by running it")

    def build(self, input_shape) -> None:
        """Subclassed models build their layers by running once on zeros of ``input_shape``."""
        if self._graph is None and not self.built:
            warn_if_channels_last(input_shape, self.who)
            shape = tuple(1 if s is None else s for s in input_shape)
            with backend.default_device(self.device):
                zeros = Tensor(self.device.xp.zeros(shape, dtype=self.dtype))
            from ..autograd import no_grad
            with no_grad():
                self.call(zeros)

    def to(self, device: Any) -> "Model":
        """Move the weights (and the optimizer's state) to ``device``."""
        super().to(device)
        if self.optimizer is not None:
            self.optimizer.to(device)
        return self

    # ------------------------------------------------------------ training API
    compile = training.compile
    fit = training.fit
    evaluate = training.evaluate
    predict = training.predict
    train_on_batch = training.train_on_batch
    test_on_batch = training.test_on_batch
    predict_on_batch = training.predict_on_batch
    summary = summary.summary
    save = saving.save_model
    to_json = saving.model_to_json
    save_weights = saving.save_weights
    load_weights = saving.load_weights

    def extract_features(self, x: Any, layer: "str | Layer", batch_size: int = 32):
        """The output of ``layer`` for inputs ``x`` (NumPy), for using the network as a feature extractor."""
        target = self.get_layer(layer) if isinstance(layer, str) else layer
        return Model(self.input, target.output, name=f"{self.name}_features").predict(x, batch_size=batch_size)

    # ------------------------------------------------------------ config
    def get_config(self) -> dict:
        if self._graph is None:
            raise TypeError(f"{self.who}: a subclassed model has no config; save its weights with save_weights() "
                            f"and rebuild it in code")
        return {"name": self.name, "trainable": self.trainable, "graph": self._graph.get_config()}

    @classmethod
    def from_config(cls, config: dict) -> "Model":
        inputs, outputs = Graph.from_config(config["graph"])
        model = cls(inputs, outputs, name=config["name"])
        model.trainable = config.get("trainable", True)
        return model
