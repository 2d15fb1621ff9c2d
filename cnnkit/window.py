"""Sliding windows (convolution and pooling, 1-D to 3-D): geometry, shape checks and im2col.

The ops and the backends that compute them (:mod:`cnnkit.cpu`, :mod:`cnnkit.cuda`) share
this module, so it imports nothing of cnnkit but :mod:`cnnkit.backend`.

Along each spatial axis a window of ``k`` taps, ``dilation`` apart, slides with
``stride`` over the input padded by ``(before, after)``; the output size is

    O = floor((I + before + after - dilation·(k - 1) - 1) / stride) + 1

(the CS231n formula (W - F + 2P)/S + 1, generalised to dilation and uneven padding).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Sequence

from . import backend

# How a pooling window's values are combined: maximum, mean, or root of the mean square.
POOL_MODES = ("max", "avg", "l2")


def normalize_tuple(value, rank: int, name: str) -> tuple:
    """An int or a sequence of ``rank`` positive ints, as a tuple of ``rank`` ints."""
    if isinstance(value, int):
        value = (value,) * rank
    value = tuple(value)
    if len(value) != rank or not all(isinstance(v, int) and v >= 1 for v in value):
        raise ValueError(f"{name} must be a positive int or a tuple of {rank} positive ints, got {value!r}")
    return value


def resolve_padding(padding, input_size: Sequence[int], window: Sequence[int], stride: Sequence[int],
                    dilation: Sequence[int]) -> tuple:
    """Padding as ``((before, after), ...)`` per spatial axis.

    Args:
        padding: ``"valid"`` (none), ``"same"`` (output size ceil(I / stride), the
            extra pixel going after, as in Keras/TensorFlow), an int, a tuple of ints
            (symmetric per axis) or a tuple of ``(before, after)`` pairs.
    """
    rank = len(window)
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0),) * rank
        if mode == "same":
            pairs = []
            for size, k, s, d in zip(input_size, window, stride, dilation):
                out = -(-size // s)
                total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
                pairs.append((total // 2, total - total // 2))
            return tuple(pairs)
        raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, got {padding!r}")
    if isinstance(padding, int):
        padding = (padding,) * rank
    padding = tuple(padding)
    if len(padding) != rank:
        raise ValueError(f"padding must give {rank} values (one per spatial axis), got {padding!r}")
    pairs = tuple(tuple(p) if isinstance(p, (tuple, list)) else (p, p) for p in padding)
    if not all(len(p) == 2 and all(isinstance(v, int) and v >= 0 for v in p) for p in pairs):
        raise ValueError(f"padding values must be non-negative ints or (before, after) pairs, got {padding!r}")
    return pairs


@dataclass(frozen=True)
class WindowGeometry:
    """How a window of ``window`` taps slides over the spatial axes.

    Attributes:
        window: taps per spatial axis (kernel or pool size).
        stride: step per spatial axis.
        padding: ``(before, after)`` per spatial axis.
        dilation: spacing between taps per spatial axis.
    """

    window: tuple
    stride: tuple
    padding: tuple
    dilation: tuple

    @property
    def rank(self) -> int:
        return len(self.window)

    def output_size(self, input_size: Sequence[int]) -> tuple:
        return tuple(
            (size + before + after - d * (k - 1) - 1) // s + 1
            for size, k, s, (before, after), d in zip(input_size, self.window, self.stride, self.padding,
                                                      self.dilation)
        )

    def check_fits(self, input_size: Sequence[int], who: str) -> tuple:
        """The output size, or a ValueError naming ``who`` and the numbers that do not fit."""
        output = self.output_size(input_size)
        if min(output) < 1:
            raise ValueError(
                f"{who}: the window does not fit the input: spatial input size {tuple(input_size)}, "
                f"window {self.window}, stride {self.stride}, padding {self.padding}, dilation {self.dilation} "
                f"give output size {output} (each (I + pad_before + pad_after - dilation·(k-1) - 1)/stride + 1 "
                f"must be at least 1)"
            )
        return output

    @property
    def is_padded(self) -> bool:
        return any(before or after for before, after in self.padding)

    def tiles_exactly(self, input_size: Sequence[int]) -> bool:
        """Windows neither overlap nor leave gaps nor need padding: every input element is in one window."""
        return not self.is_padded and all(
            k == s and size % k == 0 for size, k, s in zip(input_size, self.window, self.stride))

    def taps(self) -> Iterator[tuple]:
        """Every tap offset of the window, in row-major order."""
        return itertools.product(*(range(k) for k in self.window))

    def tap_slices(self, tap: tuple, output_size: Sequence[int]) -> tuple:
        """Index of the padded input elements that tap ``tap`` reads for every output position."""
        spatial = tuple(
            slice(t * d, t * d + s * (o - 1) + 1, s)
            for t, d, s, o in zip(tap, self.dilation, self.stride, output_size)
        )
        return (slice(None), slice(None)) + spatial

    def padded_size(self, input_size: Sequence[int]) -> tuple:
        """The spatial size of the input once padded."""
        return tuple(size + before + after for size, (before, after) in zip(input_size, self.padding))

    def interior(self, input_size: Sequence[int]) -> tuple:
        """Where the unpadded input lies inside the padded spatial grid."""
        return tuple(slice(before, before + size) for (before, _), size in zip(self.padding, input_size))

    def pad(self, x, value: float = 0.0):
        """``x`` (N, C, *spatial) padded on its spatial axes."""
        if not self.is_padded:
            return x
        xp = backend.get_array_module(x)
        return xp.pad(x, ((0, 0), (0, 0)) + self.padding, mode="constant", constant_values=value)

    def crop(self, x_padded):
        """Undo :meth:`pad`."""
        if not self.is_padded:
            return x_padded
        input_size = tuple(size - before - after for (before, after), size in zip(self.padding, x_padded.shape[2:]))
        return x_padded[(slice(None), slice(None)) + self.interior(input_size)]


def make_geometry(rank: int, window, stride, padding, dilation, input_size: Sequence[int]) -> WindowGeometry:
    """Normalise user arguments (ints, tuples, 'same'/'valid') into a :class:`WindowGeometry`."""
    window = normalize_tuple(window, rank, "kernel/pool size")
    stride = normalize_tuple(stride, rank, "strides")
    dilation = normalize_tuple(dilation, rank, "dilation_rate")
    return WindowGeometry(window, stride, resolve_padding(padding, input_size, window, stride, dilation), dilation)


def im2col(x, geometry: WindowGeometry):
    """Gather every receptive field: (N, C, *spatial) -> cols of shape (C, *window, N, *out).

    Channels and taps lead and the batch follows, so that for each group the columns
    are one C-contiguous (C·window / groups, N·out) matrix: every product of the reference
    convolution is then a plain GEMM on it, with no transposed copy (CuPy copies a transposed
    operand of a batched product whole).
    """
    xp = backend.get_array_module(x)
    out = geometry.output_size(x.shape[2:])
    padded = geometry.pad(x)
    cols = xp.empty((x.shape[1],) + geometry.window + (x.shape[0],) + out, dtype=x.dtype)
    for tap in geometry.taps():
        cols[(slice(None),) + tap] = padded[geometry.tap_slices(tap, out)].swapaxes(0, 1)
    return cols


def col2im(cols, input_shape: tuple, geometry: WindowGeometry):
    """Scatter-add columns (C, *window, N, *out) back onto the input grid: the adjoint of :func:`im2col`."""
    xp = backend.get_array_module(cols)
    out = cols.shape[2 + geometry.rank:]
    padded = xp.zeros(input_shape[:2] + geometry.padded_size(input_shape[2:]), dtype=cols.dtype)
    for tap in geometry.taps():
        padded[geometry.tap_slices(tap, out)] += cols[(slice(None),) + tap].swapaxes(0, 1)
    return geometry.crop(padded)


def check_conv_shapes(x_shape: tuple, W_shape: tuple, b_shape: tuple | None, groups: int, who: str) -> None:
    """Raise a ValueError naming ``who`` when x, W, b and groups do not fit together."""
    rank = len(W_shape) - 2
    if rank not in (1, 2, 3):
        raise ValueError(f"{who}: the weight must have shape (filters, channels/groups, *kernel) with 1 to 3 "
                         f"spatial axes, got shape {W_shape}")
    if len(x_shape) != rank + 2:
        layout = {1: "(N, C, W)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[rank]
        raise ValueError(f"{who}: expected input of rank {rank + 2} {layout}, got shape {x_shape}")
    channels, filters = x_shape[1], W_shape[0]
    if not isinstance(groups, int) or groups < 1 or channels % groups or filters % groups:
        raise ValueError(f"{who}: groups={groups} must divide both the input channels ({channels}) "
                         f"and the filters ({filters})")
    if W_shape[1] * groups != channels:
        raise ValueError(f"{who}: input has {channels} channels but the weight expects "
                         f"{W_shape[1] * groups} (weight shape {W_shape}, groups={groups})")
    if b_shape is not None and b_shape != (filters,):
        raise ValueError(f"{who}: bias must have shape ({filters},), got {b_shape}")
