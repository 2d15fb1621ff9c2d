"""Activation functions: element-wise non-linearities, softmax, log-softmax and maxout.

Every element-wise activation is one pair of registered references, ``"<name>"`` with
signature ``(x, **params) -> y`` and ``"<name>_grad"`` with ``(x, y, gy, **params) -> gx``,
and one generic :class:`Activation` function node that calls them. A CUDA kernel for an
activation registers under the same two names. Each reference takes and returns arrays
of x's shape and float dtype (float32 or float64).

NumPy has no ``erf``, which the exact GELU needs; :func:`erf` below is array-generic
and accurate to about 1e-15 in float64.
"""
from __future__ import annotations

import math

from .. import backend
from ..autograd import Function, Tensor, as_tensor
from ..registry import impl, register
from .reduce import max as reduce_max
from .reduce import normalize_axes
from .shape import reshape

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_ONE_OVER_SQRT_PI = 1.0 / math.sqrt(math.pi)
_SQRT_HALF = math.sqrt(0.5)
_ONE_OVER_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715

# erf(x) for |x| below the switch comes from the series, above it from the continued
# fraction; with these term counts both are within 2e-15 of the true value in float64
# (tested against math.erf), and past |x| = 6 erf is 1 to double precision.
_ERF_SWITCH = 2.5
_ERF_SERIES_TERMS = 40
_ERFC_FRACTION_TERMS = 30
_ERF_SATURATION = 10.0


def _erf_series(x):
    """erf(x) = 2/√π · e^(−x²) · Σ_{n≥0} (2x²)ⁿ · x / (1·3·…·(2n+1)).

    Every term has x's sign, so nothing cancels (unlike the alternating Maclaurin
    series of erf itself); accurate for |x| below about 3.
    """
    xp = backend.get_array_module(x)
    x2 = x * x
    term = x.copy()
    total = x.copy()
    for n in range(1, _ERF_SERIES_TERMS):
        term *= x2
        term *= 2.0 / (2 * n + 1)
        total += term
    total *= xp.exp(-x2)
    total *= _TWO_OVER_SQRT_PI
    return total


def _erf_tail(x):
    """erf(x) = sign(x) (1 − erfc|x|) with Laplace's continued fraction

    erfc(a) = e^(−a²)/√π · 1/(a + (1/2)/(a + (2/2)/(a + (3/2)/(a + …)))),

    evaluated from the inside out; it converges fast for a above about 2.
    """
    xp = backend.get_array_module(x)
    a = xp.minimum(xp.abs(x), _ERF_SATURATION)  # erfc(10) ≈ 2e-45, and a² cannot overflow
    denominator = a.copy()
    for k in range(_ERFC_FRACTION_TERMS, 0, -1):
        denominator = a + (0.5 * k) / denominator
    erfc = xp.exp(-a * a) * _ONE_OVER_SQRT_PI / denominator
    return xp.copysign(1.0 - erfc, x)


def erf(x):
    """The error function erf(x) = 2/√π ∫₀ˣ e^(−t²) dt, element-wise on a NumPy or CuPy array.

    A positive-term power series serves |x| < 2.5 and a continued fraction for erfc
    the rest, each with a fixed number of terms, so it vectorises on any device.
    Keeps the sign of zero and propagates NaN; erf(±inf) = ±1.

    Args:
        x: a float array (float32 or float64).

    Returns:
        An array of x's shape and dtype, within about 2e-15 of erf(x) in float64.
    """
    xp = backend.get_array_module(x)
    x = xp.asarray(x)
    small = xp.abs(x) < _ERF_SWITCH  # False for NaN, which the tail propagates
    # Both branches run on every element, each given an argument it handles, and ``where`` picks:
    # boolean-mask indexing would make the host wait for the GPU to count the selected elements.
    series = _erf_series(xp.where(small, x, 0).astype(x.dtype, copy=False))
    tail = _erf_tail(xp.where(small, _ERF_SWITCH, x).astype(x.dtype, copy=False))
    return xp.where(small, series, tail)


# ---------------------------------------------------------------- references


@register("relu")
def relu_reference(x):
    """y = max(x, 0)."""
    return backend.get_array_module(x).maximum(x, 0)


@register("relu_grad")
def relu_grad_reference(x, y, gy):
    """gx = gy · [x > 0] (0 at x = 0)."""
    return gy * (x > 0)


