"""Ops that move or select elements without arithmetic: reshape, transpose, indexing, concat, pad."""
from __future__ import annotations

from typing import Sequence

from .. import backend
from ..autograd import Function, Tensor
from .math import sum_to_shape


class Reshape(Function):
    """y = x viewed with a new shape;  gx = gy viewed with x's shape."""

    def __init__(self, shape: tuple):
        self.shape = shape

    def forward(self, x):
        self.source_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                             f"into shape {self.shape}") from None

    def backward(self, gy):
        return gy.reshape(self.source_shape)


class Transpose(Function):
    """y = x with axes permuted;  gx = gy with the inverse permutation."""

    def __init__(self, axes: tuple | None):
        self.axes = axes

    def forward(self, x):
        axes = self.axes if self.axes is not None else tuple(reversed(range(x.ndim)))
        if sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation of {x.ndim} axes")
        self.inverse = tuple(sorted(range(x.ndim), key=lambda i: axes[i] % x.ndim))
        return x.transpose(axes)

    def backward(self, gy):
        return gy.transpose(self.inverse)


class GetItem(Function):
    """y = x[index];  gx = zeros with gy scattered (added, for repeated indices) at index."""

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        gx = backend.get_array_module(gy).zeros(self.shape, self.dtype)
        if _is_basic_index(self.index):
            gx[self.index] = gy
        else:  # integer-array indices may repeat an element: add, do not overwrite
            backend.scatter_add(gx, self.index, gy)
        return gx


def _is_basic_index(index) -> bool:
    """Ints, slices, None and Ellipsis only: each element selected at most once."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)


class BroadcastTo(Function):
    """y = x broadcast to a shape;  gx = gy summed back to x's shape."""

    def __init__(self, shape: tuple):
        self.shape = shape

    def forward(self, x):
        self.source_shape = x.shape
        return backend.get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to_shape(gy, self.source_shape)


class Concatenate(Function):
    """y = the inputs joined along ``axis``;  each input's gradient is its slice of gy."""

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, *xs):
        xp = backend.get_array_module(*xs)
        self.sizes = [x.shape[self.axis] for x in xs]
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        boundaries = list(_running_sum(self.sizes[:-1]))
        return tuple(xp.split(gy, boundaries, axis=self.axis))


def _running_sum(values: Sequence[int]):
    total = 0
    for v in values:
        total += v
        yield total


class Pad(Function):
    """y = x padded with a constant;  gx = the interior of gy."""

    def __init__(self, pad_width: tuple, value: float):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.crop = tuple(slice(before, before + size) for (before, _), size in zip(self.pad_width, x.shape))
        return xp.pad(x, self.pad_width, mode="constant", constant_values=self.value)

    def backward(self, gy):
        return gy[self.crop]


def reshape(x, shape: tuple):
    return Reshape(tuple(shape))(x)


def transpose(x, axes: tuple | None = None):
    return Transpose(tuple(axes) if axes is not None else None)(x)


def get_item(x, index):
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return GetItem(index)(x)


def broadcast_to(x, shape: tuple):
    return BroadcastTo(tuple(shape))(x)


def concatenate(xs: Sequence, axis: int = 1):
    """Join tensors along ``axis`` (1 by default: the channel axis of NCHW data)."""
    if len(xs) == 0:
        raise ValueError("concatenate: needs at least one tensor")
    return Concatenate(axis)(*xs)


def pad(x, pad_width: Sequence, value: float = 0.0):
    """Pad each axis by ``pad_width[i] = (before, after)`` with a constant."""
    pad_width = tuple((int(before), int(after)) for before, after in pad_width)
    if len(pad_width) != x.ndim or any(before < 0 or after < 0 for before, after in pad_width):
        raise ValueError(f"pad: pad_width needs one non-negative (before, after) pair per axis of the "
                         f"{x.ndim}-d input, got {pad_width}")
    return Pad(pad_width, value)(x)


def flatten(x, start_axis: int = 1):
    """Keep the axes before ``start_axis`` and merge the rest (the batch axis stays by default)."""
    shape = x.shape[:start_axis] + (-1,)
    return reshape(x, shape)
