"""Pooling in 1, 2 or 3 spatial dimensions: max, average and L2, plus global pooling.

For each output position the window's values v_1..v_m (padding excluded) give

    max:  y = max_i v_i                    gx = gy at the first arg-max, 0 elsewhere
    avg:  y = (1/m) Σ v_i                  gx_i = gy / m
    L2:   y = sqrt((1/m) Σ v_i²)           gx_i = gy · v_i / (m · y)   (0 where y = 0)

Average and L2 pooling divide by the number of real (unpadded) values in the window,
as Keras and TensorFlow do.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..autograd import Function
from ..registry import impl, register
from ..window import POOL_MODES, WindowGeometry, make_geometry


def _window_counts(xp, input_size: tuple, geometry: WindowGeometry, dtype):
    """How many real (unpadded) values each window holds: a scalar, or (1, 1, *out) with padding."""
    if not geometry.is_padded:
        return math.prod(geometry.window)
    out = geometry.output_size(input_size)
    ones = geometry.pad(xp.ones((1, 1) + tuple(input_size), dtype=dtype))
    counts = xp.zeros((1, 1) + out, dtype=dtype)
    for tap in geometry.taps():
        counts += ones[geometry.tap_slices(tap, out)]
    return counts


@register("pool_forward")
def pool_forward_reference(x, mode: str, geometry: WindowGeometry):
    """Reference pooling forward.

    Args:
        x: (N, C, *spatial) float array.
        mode: ``"max"``, ``"avg"`` or ``"l2"``.
        geometry: window, stride and padding (dilation 1).

    Returns:
        ``(y, saved)``: y of shape (N, C, *out) and what ``pool_backward`` of the same
        backend needs (here: the padded input and y for max, whose backward finds each
        window's first maximum again; the window counts for avg; (x, y, counts) for L2).
    """
    xp = backend.get_array_module(x)
    out = geometry.output_size(x.shape[2:])
    if mode == "max":
        padded = geometry.pad(x, value=-np.inf)
        y = None
        for tap in geometry.taps():
            window = padded[geometry.tap_slices(tap, out)]
            if y is None:
                y = window.copy()
            else:
                xp.maximum(y, window, out=y)  # maximum propagates NaN
        return y, (padded, y)
    padded = geometry.pad(x)
    total = xp.zeros(x.shape[:2] + out, dtype=x.dtype)
    for tap in geometry.taps():
        window = padded[geometry.tap_slices(tap, out)]
        total += window * window if mode == "l2" else window
    counts = _window_counts(xp, x.shape[2:], geometry, x.dtype)
    y = total / counts
    if mode == "avg":
        return y, counts
    xp.sqrt(y, out=y)
    return y, (x, y, counts)


def _max_pool_backward(gy, padded, y, input_shape: tuple, geometry: WindowGeometry):
    """Route gy to the first maximum of each window, in row-major tap order.

    Storing arg-max indices costs more on the CPU than finding the maxima again:
    a tap gets the gradient where it equals the window's maximum and no earlier tap did.
    """
    xp = backend.get_array_module(gy)
    out = gy.shape[2:]
    exact = geometry.tiles_exactly(input_shape[2:])
    # Exactly tiled windows write every element once, so no zero fill and no accumulation.
    gx = xp.empty(padded.shape, dtype=gy.dtype) if exact else xp.zeros(padded.shape, dtype=gy.dtype)
    nan_outputs = xp.isnan(y)
    # NaN windows route to their first NaN. They are rare, so the CPU skips that work when a check
    # (free there) finds none; a GPU always does it rather than make the host wait for the check.
    has_nan = backend.is_cuda_array(y) or bool(nan_outputs.any())
    unclaimed = None
    for tap in geometry.taps():
        where = geometry.tap_slices(tap, out)
        hit = xp.equal(padded[where], y)
        if has_nan:
            hit |= nan_outputs & xp.isnan(padded[where])
        if unclaimed is None:
            unclaimed = ~hit
        else:
            xp.logical_and(hit, unclaimed, out=hit)
            xp.logical_xor(unclaimed, hit, out=unclaimed)
        if exact:
            xp.multiply(gy, hit, out=gx[where])
        else:
            gx[where] += gy * hit
    return geometry.crop(gx)


@register("pool_backward")
def pool_backward_reference(gy, saved, input_shape: tuple, mode: str, geometry: WindowGeometry):
    """Reference pooling input gradient, shape ``input_shape`` (see the module docstring)."""
    if mode == "max":
        padded, y = saved
        return _max_pool_backward(gy, padded, y, input_shape, geometry)
    xp = backend.get_array_module(gy)
    out = gy.shape[2:]
    gx = xp.zeros(input_shape[:2] + geometry.padded_size(input_shape[2:]), dtype=gy.dtype)
    if mode == "avg":
        share = gy / saved
        for tap in geometry.taps():
            gx[geometry.tap_slices(tap, out)] += share
    else:
        x, y, counts = saved
        safe_y = xp.where(y > 0, y, 1)
        scale = xp.where(y > 0, gy / (counts * safe_y), 0)
        padded_x = geometry.pad(x)
        for tap in geometry.taps():
            where = geometry.tap_slices(tap, out)
            gx[where] += scale * padded_x[where]
    return geometry.crop(gx)


class Pool(Function):
    """Max, average or L2 pooling over sliding windows (see the module docstring)."""

    def __init__(self, mode: str, geometry: WindowGeometry):
        self.mode, self.geometry = mode, geometry

    def forward(self, x):
        self.input_shape = x.shape
        y, self.saved = impl("pool_forward", x, self.mode, self.geometry)
        return y

    def backward(self, gy):
        return impl("pool_backward", gy, self.saved, self.input_shape, self.mode, self.geometry)


def pool(x, mode: str, pool_size, strides=None, padding="valid"):
    """Pool ``x`` (N, C, *spatial) with windows of ``pool_size``; rank from ``x``.

    Args:
        mode: ``"max"``, ``"avg"`` or ``"l2"``.
        pool_size: an int or one int per spatial axis.
        strides: defaults to ``pool_size`` (non-overlapping windows), as in Keras.
        padding: ``"valid"``, ``"same"``, an int, a tuple or ``(before, after)`` pairs;
            padding never counts as a value.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"pooling mode must be one of {', '.join(POOL_MODES)}, got {mode!r}")
    rank = x.ndim - 2
    who = f"{mode}_pool{rank}d"
    if rank not in (1, 2, 3):
        raise ValueError(f"{who}: expected input (N, C, *spatial) with 1 to 3 spatial axes, got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{who}: expected a floating-point input, got dtype {x.dtype}")
    geometry = make_geometry(rank, pool_size, pool_size if strides is None else strides, padding, 1, x.shape[2:])
    for (before, after), k in zip(geometry.padding, geometry.window):
        if max(before, after) >= k:
            raise ValueError(f"{who}: padding {geometry.padding} must be smaller than the pool size "
                             f"{geometry.window} on every axis, so no window is all padding")
    geometry.check_fits(x.shape[2:], who)
    return Pool(mode, geometry)(x)


def max_pool(x, pool_size, strides=None, padding="valid"):
    """Max pooling of any rank; the gradient flows to the first maximum of each window."""
    return pool(x, "max", pool_size, strides, padding)


def avg_pool(x, pool_size, strides=None, padding="valid"):
    """Average pooling of any rank; padding is excluded from the average."""
    return pool(x, "avg", pool_size, strides, padding)


def l2_pool(x, pool_size, strides=None, padding="valid"):
    """L2 pooling: the square root of the mean of squares over each window."""
    return pool(x, "l2", pool_size, strides, padding)


def global_avg_pool(x, keepdims: bool = False):
    """Mean over all spatial axes: (N, C, *spatial) -> (N, C)."""
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=keepdims)


def global_max_pool(x, keepdims: bool = False):
    """Max over all spatial axes: (N, C, *spatial) -> (N, C)."""
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=keepdims)
