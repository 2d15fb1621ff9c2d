"""CUDA implementations of ``pool_forward`` and ``pool_backward`` (kernels in ``kernels/pool.cu``).

Both have the signatures of their references in :mod:`cnnkit.ops.pool`. One kernel
family serves 1-D, 2-D and 3-D pooling: the input is viewed as (N·C, D, H, W), a 2-D
input with D = 1 and a 1-D input with D = H = 1.

- Forward: one thread per output. Max pooling saves, for backward, the int32 index of
  each window's first maximum (its first NaN, if any) within its (D, H, W) plane; the
  NumPy reference saves the padded input and y and finds the maxima again. Each
  backend's backward reads only its own forward's ``saved``.
- Backward gathers: one thread per run of four input elements along W adds, for each,
  the gradients of the windows that cover it, so overlapping windows need no atomics
  and the result is deterministic. When the windows tile the input exactly (window =
  stride, no padding, e.g. 2×2 stride 2 on even sizes) one thread per window writes
  its elements instead, which needs no search at all.
- Average and L2 pooling divide by the number of real (unpadded) values in each window,
  exactly as the reference.
- float32 and float64 run on the kernels; other dtypes, dilated windows, empty arrays
  and tensors of 2^31 elements or more are left to the reference (under CuPy): the
  wrappers return :data:`~cnnkit.registry.USE_REFERENCE` and the registry runs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import backend
from ..registry import CUDA, USE_REFERENCE, register
from ..window import POOL_MODES, WindowGeometry
from .launcher import Array, Kernel, Scalar, grid_stride_blocks

THREADS = 256
BACKWARD_RUN = 4  # consecutive elements along W per backward thread (RUN in pool.cu)
_SUFFIXES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
# The kernels index elements with 32-bit arithmetic.
_MAX_ELEMENTS = 2**31 - 1

GEOMETRY_NAMES = ("planes", "D", "H", "W", "OD", "OH", "OW", "KD", "KH", "KW", "SD", "SH", "SW", "PD", "PH", "PW")
_GEOMETRY_PARAMS = tuple(Scalar(name, "int32", low=0 if name.startswith("P") else 1) for name in GEOMETRY_NAMES)


def _declare(direction: str, mode: str, suffix: str) -> Kernel:
    """direction: "forward", "backward" (the gather) or "backward_tiled" (exactly tiled windows)."""
    dtype = {"f32": "float32", "f64": "float64"}[suffix]
    if direction == "forward":
        arrays = [Array("x", dtype), Array("y", dtype)] + ([Array("argmax", "int32")] if mode == "max" else [])
    elif mode == "max":
        arrays = [Array("gy", dtype), Array("argmax", "int32"), Array("gx", dtype)]
    elif mode == "avg":
        arrays = [Array("gy", dtype), Array("gx", dtype)]
    else:
        arrays = [Array("gy", dtype), Array("x", dtype), Array("y", dtype), Array("gx", dtype)]
    return Kernel("pool.cu", f"pool_{mode}_{direction}_{suffix}", arrays + list(_GEOMETRY_PARAMS))


KERNELS = {(direction, mode, suffix): _declare(direction, mode, suffix)
           for direction in ("forward", "backward", "backward_tiled") for mode in POOL_MODES
           for suffix in ("f32", "f64")}


@dataclass(frozen=True)
class PoolSaved:
    """What the CUDA forward keeps for the CUDA backward.

    Attributes:
        dtype: the forward's dtype, which gy is cast to.
        argmax: int32 (N, C, *out) indices into each input plane (max pooling), else None.
        x, y: the contiguous input and the output (L2 pooling), else None.
    """

    dtype: np.dtype
    argmax: Any = None
    x: Any = None
    y: Any = None


def pool_dims(input_shape: tuple, geometry: WindowGeometry) -> tuple[int, ...]:
    """The kernels' 16 geometry arguments (:data:`GEOMETRY_NAMES`) for an (N, C, *spatial) input.

    Missing leading spatial axes get size 1, window 1, stride 1 and no padding, so every
    rank runs as 3-D. Only the padding before each axis matters: the output size, which
    the padding after determines, is passed explicitly.
    """
    rank = len(input_shape) - 2
    lead = 3 - rank
    spatial = (1,) * lead + tuple(input_shape[2:])
    output = (1,) * lead + geometry.output_size(input_shape[2:])
    window = (1,) * lead + tuple(geometry.window)
    stride = (1,) * lead + tuple(geometry.stride)
    before = (0,) * lead + tuple(b for b, _ in geometry.padding)
    planes = input_shape[0] * input_shape[1]
    return (planes,) + spatial + output + window + stride + before


def runs_on_kernels(dtype, input_shape: tuple, geometry: WindowGeometry) -> bool:
    """True when the kernels handle this pooling; otherwise the reference runs."""
    if np.dtype(dtype) not in _SUFFIXES or not 1 <= len(input_shape) - 2 <= 3:
        return False
    if any(d != 1 for d in geometry.dilation):
        return False
    output = input_shape[:2] + geometry.output_size(input_shape[2:])
    sizes = (int(np.prod(input_shape)), int(np.prod(output)))
    return min(output) >= 1 and 0 < sizes[0] <= _MAX_ELEMENTS and sizes[1] <= _MAX_ELEMENTS


def _check_mode(op: str, mode: str) -> None:
    if mode not in POOL_MODES:
        raise ValueError(f"{op}: mode must be one of {', '.join(map(repr, POOL_MODES))}, got {mode!r}")


def _launch(kernel: Kernel, n: int, device_index: int, args: tuple) -> None:
    kernel.launch(grid_stride_blocks(n, THREADS, device_index), (THREADS,), args)


@register("pool_forward", CUDA)
def pool_forward(x, mode: str, geometry: WindowGeometry):
    """Pooling forward on the GPU; the signature of :func:`cnnkit.ops.pool.pool_forward_reference`.

    Args:
        x: (N, C, *spatial) CuPy array, 1 to 3 spatial axes.
        mode: ``"max"``, ``"avg"`` or ``"l2"``.
        geometry: window, stride and padding (dilation 1).

    Returns:
        ``(y, saved)``: y of shape (N, C, *out) and x's dtype, and a :class:`PoolSaved`
        for :func:`pool_backward`; or :data:`~cnnkit.registry.USE_REFERENCE` for arguments
        the kernels do not take.
    """
    _check_mode("pool_forward", mode)
    if not runs_on_kernels(x.dtype, x.shape, geometry):
        return USE_REFERENCE
    cupy = backend.cupy()
    with cupy.cuda.Device(x.device.id):
        x = cupy.ascontiguousarray(x)
        y = cupy.empty(x.shape[:2] + geometry.output_size(x.shape[2:]), dtype=x.dtype)
        kernel = KERNELS["forward", mode, _SUFFIXES[x.dtype]]
        dims = pool_dims(x.shape, geometry)
        if mode == "max":
            argmax = cupy.empty(y.shape, dtype=np.int32)
            _launch(kernel, y.size, x.device.id, (x, y, argmax) + dims)
            return y, PoolSaved(x.dtype, argmax=argmax)
        _launch(kernel, y.size, x.device.id, (x, y) + dims)
        return y, PoolSaved(x.dtype, x=x, y=y) if mode == "l2" else PoolSaved(x.dtype)


@register("pool_backward", CUDA)
def pool_backward(gy, saved, input_shape: tuple, mode: str, geometry: WindowGeometry):
    """Pooling input gradient on the GPU; the signature of :func:`cnnkit.ops.pool.pool_backward_reference`.

    Args:
        gy: (N, C, *out) CuPy array, the gradient of the forward's y.
        saved: what :func:`pool_forward` returned with y.
        input_shape: the forward's input shape.
        mode, geometry: as in the forward.

    Returns:
        gx of shape ``input_shape``, gathered over every window that covers each element;
        :data:`~cnnkit.registry.USE_REFERENCE` when the forward ran the reference.
    """
    _check_mode("pool_backward", mode)
    if not isinstance(saved, PoolSaved):  # the forward ran the reference
        return USE_REFERENCE
    cupy = backend.cupy()
    with cupy.cuda.Device(gy.device.id):
        gy = cupy.ascontiguousarray(gy, dtype=saved.dtype)
        gx = cupy.empty(tuple(input_shape), dtype=saved.dtype)
        dims = pool_dims(tuple(input_shape), geometry)
        arrays = {"max": (gy, saved.argmax, gx), "avg": (gy, gx), "l2": (gy, saved.x, saved.y, gx)}[mode]
        if geometry.tiles_exactly(tuple(input_shape)[2:]):  # one thread per window
            _launch(KERNELS["backward_tiled", mode, _SUFFIXES[gx.dtype]], gy.size, gy.device.id, arrays + dims)
            return gx
        W = dims[3]
        runs = gx.size // W * -(-W // BACKWARD_RUN)  # one thread per run of 4 elements of a row
        _launch(KERNELS["backward", mode, _SUFFIXES[gx.dtype]], runs, gy.device.id, arrays + dims)
        return gx
