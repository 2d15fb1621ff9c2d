"""Layers that combine several inputs: element-wise merges (residual connections) and concatenation."""
from __future__ import annotations

from functools import reduce

from .. import ops
from .base import Layer, _show


class Merge(Layer):
    """Base of the element-wise merges: all inputs must have the same shape."""

    multi_input = True

    def _check_shapes(self, shapes) -> None:
        if not isinstance(shapes, list) or len(shapes) < 2:
            raise ValueError(f"{self.who}: expects a list of at least two inputs, got {shapes!r}")
        first = shapes[0]
        for shape in shapes[1:]:
            same_rank = len(shape) == len(first)
            if not same_rank or any(a is not None and b is not None and a != b
                                    for a, b in zip(first[1:], shape[1:])):
                raise ValueError(f"{self.who}: all inputs must have the same shape, got "
                                 + " and ".join(_show(s) for s in shapes))

    def build(self, input_shape):
        self._check_shapes(input_shape)

    def call(self, inputs):
        self._check_shapes([tuple(x.shape) for x in inputs])
        return reduce(self.combine, inputs)

    def compute_output_shape(self, input_shape):
        self._check_shapes(input_shape)
        return input_shape[0]

    def combine(self, a, b):
        raise NotImplementedError


class Add(Merge):
    """Sum of the inputs (a residual connection: ``Add()([x, shortcut])``)."""

    def combine(self, a, b):
        return a + b


class Subtract(Merge):
    """First input minus the second."""

    def _check_shapes(self, shapes) -> None:
        super()._check_shapes(shapes)
        if len(shapes) != 2:
            raise ValueError(f"{self.who}: expects exactly two inputs, got {len(shapes)}")

    def combine(self, a, b):
        return a - b


class Multiply(Merge):
    """Element-wise product of the inputs."""

    def combine(self, a, b):
        return a * b


class Maximum(Merge):
    """Element-wise maximum of the inputs."""

    def combine(self, a, b):
        return ops.maximum(a, b)


class Average(Merge):
    """Element-wise mean of the inputs."""

    def call(self, inputs):
        return super().call(inputs) / float(len(inputs))

    def combine(self, a, b):
        return a + b


class Concatenate(Layer):
    """Joins the inputs along ``axis`` (1, the channel axis of channels-first data, by default)."""

    multi_input = True

    def __init__(self, axis: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def call(self, inputs):
        return ops.concatenate(list(inputs), axis=self.axis)

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"{self.who}: expects a list of at least two inputs, got {input_shape!r}")
        rank = len(input_shape[0])
        axis = self.axis % rank
        for shape in input_shape[1:]:
            if len(shape) != rank or any(i != axis and i > 0 and None not in (a, b) and a != b
                                         for i, (a, b) in enumerate(zip(input_shape[0], shape))):
                raise ValueError(f"{self.who}: inputs must match on every axis but {self.axis}, got "
                                 + " and ".join(_show(s) for s in input_shape))
        sizes = [shape[axis] for shape in input_shape]
        total = None if None in sizes else sum(sizes)
        return tuple(total if i == axis else s for i, s in enumerate(input_shape[0]))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
