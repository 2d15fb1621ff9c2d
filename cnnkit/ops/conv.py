"""Convolution in 1, 2 or 3 spatial dimensions, with stride, padding, dilation and groups.

As in every deep-learning framework, "convolution" is cross-correlation:

    y[n, f, o] = b[f] + Σ_{c ∈ group(f)} Σ_k W[f, c, k] · x_pad[n, c, o·stride + k·dilation]

with x of shape (N, C, *spatial), W of shape (F, C / groups, *kernel) and y of shape
(N, F, *out). The references lower it to matrix products (im2col): each output
position's receptive field becomes a column, so the forward pass, the input
gradient ("backward data") and the weight gradient ("backward filter") are each one
GEMM per group plus a gather (im2col) or a scatter-add (col2im). On the GPU the
registry swaps in implicit-GEMM CUDA kernels with the same signatures.
"""
from __future__ import annotations

import math

from .. import backend
from ..autograd import Function
from ..registry import impl, register
from ..window import WindowGeometry, check_conv_shapes, col2im, im2col, make_geometry


def grouped_columns(x, geometry: WindowGeometry, groups: int):
    """The im2col matrix of each group: (groups, C / groups · window, N · out), C-contiguous."""
    cols = im2col(x, geometry)
    return cols.reshape(groups, -1, x.shape[0] * math.prod(cols.shape[2 + geometry.rank:]))


