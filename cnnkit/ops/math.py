"""Element-wise arithmetic with NumPy broadcasting, and moves between devices and dtypes."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function


def sum_to_shape(g, shape: tuple):
    """Sum a broadcast gradient back down to ``shape`` (the inverse of broadcasting).

    Leading axes that broadcasting added are summed away, and axes where the
    input had size 1 are summed with keepdims.
    """
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, size in enumerate(shape) if size == 1 and g.shape[lead + i] != 1
    )
    g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _shape(x) -> tuple:
    return getattr(x, "shape", ())


class Add(Function):
    """y = a + b;  ga = gy,  gb = gy (each summed back to its input's shape)."""

    def forward(self, a, b):
        self.shapes = (_shape(a), _shape(b))
        return a + b

    def backward(self, gy):
        ga = sum_to_shape(gy, self.shapes[0]) if self.needs_grad[0] else None
        gb = sum_to_shape(gy, self.shapes[1]) if self.needs_grad[1] else None
        return ga, gb


class Sub(Function):
    """y = a - b;  ga = gy,  gb = -gy."""

    def forward(self, a, b):
        self.shapes = (_shape(a), _shape(b))
        return a - b

    def backward(self, gy):
        ga = sum_to_shape(gy, self.shapes[0]) if self.needs_grad[0] else None
        gb = -sum_to_shape(gy, self.shapes[1]) if self.needs_grad[1] else None
        return ga, gb


class Mul(Function):
    """y = a * b;  ga = gy * b,  gb = gy * a.  Saves both inputs."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        ga = sum_to_shape(gy * self.b, _shape(self.a)) if self.needs_grad[0] else None
        gb = sum_to_shape(gy * self.a, _shape(self.b)) if self.needs_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b;  ga = gy / b,  gb = -gy * a / b².  Saves both inputs."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = sum_to_shape(gy / self.b, _shape(self.a)) if self.needs_grad[0] else None
        gb = sum_to_shape(-gy * self.a / (self.b * self.b), _shape(self.b)) if self.needs_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = -x;  gx = -gy."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Power(Function):
    """y = x ** p for a constant exponent p;  gx = gy * p * x ** (p - 1).  Saves x."""

    def __init__(self, exponent: float):
        self.exponent = exponent

    def forward(self, x):
        self.x = x
        return x ** self.exponent

    def backward(self, gy):
        return gy * self.exponent * self.x ** (self.exponent - 1)


class Exp(Function):
    """y = exp(x);  gx = gy * y.  Saves y."""

    def forward(self, x):
        self.y = backend.get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    """y = log(x);  gx = gy / x.  Saves x."""

    def forward(self, x):
        self.x = x
        return backend.get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    """y = sqrt(x);  gx = gy / (2 y).  Saves y."""

    def forward(self, x):
        self.y = backend.get_array_module(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class Abs(Function):
    """y = |x|;  gx = gy * sign(x) (0 at x = 0).  Saves x."""

    def forward(self, x):
        self.x = x
        return backend.get_array_module(x).abs(x)

    def backward(self, gy):
        return gy * backend.get_array_module(self.x).sign(self.x)


class Clip(Function):
    """y = min(max(x, low), high);  gx = gy where low <= x <= high, else 0.  Saves x."""

    def __init__(self, low: float | None, high: float | None):
        self.low, self.high = low, high

    def forward(self, x):
        self.x = x
        return backend.get_array_module(x).clip(x, self.low, self.high)

    def backward(self, gy):
        inside = backend.get_array_module(self.x).ones(self.x.shape, dtype=bool)
        if self.low is not None:
            inside &= self.x >= self.low
        if self.high is not None:
            inside &= self.x <= self.high
        return gy * inside


class Maximum(Function):
    """y = max(a, b) element-wise; the gradient goes to the larger input (to ``a`` on ties)."""

    def forward(self, a, b):
        xp = backend.get_array_module(a, b)
        self.a_wins = a >= b
        self.shapes = (_shape(a), _shape(b))
        return xp.maximum(a, b)

    def backward(self, gy):
        ga = sum_to_shape(gy * self.a_wins, self.shapes[0]) if self.needs_grad[0] else None
        gb = sum_to_shape(gy * ~self.a_wins, self.shapes[1]) if self.needs_grad[1] else None
        return ga, gb


class ToDevice(Function):
    """y = x on another device;  gx = gy moved back to x's device."""

    def __init__(self, device: backend.Device):
        self.device = device

    def forward(self, x):
        self.source = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return backend.to_device(gy, self.source)


class Cast(Function):
    """y = x converted to another dtype;  gx = gy converted back."""

    def __init__(self, dtype: Any):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.source_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.source_dtype)


def add(a, b):
    return Add()(a, b)


def sub(a, b):
    return Sub()(a, b)


def mul(a, b):
    return Mul()(a, b)


def div(a, b):
    return Div()(a, b)


def neg(x):
    return Neg()(x)


def power(x, exponent: float):
    if not isinstance(exponent, (int, float)):
        raise TypeError(f"power: exponent must be a Python number, got {type(exponent).__name__}")
    return Power(exponent)(x)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def abs(x):  # noqa: A001  (mirrors numpy.abs)
    return Abs()(x)


def clip(x, low: float | None = None, high: float | None = None):
    return Clip(low, high)(x)


def maximum(a, b):
    return Maximum()(a, b)


def to_device(x, device):
    return ToDevice(backend.as_device(device))(x)


def cast(x, dtype):
    return Cast(dtype)(x)