@register("leaky_relu")
def leaky_relu_reference(x, alpha: float = 0.1):
    """y = x for x > 0, α·x otherwise."""
    return backend.get_array_module(x).where(x > 0, x, x * alpha)


@register("leaky_relu_grad")
def leaky_relu_grad_reference(x, y, gy, alpha: float = 0.1):
    """gx = gy for x > 0, α·gy otherwise."""
    return backend.get_array_module(x).where(x > 0, gy, gy * alpha)


@register("elu")
def elu_reference(x, alpha: float = 1.0):
    """y = x for x > 0, α·(eˣ − 1) otherwise."""
    xp = backend.get_array_module(x)
    # expm1 of min(x, 0): accurate near 0, and no overflow in the branch that is not taken
    return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0)))


@register("elu_grad")
def elu_grad_reference(x, y, gy, alpha: float = 1.0):
    """gx = gy for x > 0, gy·(y + α) = gy·α·eˣ otherwise."""
    return backend.get_array_module(x).where(x > 0, gy, gy * (y + alpha))


def _stable_sigmoid(x):
    """1 / (1 + e^(−x)) computed from e^(−|x|) ≤ 1, so no exp overflows."""
    xp = backend.get_array_module(x)
    e = xp.exp(-xp.abs(x))
    reciprocal = 1 / (1 + e)
    return xp.where(x >= 0, reciprocal, e * reciprocal)


@register("sigmoid")
def sigmoid_reference(x):
    """y = 1 / (1 + e^(−x)), without overflow for large |x|."""
    return _stable_sigmoid(x)


@register("sigmoid_grad")
def sigmoid_grad_reference(x, y, gy):
    """gx = gy · y · (1 − y)."""
    return gy * y * (1 - y)


@register("tanh")
def tanh_reference(x):
    """y = tanh(x)."""
    return backend.get_array_module(x).tanh(x)


@register("tanh_grad")
def tanh_grad_reference(x, y, gy):
    """gx = gy · (1 − y²)."""
    return gy * (1 - y * y)


@register("silu")
def silu_reference(x):
    """y = x · σ(x) (SiLU, also called swish)."""
    return x * _stable_sigmoid(x)


@register("silu_grad")
def silu_grad_reference(x, y, gy):
    """gx = gy · σ(x) · (1 + x · (1 − σ(x)))."""
    s = _stable_sigmoid(x)
    return gy * s * (1 + x * (1 - s))


@register("gelu")
def gelu_reference(x, approximate: bool = False):
    """y = x · Φ(x) with Φ(x) = (1 + erf(x/√2)) / 2, the standard normal CDF;
    with ``approximate``: y = x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³))).
    """
    xp = backend.get_array_module(x)
    if approximate:
        return 0.5 * x * (1 + xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x * x * x)))
    return 0.5 * x * (1 + erf(x * _SQRT_HALF))


@register("gelu_grad")
def gelu_grad_reference(x, y, gy, approximate: bool = False):
    """gx = gy · (Φ(x) + x · φ(x)), φ(x) = e^(−x²/2)/√(2π);
    with ``approximate``, t = tanh(u), u = √(2/π)(x + 0.044715 x³):
    gx = gy · ((1 + t)/2 + x/2 · (1 − t²) · √(2/π) · (1 + 3·0.044715 x²)).
    """
    xp = backend.get_array_module(x)
    if approximate:
        t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x * x * x))
        du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * x * x)
        return gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
    cdf = 0.5 * (1 + erf(x * _SQRT_HALF))
    pdf = _ONE_OVER_SQRT_2PI * xp.exp(-0.5 * x * x)
    return gy * (cdf + x * pdf)


@register("softmax")
def softmax_reference(x, axis: int):
    """y = e^(x − max x) / Σ e^(x − max x) along ``axis``; x any shape, y of x's shape and dtype."""
    xp = backend.get_array_module(x)
    y = x - x.max(axis=axis, keepdims=True)
    xp.exp(y, out=y)
    y /= y.sum(axis=axis, keepdims=True)
    return y


@register("log_softmax")
def log_softmax_reference(x, axis: int):
    """y = (x − m) − log Σ e^(x − m) along ``axis`` with m = max x; y of x's shape and dtype."""
    xp = backend.get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    log_total = xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    shifted -= log_total
    return shifted


# ---------------------------------------------------------------- function nodes


