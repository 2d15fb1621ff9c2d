"""``Sequential``: a plain stack of layers, each feeding the next."""
from __future__ import annotations

from typing import Any, Iterable

from .. import backend
from ..layers.base import Input, InputLayer, Layer, SymbolicTensor, layer_class, serialize_layer
from .graph import Graph
from .model import Model, warn_if_channels_last


class Sequential(Model):
    """A stack of layers: ``Sequential([Conv2D(32, 3), MaxPool2D(), Flatten(), Dense(10)])``.

    The model is built (weights created, shapes checked layer by layer, ``summary``
    available) as soon as the input shape is known: from an ``Input`` in the list,
    from ``input_shape=`` on the first layer, from ``build(input_shape)``, or from
    the first batch it is called on.
    """

    lists_input_layers = False

    def __init__(self, layers: Iterable[Any] | None = None, *, name: str | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._stack: list[Layer] = []
        self._input_shape: tuple | None = None
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Layer]:
        return list(self._stack)

    def add(self, layer: Any) -> None:
        """Append a layer (or an ``Input``, which fixes the input shape)."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.node.layer, InputLayer):
            if self._stack:
                raise ValueError(f"{self.who}: an Input can only be the first entry of a Sequential model")
            self._input_shape = layer.shape
            self.dtype = layer.dtype  # Input(..., dtype="float64") makes a float64 model
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.who}: add() takes a Layer, got {layer!r}")
        if any(existing.name == layer.name for existing in self._stack):
            raise ValueError(f"{self.who}: a layer named {layer.name!r} is already in the model; names must be unique")
        input_shape = self._input_shape
        if not self._stack and input_shape is None and layer.input_shape_hint is not None:
            input_shape = layer.input_shape_hint
        self._stack.append(layer)
        if input_shape is not None:
            try:
                self._connect(input_shape)
            except Exception:
                # A layer that does not fit is not kept: the model stays as it was before add().
                self._stack.pop()
                layer._symbolic_outputs.clear()
                if self._input_shape is not None and self._stack:
                    self._connect(self._input_shape)
                raise
        self._input_shape = input_shape

    def pop(self) -> Layer:
        """Remove and return the last layer (to replace the head of a trained model)."""
        if not self._stack:
            raise IndexError(f"{self.who}: pop() from a model with no layers")
        layer = self._stack.pop()
        layer._symbolic_outputs.clear()
        if self._input_shape is not None and self._stack:
            self._connect(self._input_shape)
        else:
            self._graph = None
        return layer

    def build(self, input_shape) -> None:
        """Build every layer for inputs of ``input_shape`` (batch axis first, may be None)."""
        input_shape = (None,) + tuple(input_shape[1:])
        warn_if_channels_last(input_shape, self.who)
        self._connect(input_shape)
        self._input_shape = input_shape

    def _connect(self, input_shape: tuple) -> None:
        """Run the stack symbolically from an Input: builds the layers and records every output shape."""
        for layer in self._stack:
            layer._symbolic_outputs.clear()
        inputs = Input(input_shape[1:], dtype=self.dtype)
        x = inputs
        with backend.default_device(self.device):  # new weights go where the model lives
            for layer in self._stack:
                x = layer(x)
        self._graph = Graph(inputs, x, self.who)
        self.built = True

    def call(self, inputs, training: bool = False):
        self._check_inputs([inputs])
        x = inputs
        for layer in self._stack:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self._stack:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable,
                  "layers": [serialize_layer(layer) for layer in self._stack]}
        if self._input_shape is not None:
            config["input_shape"] = list(self._input_shape[1:])
            config["dtype"] = self.dtype.name
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        model = cls(name=config["name"])
        if "input_shape" in config:
            model.add(Input(tuple(config["input_shape"]), dtype=config.get("dtype")))
        for entry in config["layers"]:
            model.add(layer_class(entry["class_name"]).from_config(dict(entry["config"])))
        model.trainable = config.get("trainable", True)
        return model
