"""Reductions: sum, mean, max, min over axes."""
from __future__ import annotations

import operator

from .. import backend
from ..autograd import Function


def normalize_axes(axis, ndim: int) -> tuple:
    """``axis`` (None, an int or a tuple, negatives allowed) as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, (tuple, list)):
        axis = (axis,)
    axes = []
    for a in axis:
        a = operator.index(a)  # ints and NumPy integers; a float axis is a TypeError
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        axes.append(a % ndim)
    return tuple(sorted(set(axes)))


def _expand_reduced(g, shape: tuple, axes: tuple, keepdims: bool):
    """Put back the reduced axes (as size 1) so ``g`` broadcasts against the input."""
    if not keepdims:
        g = g.reshape(tuple(1 if i in axes else size for i, size in enumerate(shape)))
    return g


class Sum(Function):
    """y = Σ x over ``axis``;  gx = gy broadcast back to x's shape."""

    def __init__(self, axis, keepdims: bool):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape = x.shape
        self.axes = normalize_axes(self.axis, x.ndim)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gy = _expand_reduced(gy, self.shape, self.axes, self.keepdims)
        return xp.broadcast_to(gy, self.shape)


class Mean(Function):
    """y = Σ x / n over ``axis``;  gx = gy / n broadcast back to x's shape."""

    def __init__(self, axis, keepdims: bool):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape = x.shape
        self.axes = normalize_axes(self.axis, x.ndim)
        self.count = 1
        for a in self.axes:
            self.count *= x.shape[a]
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gy = _expand_reduced(gy, self.shape, self.axes, self.keepdims) / self.count
        return xp.broadcast_to(gy, self.shape)


class Extremum(Function):
    """y = max (or min) of x over ``axis``;  gx = gy at the arg-extremum, shared equally on ties."""

    def __init__(self, axis, keepdims: bool, largest: bool):
        self.axis, self.keepdims, self.largest = axis, keepdims, largest

    def forward(self, x):
        self.x = x
        self.axes = normalize_axes(self.axis, x.ndim)
        reduce = x.max if self.largest else x.min
        self.y = reduce(axis=self.axes, keepdims=True)
        return self.y if self.keepdims else self.y.reshape(
            tuple(s for i, s in enumerate(x.shape) if i not in self.axes))

    def backward(self, gy):
        hit = self.x == self.y
        ties = hit.sum(axis=self.axes, keepdims=True, dtype=gy.dtype)  # an int count would promote gy
        gy = _expand_reduced(gy, self.x.shape, self.axes, self.keepdims)
        return gy * hit / ties


def sum(x, axis=None, keepdims: bool = False):  # noqa: A001  (mirrors numpy.sum)
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims: bool = False):
    return Mean(axis, keepdims)(x)


def max(x, axis=None, keepdims: bool = False):  # noqa: A001
    return Extremum(axis, keepdims, largest=True)(x)


def min(x, axis=None, keepdims: bool = False):  # noqa: A001
    return Extremum(axis, keepdims, largest=False)(x)
