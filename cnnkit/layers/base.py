"""The Layer base class, and the symbolic tensors that the functional API connects.

A layer owns parameters and calls ops; it holds no math of its own. As in Keras,
``__init__`` only stores and checks hyperparameters, ``build(input_shape)`` creates the
weights once the input shape is known (so input channels are inferred), and
``call(x, training)`` is a few lines. Weights are created on the device of the first
input the layer sees (or the default device when built from shapes).

Shapes handed to ``build`` and ``compute_output_shape`` include the batch axis, which
is ``None`` when the layer is built from symbolic inputs.
"""
from __future__ import annotations

import difflib
import functools
import inspect
import re
from collections import defaultdict
from typing import Any, Iterable, Sequence

import numpy as np

from .. import backend, custom_objects, initializers, regularizers
from ..autograd import Parameter, Tensor

_LAYER_CLASSES: dict[str, type] = {}
_name_counts: dict[str, int] = defaultdict(int)


def unique_name(base: str) -> str:
    """``base``, then ``base_1``, ``base_2``, ... as Keras names layers."""
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def _snake_case(name: str) -> str:
    """Conv2D -> conv2d, BatchNormalization -> batch_normalization, MaxPool2D -> max_pool2d."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_class(name: str) -> type:
    """The layer class registered under ``name`` (every Layer subclass registers itself, or custom_objects)."""
    custom = custom_objects.find(name)
    if custom is not None:
        return custom
    if name not in _LAYER_CLASSES:
        raise ValueError(f"unknown layer class {name!r}; known layers: {', '.join(sorted(_LAYER_CLASSES))}")
    return _LAYER_CLASSES[name]


def serialize_layer(layer: "Layer") -> dict:
    """A layer's class name and config, for a model's config; says which layer could not be saved."""
    try:
        return {"class_name": type(layer).__name__, "config": layer.get_config()}
    except TypeError as error:
        raise TypeError(f"{layer.who}: {error}") from None


class InputSpec:
    """What a built layer accepts: a rank (exact or minimum) and fixed sizes on some axes."""

    def __init__(self, ndim: int | None = None, min_ndim: int | None = None, axes: dict | None = None):
        self.ndim, self.min_ndim, self.axes = ndim, min_ndim, dict(axes or {})

    def check(self, shape: tuple, who: str) -> None:
        if self.ndim is not None and len(shape) != self.ndim:
            raise ValueError(f"{who}: expected input of rank {self.ndim}, got shape {_show(shape)}")
        if self.min_ndim is not None and len(shape) < self.min_ndim:
            raise ValueError(f"{who}: expected input of rank at least {self.min_ndim}, got shape {_show(shape)}")
        for axis, size in self.axes.items():
            if shape[axis] is not None and shape[axis] != size:
                raise ValueError(f"{who}: expected axis {axis} of the input to have size {size} "
                                 f"(the layer was built for it), got shape {_show(shape)}")


def _show(shape: Sequence) -> str:
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class Node:
    """One call of a layer on symbolic inputs: the edge list of a functional model."""

    def __init__(self, layer: "Layer", inputs: list["SymbolicTensor"]):
        self.layer, self.inputs = layer, inputs
        self.outputs: list[SymbolicTensor] = []


class SymbolicTensor:
    """A placeholder for a tensor a model will compute: a shape (batch axis None) and its origin."""

    def __init__(self, shape: tuple, dtype: Any, node: Node):
        self.shape, self.dtype, self.node = tuple(shape), np.dtype(dtype), node

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={_show(self.shape)} dtype={self.dtype} from '{self.node.layer.name}'>"


def _is_symbolic(inputs: Any) -> bool:
    if isinstance(inputs, (list, tuple)):
        return any(isinstance(x, SymbolicTensor) for x in inputs)
    return isinstance(inputs, SymbolicTensor)


def _shapes(inputs: Any):
    if isinstance(inputs, (list, tuple)):
        return [tuple(x.shape) for x in inputs]
    return tuple(inputs.shape)


class Layer:
    """Base class of every layer (and of models).

    Args:
        name: unique by default (``conv2d``, ``conv2d_1``, ...); weights are named
            ``<layer name>/<weight name>``.
        trainable: ``False`` freezes every weight of the layer.
        input_shape: the shape of one sample (no batch axis); lets a first layer
            of a ``Sequential`` build the model at once, as in Keras.
        dtype: the weights' dtype (the default dtype, float32, if omitted).
    """

    _call_takes_training = True
    accepts_integer_input = False
    multi_input = False  # True for layers called on a list of tensors (Add, Concatenate)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _LAYER_CLASSES[cls.__name__] = cls
        cls._call_takes_training = "training" in inspect.signature(cls.call).parameters
        if "__init__" in vars(cls):
            cls.__init__ = _explaining_unknown_keywords(cls.__init__)

    def __init__(self, *, name: str | None = None, trainable: bool = True, input_shape: Sequence[int] | None = None,
                 dtype: Any = None):
        self.name = name or unique_name(_snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        self.dtype = np.dtype(dtype) if dtype is not None else backend.get_default_dtype()
        self.built = False
        self.input_spec: InputSpec | None = None
        self._params: dict[str, Parameter] = {}
        self._created_trainable: dict[str, bool] = {}
        self._device: backend.Device | None = None
        self._symbolic_outputs: list[SymbolicTensor] = []
        self.input_shape_hint = None if input_shape is None else (None,) + tuple(input_shape)

    # ------------------------------------------------------------ to override
    def build(self, input_shape) -> None:
        """Create the weights for inputs of ``input_shape`` (batch axis included)."""

    def call(self, inputs, training: bool = False):
        """The computation, on tensors."""
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def compute_output_shape(self, input_shape):
        """The output shape for ``input_shape`` (batch axis included, possibly None)."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_output_shape()")

    def get_config(self) -> dict:
        """Plain data from which ``from_config`` rebuilds an equal (unbuilt) layer."""
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}
        if self.input_shape_hint is not None:
            config["input_shape"] = list(self.input_shape_hint[1:])
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        return cls(**config)

    def get_state(self) -> dict:
        """Plain data that is neither config nor weight but is saved with them (such as a count of updates)."""
        return {}

    def set_state(self, state: dict | None) -> None:
        """Restore what ``get_state`` gave; ``None`` when the weights were set without it (``set_weights``,
        an older checkpoint), so the layer assumes whatever fits weights from elsewhere."""

    # ------------------------------------------------------------ calling
    @property
    def who(self) -> str:
        """How error messages name this layer."""
        return f"{type(self).__name__} '{self.name}'"

    def __call__(self, inputs, training: bool = False):
        if _is_symbolic(inputs):
            return self._call_symbolic(inputs)
        inputs = self._as_tensors(inputs)
        if not self.built:
            self.build_from_shape(_shapes(inputs), _first_device(inputs))
        if self.input_spec is not None:
            self.input_spec.check(inputs.shape, self.who)
        if self._call_takes_training:
            return self.call(inputs, training=training)
        return self.call(inputs)

    def _call_symbolic(self, inputs) -> SymbolicTensor:
        shapes = _shapes(inputs)
        if not self.built:
            self.build_from_shape(shapes)
        if self.input_spec is not None:
            self.input_spec.check(shapes, self.who)
        node = Node(self, list(inputs) if isinstance(inputs, (list, tuple)) else [inputs])
        output = SymbolicTensor(self.compute_output_shape(shapes), self.dtype, node)
        node.outputs.append(output)
        self._symbolic_outputs.append(output)
        return output

    @property
    def output(self) -> SymbolicTensor:
        """The symbolic output of this layer in a model (for feature extraction and Grad-CAM)."""
        if not self._symbolic_outputs:
            raise AttributeError(f"{self.who} has not been connected to an Input yet, so it has no symbolic output")
        if len(self._symbolic_outputs) > 1:
            raise AttributeError(f"{self.who} is used {len(self._symbolic_outputs)} times, so its output is "
                                 f"ambiguous; keep the tensor returned by the call you mean")
        return self._symbolic_outputs[0]

    @property
    def output_shape(self) -> tuple:
        return self.output.shape

    def build_from_shape(self, input_shape, device: Any = None) -> None:
        """Build once: create weights on ``device`` (else this layer's or the default device)."""
        if self._device is None:
            self._device = backend.as_device(device)
        self.build(input_shape)
        self.built = True

    def _as_tensors(self, inputs):
        if isinstance(inputs, (list, tuple)):
            return [self._as_tensor(x) for x in inputs]
        return self._as_tensor(inputs)

    def _as_tensor(self, x) -> Tensor:
        """Arrays become tensors on this layer's device; float inputs take the layer's dtype (as Keras)."""
        if not isinstance(x, Tensor):
            x = Tensor(x, device=self._device or backend.get_default_device())
        if x.dtype.kind == "f":
            return x if x.dtype == self.dtype else x.astype(self.dtype)
        if not self.accepts_integer_input:
            raise TypeError(f"{self.who}: expected floating-point input, got dtype {x.dtype} "
                            f"(convert it, e.g. x.astype('float32') / 255 for 8-bit images)")
        return x

    # ------------------------------------------------------------ weights
    def add_weight(self, name: str, shape: Sequence[int], initializer: Any = "glorot_uniform",
                   regularizer: Any = None, trainable: bool = True, layout: str = "dense") -> Parameter:
        """Create a weight on this layer's device from ``initializer``; ``layout`` tells it the fans."""
        value = initializers.initial_value(initializer, tuple(shape), self.dtype, layout)
        parameter = Parameter(backend.to_device(value, self.device), trainable=trainable and self._trainable,
                              name=f"{self.name}/{name}", regularizer=regularizers.get(regularizer))
        self._params[name] = parameter
        self._created_trainable[name] = trainable
        return parameter

    @property
    def device(self) -> backend.Device:
        return self._device or backend.get_default_device()

    @property
    def _sublayers(self) -> dict[str, "Layer"]:
        """The layers held in attributes (alone, or in a list, tuple or dict), by attribute path.

        Read from the attributes at each use, so a list appended to after assignment is
        seen, as PyTorch's ModuleList is; attribute order is assignment order.
        """
        held: dict[str, Layer] = {}
        for name, value in vars(self).items():
            held.update(_held_layers(name, value))
        return held

    @property
    def sublayers(self) -> list["Layer"]:
        """The layers held in attributes, each once (a layer held twice is listed where first held)."""
        unique: dict[int, Layer] = {}
        for layer in self._sublayers.values():
            unique.setdefault(id(layer), layer)
        return list(unique.values())

    @property
    def weights(self) -> list[Parameter]:
        """Every weight of this layer and its sub-layers, each once, in creation order."""
        seen: dict[int, Parameter] = {}
        for parameter in self._params.values():
            seen.setdefault(id(parameter), parameter)
        for layer in self.sublayers:
            for parameter in layer.weights:
                seen.setdefault(id(parameter), parameter)
        return list(seen.values())

    @property
    def trainable_weights(self) -> list[Parameter]:
        return [w for w in self.weights if w.trainable]

    @property
    def non_trainable_weights(self) -> list[Parameter]:
        return [w for w in self.weights if not w.trainable]

    def parameters(self) -> list[Parameter]:
        """The trainable weights (PyTorch's spelling), for ``Optimizer(model.parameters())``."""
        return self.trainable_weights

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for name, parameter in self._params.items():
            parameter.trainable = self._trainable and self._created_trainable[name]
        for layer in self.sublayers:
            layer.trainable = value

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights as NumPy arrays, in the order of ``weights`` (changing them changes nothing)."""
        return [np.array(w.numpy(), copy=True) for w in self.weights]

    def set_weights(self, values: Iterable[Any]) -> None:
        """Assign NumPy arrays to the weights, in the order of ``weights``; shapes must match."""
        weights, values = self.weights, list(values)
        if len(values) != len(weights):
            raise ValueError(f"{self.who}: set_weights got {len(values)} arrays for {len(weights)} weights")
        for weight, value in zip(weights, values):
            value = np.asarray(backend.to_numpy(value))
            if value.shape != weight.shape:
                raise ValueError(f"{self.who}: weight {weight.name!r} has shape {weight.shape}, "
                                 f"the new value has shape {value.shape}")
            weight.data = backend.to_device(value.astype(weight.dtype), weight.device)
        for layer in self.walk():
            layer.set_state(None)

    def walk(self) -> Iterable["Layer"]:
        """This layer and every layer inside it, parents first."""
        yield self
        for layer in self.sublayers:
            yield from layer.walk()

    def to(self, device: Any) -> "Layer":
        """Move every weight to ``device`` in place (the Parameter objects stay the same)."""
        device = backend.as_device(device)
        self._device = device
        for parameter in self._params.values():
            parameter.data = backend.to_device(parameter.data, device)
            parameter.grad = None
        for layer in self.sublayers:
            layer.to(device)
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name='{self.name}' built={self.built}>"


def accepted_keywords(cls: type) -> list[str]:
    """The keyword arguments ``cls(...)`` takes: its ``__init__``'s, and its bases' where ``**kwargs`` passes on."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        parameters = list(inspect.signature(init).parameters.values())[1:]
        names += [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return list(dict.fromkeys(names))


def _explaining_unknown_keywords(init):
    """Wrap a layer's ``__init__`` so a misspelled keyword names the layer class and the closest valid one.

    Python's own message ("Layer.__init__() got an unexpected keyword argument") names
    the base class that finally refused it; the check runs only after such a TypeError,
    so layers that take extra ``**kwargs`` for themselves keep working.
    """
    @functools.wraps(init)
    def checked_init(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except TypeError as error:
            valid = accepted_keywords(type(self))
            unknown = [key for key in kwargs if key not in valid]
            if "unexpected keyword argument" not in str(error) or not unknown:
                raise
            close = difflib.get_close_matches(unknown[0], valid, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"{type(self).__name__}: unknown argument {unknown[0]!r}{hint} "
                            f"(it takes: {', '.join(valid)})") from None

    return checked_init


Layer.__init__ = _explaining_unknown_keywords(Layer.__init__)  # layers without an __init__ of their own


def _held_layers(name: str, value: Any) -> dict[str, "Layer"]:
    """The layers in an attribute, keyed ``name``, ``name.0`` (lists, tuples) or ``name.key`` (dicts)."""
    if isinstance(value, Layer):
        return {name: value}
    if isinstance(value, (list, tuple)):
        items = enumerate(value)
    elif isinstance(value, dict):
        items = value.items()
    else:
        return {}
    return {f"{name}.{key}": item for key, item in items if isinstance(item, Layer)}


def _first_device(inputs) -> backend.Device:
    first = inputs[0] if isinstance(inputs, list) else inputs
    return first.device


class InputLayer(Layer):
    """The source of a functional model: it only states the shape of one sample."""

    def __init__(self, shape: Sequence[int], *, name: str | None = None, dtype: Any = None):
        super().__init__(name=name or unique_name("input"), dtype=dtype)
        self.shape = (None,) + tuple(int(s) for s in shape)
        self.built = True
        output = SymbolicTensor(self.shape, self.dtype, Node(self, []))
        output.node.outputs.append(output)
        self._symbolic_outputs.append(output)

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return self.shape

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype.name, "shape": list(self.shape[1:])}


def Input(shape: Sequence[int], name: str | None = None, dtype: Any = None) -> SymbolicTensor:
    """A symbolic input of one sample's ``shape`` (no batch axis), e.g. ``Input((1, 28, 28))``."""
    if isinstance(shape, int):
        shape = (shape,)
    if not all(isinstance(s, (int, np.integer)) and s >= 1 for s in shape):
        raise ValueError(f"Input: shape must be positive ints (one sample, no batch axis), got {tuple(shape)}")
    return InputLayer(shape, name=name, dtype=dtype).output
