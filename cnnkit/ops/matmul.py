"""Matrix products: the general ``matmul`` and the fully connected ``linear`` op."""
from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..registry import impl, register
from .math import sum_to_shape


@register("gemm")
def gemm_reference(a, b, transpose_a: bool = False, transpose_b: bool = False):
    """C = op(A) · op(B) for 2-D arrays, op being an optional transpose (BLAS NN, NT, TN)."""
    return (a.T if transpose_a else a) @ (b.T if transpose_b else b)


LINEAR_ACTIVATIONS = ("none", "relu")


@register("gemm_bias_act")
def gemm_bias_act_reference(a, b, bias=None, activation: str = "none"):
    """C = act(A · B + bias) for 2-D A (M, K) and B (K, N), bias (N,) or None.

    ``activation`` is "none" or "relu" (relu keeps NaN, as ``maximum(x, 0)`` does).
    The GPU fuses bias and activation into the product's epilogue.
    """
    c = a @ b
    if bias is not None:
        c += bias
    if activation == "relu":
        backend.get_array_module(c).maximum(c, 0, out=c)
    return c


def _swap_last(x):
    return x.swapaxes(-1, -2)


class MatMul(Function):
    """y = a @ b (NumPy semantics, batched over leading axes);
    ga = gy @ bᵀ,  gb = aᵀ @ gy, each summed back over broadcast batch axes.  Saves a and b.
    """

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul: both operands need at least 2 dimensions, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}")
        self.a, self.b = a, b
        if a.ndim == 2 and b.ndim == 2:
            return impl("gemm", a, b)
        return backend.get_array_module(a, b).matmul(a, b)

    def backward(self, gy):
        a, b = self.a, self.b
        if a.ndim == 2 and b.ndim == 2:
            ga = impl("gemm", gy, b, transpose_b=True) if self.needs_grad[0] else None
            gb = impl("gemm", a, gy, transpose_a=True) if self.needs_grad[1] else None
            return ga, gb
        xp = backend.get_array_module(gy)
        ga = sum_to_shape(xp.matmul(gy, _swap_last(b)), a.shape) if self.needs_grad[0] else None
        gb = sum_to_shape(xp.matmul(_swap_last(a), gy), b.shape) if self.needs_grad[1] else None
        return ga, gb


class Linear(Function):
    """y = act(x W + b) over the last axis of x (a fully connected layer), act ∈ {none, relu}.

    With z = x W + b and gz = gy · [y > 0] for relu (gz = gy otherwise):
    gx = gz Wᵀ,  gW = xᵀ gz,  gb = Σ_rows gz, with x flattened to rows of its last axis.
    Saves x, W, and y for relu.
    """

    def __init__(self, activation: str = "none"):
        self.activation = activation

    def forward(self, x, W, b=None):
        if x.shape[-1] != W.shape[0]:
            raise ValueError(f"linear: input has {x.shape[-1]} features on its last axis, "
                             f"but the weight expects {W.shape[0]} (weight shape {W.shape})")
        self.x_shape = x.shape
        self.x2 = x.reshape(-1, x.shape[-1])
        self.W = W
        y = impl("gemm_bias_act", self.x2, W, b, self.activation)
        if self.activation == "relu":
            self.y2 = y
        return y.reshape(x.shape[:-1] + (W.shape[1],))

    def backward(self, gy):
        gy2 = gy.reshape(-1, gy.shape[-1])
        if self.activation == "relu":
            gy2 = gy2 * (self.y2 > 0)
        gx = impl("gemm", gy2, self.W, transpose_b=True).reshape(self.x_shape) if self.needs_grad[0] else None
        gW = impl("gemm", self.x2, gy2, transpose_a=True) if self.needs_grad[1] else None
        gb = gy2.sum(axis=0) if len(self.needs_grad) > 2 and self.needs_grad[2] else None
        return (gx, gW, gb)[: len(self.needs_grad)]


def matmul(a, b):
    """Matrix product with NumPy's batching rules (both operands at least 2-D)."""
    return MatMul()(a, b)


def linear(x, W, b=None, activation: str = "none"):
    """y = act(x W + b) over the last axis of x; ``activation`` is "none" or "relu" (fused).

    Shapes:
        x: (..., in_features); W: (in_features, out_features); b: (out_features,).
    """
    if activation not in LINEAR_ACTIVATIONS:
        raise ValueError(f"linear: activation must be one of {LINEAR_ACTIVATIONS}, got {activation!r}")
    if b is None:
        return Linear(activation)(x, W)
    return Linear(activation)(x, W, b)