class Activation(Function):
    """y = f(x) for the registered element-wise activation ``op``;  gx = f'(x) · gy
    from the registered ``op + "_grad"``.  Saves x and y (both are alive anyway).
    """

    def __init__(self, op: str, **params):
        self.op, self.params = op, params

    def forward(self, x):
        y = impl(self.op, x, **self.params)
        self.x, self.y = x, y
        return y

    def backward(self, gy):
        return impl(self.op + "_grad", self.x, self.y, gy, **self.params)


class Softmax(Function):
    """y = softmax(x) along ``axis``;  gx = y · (gy − Σ gy·y).  Saves y."""

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, x):
        (self.axis,) = normalize_axes(self.axis, x.ndim)
        self.y = impl("softmax", x, self.axis)
        return self.y

    def backward(self, gy):
        y = self.y
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y = log softmax(x) along ``axis``;  gx = gy − softmax(x) · Σ gy.  Saves y."""

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, x):
        (self.axis,) = normalize_axes(self.axis, x.ndim)
        self.y = impl("log_softmax", x, self.axis)
        return self.y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


# ---------------------------------------------------------------- public functions


def relu(x) -> Tensor:
    """Rectified linear unit: y = max(x, 0) (Nair & Hinton, 2010)."""
    return Activation("relu")(x)


def leaky_relu(x, alpha: float = 0.1) -> Tensor:
    """Leaky ReLU: y = x for x > 0, α·x otherwise (Maas et al., 2013).

    Args:
        x: input tensor.
        alpha: slope for negative inputs. The default 0.1 follows the classic CNN
            course material (e.g. Stanford's CS231n); Keras defaults to 0.2 and
            PyTorch to 0.01.
    """
    return Activation("leaky_relu", alpha=float(alpha))(x)


def elu(x, alpha: float = 1.0) -> Tensor:
    """Exponential linear unit: y = x for x > 0, α·(eˣ − 1) otherwise (Clevert et al., 2015)."""
    return Activation("elu", alpha=float(alpha))(x)


def sigmoid(x) -> Tensor:
    """Logistic sigmoid y = 1 / (1 + e^(−x)), stable (no overflow) for large |x|."""
    return Activation("sigmoid")(x)


def tanh(x) -> Tensor:
    """Hyperbolic tangent."""
    return Activation("tanh")(x)


def silu(x) -> Tensor:
    """SiLU / swish: y = x · σ(x) (Elfwing et al., 2017; Ramachandran et al., 2017)."""
    return Activation("silu")(x)


swish = silu


def gelu(x, approximate: bool = False) -> Tensor:
    """Gaussian error linear unit y = x · Φ(x) (Hendrycks & Gimpel, 2016).

    Args:
        x: input tensor.
        approximate: use the tanh approximation
            x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³))) instead of the exact erf form.
    """
    return Activation("gelu", approximate=bool(approximate))(x)


def softmax(x, axis: int = -1) -> Tensor:
    """y_i = e^(x_i) / Σ_j e^(x_j) along ``axis`` (computed after subtracting the maximum).

    Shapes:
        x: any shape; y: the same shape, summing to 1 along ``axis``.
    """
    return Softmax(axis)(x)


def log_softmax(x, axis: int = -1) -> Tensor:
    """y_i = x_i − log Σ_j e^(x_j) along ``axis``, stable for large |x|.

    Shapes:
        x: any shape; y: the same shape.
    """
    return LogSoftmax(axis)(x)


def maxout(x, pieces: int, axis: int = 1) -> Tensor:
    """Maxout (Goodfellow et al., 2013): the maximum over each run of ``pieces`` consecutive
    features along ``axis``; output feature k is max(x[k·pieces], …, x[k·pieces + pieces − 1]).

    Args:
        x: input tensor.
        pieces: how many features compete in each group (at least 1).
        axis: the feature axis (1, channels-first, by default).

    Returns:
        A tensor whose ``axis`` is ``pieces`` times shorter.

    Raises:
        ValueError: when the size of ``axis`` is not divisible by ``pieces``.
    """
    x = as_tensor(x)
    (axis,) = normalize_axes(axis, x.ndim)
    if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 1:
        raise ValueError(f"maxout: pieces must be a positive integer, got {pieces!r}")
    size = x.shape[axis]
    if size % pieces:
        raise ValueError(f"maxout: axis {axis} has size {size}, which is not divisible by pieces={pieces} "
                         f"(input shape {x.shape})")
    grouped = x.shape[:axis] + (size // pieces, pieces) + x.shape[axis + 1:]
    return reduce_max(reshape(x, grouped), axis=axis + 1)