def _grouped_gradient(gy, groups: int, positions_last: bool):
    """gy (N, F, *out) per group, copied once into the layout a plain GEMM takes:
    (groups, F / groups, N · out), or (groups, N · out, F / groups) when ``positions_last`` is False."""
    xp = backend.get_array_module(gy)
    N, F = gy.shape[:2]
    per_group = gy.reshape(N, groups, F // groups, -1)
    order = (1, 2, 0, 3) if positions_last else (1, 0, 3, 2)
    return xp.ascontiguousarray(per_group.transpose(order)).reshape(
        (groups, F // groups, -1) if positions_last else (groups, -1, F // groups))


@register("conv_forward")
def conv_forward_reference(x, W, b, geometry: WindowGeometry, groups: int):
    """Reference convolution forward.

    Args:
        x: (N, C, *spatial) float array.
        W: (F, C / groups, *window) float array of x's dtype.
        b: (F,) array or None.
        geometry: stride, padding, dilation (see :class:`WindowGeometry`).
        groups: C and F are split into this many independent groups.

    Returns:
        ``(y, saved)``: y of shape (N, F, *out) and what ``conv_backward_filter`` of the
        same backend needs (here :func:`grouped_columns`).
    """
    xp = backend.get_array_module(x)
    N, F = x.shape[0], W.shape[0]
    out = geometry.output_size(x.shape[2:])
    cols = grouped_columns(x, geometry, groups)
    y_by_filter = xp.matmul(W.reshape(groups, F // groups, -1), cols)  # (groups, F / groups, N · out)
    y = xp.ascontiguousarray(y_by_filter.reshape((F, N) + out).swapaxes(0, 1))
    if b is not None:
        y += b.reshape((1, F) + (1,) * geometry.rank)
    return y, cols


@register("conv_backward_data")
def conv_backward_data_reference(gy, W, input_shape: tuple, geometry: WindowGeometry, groups: int):
    """Reference input gradient: gx = col2im(Wᵀ · gy), shape ``input_shape``."""
    xp = backend.get_array_module(gy)
    F = W.shape[0]
    W_t = W.reshape(groups, F // groups, -1).swapaxes(-1, -2)  # small: the copy CuPy makes is W-sized
    gcols = xp.matmul(W_t, _grouped_gradient(gy, groups, positions_last=True))
    return col2im(gcols.reshape(input_shape[1:2] + geometry.window + (gy.shape[0],) + gy.shape[2:]),
                  input_shape, geometry)


@register("conv_backward_filter")
def conv_backward_filter_reference(gy, x, saved, W_shape: tuple, geometry: WindowGeometry, groups: int):
    """Reference weight gradient: gW = gy · colsᵀ summed over batch and positions, shape ``W_shape``.

    Computed as (cols · gyᵀ)ᵀ per group: the columns, the large operand, enter the
    product as they are, and only gy (once) and the small result are rearranged.
    ``saved`` is what :func:`conv_forward_reference` returned, or None (a forward computed
    elsewhere), in which case the columns are rebuilt from x.
    """
    xp = backend.get_array_module(gy)
    if saved is None:
        saved = grouped_columns(x, geometry, groups)
    gW_t = xp.matmul(saved, _grouped_gradient(gy, groups, positions_last=False))  # (groups, C/groups·window, F/groups)
    return xp.ascontiguousarray(gW_t.swapaxes(-1, -2)).reshape(W_shape)


class Convolution(Function):
    """N-d grouped convolution (see the module docstring for the formula).

    gx = backward-data(gy, W), gW = backward-filter(gy, x), gb = Σ gy over batch and space.
    Saves x, W and the forward's implementation-specific workspace.
    """

    def __init__(self, geometry: WindowGeometry, groups: int):
        self.geometry, self.groups = geometry, groups

    def forward(self, x, W, b=None):
        self.x, self.W = x, W
        y, self.saved = impl("conv_forward", x, W, b, self.geometry, self.groups)
        return y

    def backward(self, gy):
        gx = gW = gb = None
        if self.needs_grad[0]:
            gx = impl("conv_backward_data", gy, self.W, self.x.shape, self.geometry, self.groups)
        if self.needs_grad[1]:
            gW = impl("conv_backward_filter", gy, self.x, self.saved, self.W.shape, self.geometry, self.groups)
        if len(self.needs_grad) > 2 and self.needs_grad[2]:
            gb = gy.sum(axis=(0,) + tuple(range(2, gy.ndim)))
        return (gx, gW, gb)[: len(self.needs_grad)]


def conv(x, W, b=None, stride=1, padding="valid", dilation=1, groups: int = 1):
    """Convolution of rank 1, 2 or 3 (taken from ``W``), as in the module docstring.

    Args:
        x: input tensor (N, C, *spatial).
        W: weight tensor (F, C / groups, *kernel).
        b: optional bias tensor (F,).
        stride, dilation: an int or one int per spatial axis.
        padding: ``"valid"``, ``"same"``, an int, a tuple, or ``(before, after)`` pairs.
        groups: split channels into independent groups (``groups = C`` is depthwise).

    Returns:
        A tensor (N, F, *out) with out = (I + pad - dilation·(k - 1) - 1) / stride + 1.
    """
    return _conv(W.ndim - 2, x, W, b, stride, padding, dilation, groups)


def conv1d(x, W, b=None, stride=1, padding="valid", dilation=1, groups: int = 1):
    """1-D convolution: x (N, C, L), W (F, C / groups, k). See :func:`conv`."""
    return _conv(1, x, W, b, stride, padding, dilation, groups)


def conv2d(x, W, b=None, stride=1, padding="valid", dilation=1, groups: int = 1):
    """2-D convolution: x (N, C, H, W), W (F, C / groups, kh, kw). See :func:`conv`."""
    return _conv(2, x, W, b, stride, padding, dilation, groups)


def conv3d(x, W, b=None, stride=1, padding="valid", dilation=1, groups: int = 1):
    """3-D convolution: x (N, C, D, H, W), W (F, C / groups, kd, kh, kw). See :func:`conv`."""
    return _conv(3, x, W, b, stride, padding, dilation, groups)


def _conv(rank: int, x, W, b, stride, padding, dilation, groups: int):
    who = f"conv{rank}d"
    if W.ndim != rank + 2:
        raise ValueError(f"{who}: the weight must have shape (filters, channels/groups, *kernel) with "
                         f"{rank} spatial axes, got shape {W.shape}")
    check_conv_shapes(x.shape, W.shape, None if b is None else b.shape, groups, who)
    if x.dtype != W.dtype:
        raise TypeError(f"{who}: input dtype {x.dtype} differs from weight dtype {W.dtype}")
    geometry = make_geometry(rank, W.shape[2:], stride, padding, dilation, x.shape[2:])
    geometry.check_fits(x.shape[2:], who)
    if b is None:
        return Convolution(geometry, groups)(x, W)
    return Convolution(geometry, groups)(x, W, b)
