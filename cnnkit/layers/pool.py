"""Pooling layers of rank 1, 2 and 3: max, average, L2, and global pooling."""
from __future__ import annotations

from typing import Any

from ..ops.pool import global_avg_pool, global_max_pool, pool
from ..window import make_geometry, normalize_tuple
from .base import Layer, _show
from .conv import _checked_padding


class Pooling(Layer):
    """Pools each channel over windows of ``pool_size`` (see :func:`cnnkit.ops.pool.pool`).

    Args:
        pool_size: an int or one int per spatial axis (2 by default).
        strides: defaults to ``pool_size``: non-overlapping windows, as in Keras.
        padding: ``"valid"``, ``"same"``, an int or a tuple; padding never counts as a value.
    """

    rank = 2
    mode = "max"

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: Any = "valid", **kwargs):
        super().__init__(**kwargs)
        try:
            self.pool_size = normalize_tuple(pool_size, self.rank, "pool_size")
            self.strides = self.pool_size if strides is None else normalize_tuple(strides, self.rank, "strides")
        except ValueError as error:
            raise ValueError(f"{self.who}: {error}") from None
        self.padding = _checked_padding(padding, self.rank, self.who)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def call(self, x):
        return pool(x, self.mode, self.pool_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"{self.who}: expected input (N, C, *spatial) with {self.rank} spatial axes, "
                             f"got shape {_show(input_shape)}")
        spatial = input_shape[2:]
        if any(s is None for s in spatial):
            return tuple(input_shape[:2]) + (None,) * self.rank
        geometry = make_geometry(self.rank, self.pool_size, self.strides, self.padding, 1, spatial)
        return tuple(input_shape[:2]) + geometry.check_fits(spatial, self.who)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding}


class MaxPool1D(Pooling):
    """Maximum over each window of a (N, C, L) input."""
    rank, mode = 1, "max"


class MaxPool2D(Pooling):
    """Maximum over each window of a (N, C, H, W) input."""
    rank, mode = 2, "max"


class MaxPool3D(Pooling):
    """Maximum over each window of a (N, C, D, H, W) input."""
    rank, mode = 3, "max"


class AvgPool1D(Pooling):
    """Mean over each window of a (N, C, L) input (padding not counted)."""
    rank, mode = 1, "avg"


class AvgPool2D(Pooling):
    """Mean over each window of a (N, C, H, W) input (padding not counted)."""
    rank, mode = 2, "avg"


class AvgPool3D(Pooling):
    """Mean over each window of a (N, C, D, H, W) input (padding not counted)."""
    rank, mode = 3, "avg"


class L2Pool1D(Pooling):
    """Square root of the mean of squares over each window."""
    rank, mode = 1, "l2"


class L2Pool2D(Pooling):
    """Square root of the mean of squares over each window."""
    rank, mode = 2, "l2"


class L2Pool3D(Pooling):
    """Square root of the mean of squares over each window."""
    rank, mode = 3, "l2"


class GlobalPooling(Layer):
    """Reduces every spatial axis: (N, C, *spatial) -> (N, C), or (N, C, 1, ...) with keepdims."""

    rank = 2
    mode = "avg"

    def __init__(self, keepdims: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.keepdims = keepdims

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def call(self, x):
        reduce = global_max_pool if self.mode == "max" else global_avg_pool
        return reduce(x, keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"{self.who}: expected input (N, C, *spatial) with {self.rank} spatial axes, "
                             f"got shape {_show(input_shape)}")
        return tuple(input_shape[:2]) + ((1,) * self.rank if self.keepdims else ())

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalAveragePooling1D(GlobalPooling):
    """Mean over the length: (N, C, L) -> (N, C)."""
    rank, mode = 1, "avg"


class GlobalAveragePooling2D(GlobalPooling):
    """Mean over height and width: (N, C, H, W) -> (N, C)."""
    rank, mode = 2, "avg"


class GlobalAveragePooling3D(GlobalPooling):
    """Mean over depth, height and width: (N, C, D, H, W) -> (N, C)."""
    rank, mode = 3, "avg"


class GlobalMaxPooling1D(GlobalPooling):
    """Maximum over the length: (N, C, L) -> (N, C)."""
    rank, mode = 1, "max"


class GlobalMaxPooling2D(GlobalPooling):
    """Maximum over height and width: (N, C, H, W) -> (N, C)."""
    rank, mode = 2, "max"


class GlobalMaxPooling3D(GlobalPooling):
    """Maximum over depth, height and width: (N, C, D, H, W) -> (N, C)."""
    rank, mode = 3, "max"


# The other names Keras users type for the same layers.
MaxPooling1D, MaxPooling2D, MaxPooling3D = MaxPool1D, MaxPool2D, MaxPool3D
AveragePooling1D, AveragePooling2D, AveragePooling3D = AvgPool1D, AvgPool2D, AvgPool3D
GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = (GlobalAveragePooling1D, GlobalAveragePooling2D,
                                                     GlobalAveragePooling3D)
GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D
