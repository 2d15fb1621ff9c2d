"""Zero padding of the spatial axes."""
from __future__ import annotations

from typing import Any

from ..ops.shape import pad
from ..window import resolve_padding
from .base import Layer, _show


class ZeroPadding(Layer):
    """Pads the spatial axes of (N, C, *spatial) inputs with zeros.

    Args:
        padding: an int (all sides), one int per spatial axis (both sides), or
            one ``(before, after)`` pair per spatial axis.
    """

    rank = 2

    def __init__(self, padding: Any = 1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, str):
            raise ValueError(f"{self.who}: padding must be ints or (before, after) pairs, got {padding!r}")
        ones = (1,) * self.rank
        try:
            self.padding = resolve_padding(padding, ones, ones, ones, ones)
        except ValueError as error:
            raise ValueError(f"{self.who}: {error}") from None

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def call(self, x):
        return pad(x, ((0, 0), (0, 0)) + self.padding)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"{self.who}: expected input (N, C, *spatial) with {self.rank} spatial axes, "
                             f"got shape {_show(input_shape)}")
        spatial = tuple(None if s is None else s + before + after
                        for s, (before, after) in zip(input_shape[2:], self.padding))
        return tuple(input_shape[:2]) + spatial

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding]}


class ZeroPadding1D(ZeroPadding):
    """Zero padding of the length of (N, C, L) inputs; see :class:`ZeroPadding`."""
    rank = 1


class ZeroPadding2D(ZeroPadding):
    """Zero padding of height and width of (N, C, H, W) inputs; see :class:`ZeroPadding`."""
    rank = 2


class ZeroPadding3D(ZeroPadding):
    """Zero padding of the three spatial axes of (N, C, D, H, W) inputs; see :class:`ZeroPadding`."""
    rank = 3
