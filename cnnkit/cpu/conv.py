"""Stride-1 convolution on the CPU as one large matrix product per pass ("wide rows").

Flatten the padded input of each (sample, channel) to one row. For stride 1 the
input a kernel tap reads for output position o sits at ``o_flat + offset(tap)`` in
that row, where ``o_flat`` indexes the *padded* grid. So if outputs are computed on
the padded grid's row width (a few extra "wide" columns per row that are thrown
away), every tap's columns are one contiguous slice of the row: im2col becomes a
handful of long copies, and forward, input gradient and filter gradient are each a
single GEMM over all samples (instead of one small GEMM per sample). This pays where
im2col's copies, not the products, take the time; with few input channels the extra
columns cost more than they save, so such layers keep the reference. The measurements
behind both choices are in bench/README.md ("Why the CPU backend looks as it does").

Shapes: cols is (C · taps, N · L) where L = O_1 · P_2 · ... · P_r is the wide length
of one sample; a gradient on the wide grid is zero in the extra columns, so they
contribute nothing to the weight or input gradients.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..registry import CPU, USE_REFERENCE, register
from ..window import WindowGeometry
from .sharded import conv_backward_data_sharded

# Below this many rows (input channels × kernel taps) per column the wide columns cost more than they save.
MIN_COLUMN_LENGTH = 32


def _uses_wide_rows(x_shape: tuple, W_shape: tuple, geometry: WindowGeometry, groups: int) -> bool:
    return (groups == 1 and all(s == 1 for s in geometry.stride)
            and W_shape[1] * math.prod(W_shape[2:]) >= MIN_COLUMN_LENGTH)


@dataclass(frozen=True)
class WideGrid:
    """Where one sample's wide outputs and each tap's input slice lie in a flattened padded row."""

    padded: tuple   # padded spatial size, with one extra leading-axis row so every slice stays in bounds
    out: tuple      # true output size
    offsets: tuple  # start of each tap's slice, taps in row-major order

    @classmethod
    def of(cls, input_size: tuple, geometry: WindowGeometry) -> "WideGrid":
        padded = geometry.padded_size(input_size)
        out = geometry.output_size(input_size)
        strides = [math.prod(padded[axis + 1:]) for axis in range(len(padded))]
        offsets = tuple(sum(t * d * s for t, d, s in zip(tap, geometry.dilation, strides))
                        for tap in geometry.taps())
        return cls((padded[0] + 1,) + padded[1:], out, offsets)

    @property
    def length(self) -> int:
        """L: the wide output length of one sample (the true output rows at the padded row width)."""
        return self.out[0] * math.prod(self.padded[1:])

    @property
    def wide_shape(self) -> tuple:
        return (self.out[0],) + self.padded[1:]

    def true_outputs(self) -> tuple:
        """Index of the true outputs inside the wide grid (the extra columns dropped)."""
        return tuple(slice(0, size) for size in self.out)


@dataclass
class WideSaved:
    cols: np.ndarray
    grid: WideGrid


def _columns(x, grid: WideGrid, geometry: WindowGeometry):
    """(C · taps, N · L): each tap's slice of every flattened padded sample row."""
    N, C = x.shape[:2]
    padded = np.zeros((N, C) + grid.padded, dtype=x.dtype)
    padded[(slice(None), slice(None)) + geometry.interior(x.shape[2:])] = x
    rows = padded.reshape(N, C, -1)
    L = grid.length
    cols = np.empty((C, len(grid.offsets), N, L), dtype=x.dtype)
    for tap, offset in enumerate(grid.offsets):
        cols[:, tap] = rows[:, :, offset:offset + L].transpose(1, 0, 2)
    return cols.reshape(C * len(grid.offsets), N * L)


def _wide_gradient(gy, grid: WideGrid):
    """gy (N, F, *out) laid out as (F, N · L) on the wide grid, zero in the extra columns."""
    N, F = gy.shape[:2]
    wide = np.zeros((F, N) + grid.wide_shape, dtype=gy.dtype)
    wide[(slice(None), slice(None)) + grid.true_outputs()] = gy.swapaxes(0, 1)
    return wide.reshape(F, N * grid.length)


@register("conv_forward", CPU)
def conv_forward_wide(x, W, b, geometry: WindowGeometry, groups: int):
    if not _uses_wide_rows(x.shape, W.shape, geometry, groups):
        return USE_REFERENCE
    N, F = x.shape[0], W.shape[0]
    grid = WideGrid.of(x.shape[2:], geometry)
    cols = _columns(x, grid, geometry)
    wide = (W.reshape(F, -1) @ cols).reshape((F, N) + grid.wide_shape)
    y = np.ascontiguousarray(wide[(slice(None), slice(None)) + grid.true_outputs()].swapaxes(0, 1))
    if b is not None:
        y += b.reshape((1, F) + (1,) * geometry.rank)
    return y, WideSaved(cols, grid)


@register("conv_backward_filter", CPU)
def conv_backward_filter_wide(gy, x, saved, W_shape: tuple, geometry: WindowGeometry, groups: int):
    if not isinstance(saved, WideSaved):  # the forward ran the reference
        return USE_REFERENCE
    return (_wide_gradient(gy, saved.grid) @ saved.cols.T).reshape(W_shape)


@register("conv_backward_data", CPU)
def conv_backward_data_wide(gy, W, input_shape: tuple, geometry: WindowGeometry, groups: int):
    if not _uses_wide_rows(input_shape, W.shape, geometry, groups):
        return conv_backward_data_sharded(gy, W, input_shape, geometry, groups)
    N, C = input_shape[:2]
    grid = WideGrid.of(input_shape[2:], geometry)
    L, taps = grid.length, len(grid.offsets)
    gcols = (W.reshape(W.shape[0], -1).T @ _wide_gradient(gy, grid)).reshape(C, taps, N, L)
    padded = np.zeros((N, C, math.prod(grid.padded)), dtype=gy.dtype)
    for tap, offset in enumerate(grid.offsets):
        padded[:, :, offset:offset + L] += gcols[:, tap].transpose(1, 0, 2)
    padded = padded.reshape((N, C) + grid.padded)
    return padded[(slice(None), slice(None)) + geometry.interior(input_shape[2:])]
