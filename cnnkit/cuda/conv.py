"""CUDA implementations of the convolution ops (kernels in ``kernels/conv.cu``).

``conv_forward``, ``conv_backward_data`` and ``conv_backward_filter`` have the signatures
of their references in :mod:`cnnkit.ops.conv`. Every rank runs on the same kernels in
3-D form (a 2-D problem with D = 1, a 1-D one with D = H = 1; see
:class:`~cnnkit.cuda.conv_plan.ConvShape`).

How a pass is computed (float32):

- Depthwise convolutions (groups = C > 1, any depth multiplier) run direct kernels: one
  block per spatial tile, channel and sample, the input tile and its halo in shared
  memory. Backward-filter leaves one partial sum per block that a second kernel adds
  up in a fixed order.
- Every other convolution is an implicit GEMM with no im2col buffer: the operand tiles
  are gathered from x, gy and W on the fly. :func:`~cnnkit.cuda.conv_plan.plan_gemm`
  picks the block tile and, for problems too small to fill the GPU (few output tiles,
  long K), splits K into slices whose partial results are summed in a fixed order by
  ``conv_splitk_reduce_f32`` (which also adds the bias). Backward-filter's K is the
  batch times the output positions, so it is usually split. Results are deterministic:
  no atomics anywhere.
- The forward returns ``saved = None``: backward-filter reads x itself.

Other dtypes (float64 for the gradient checks, mixed dtypes), empty arrays and problems
whose offsets would not fit in 32 bits are left to the reference: a wrapper returns
``USE_REFERENCE`` and the registry runs the reference under CuPy (cuBLAS for its
products). CuPy compiles the kernels with ``-ftz=true``: denormals flush to zero.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .. import backend
from ..registry import CUDA, USE_REFERENCE, register
from ..window import WindowGeometry, check_conv_shapes
from .conv_plan import PASSES, TILES, ConvShape, GemmPlan, plan_depthwise, plan_gemm
from .launcher import Array, Kernel, Scalar, describe, device_properties, grid_stride_blocks

SHAPE_NAMES = ("N", "C", "D", "H", "W", "F", "KD", "KH", "KW", "OD", "OH", "OW", "stride_d", "stride_h", "stride_w",
               "pad_d", "pad_h", "pad_w", "dilation_d", "dilation_h", "dilation_w", "groups")
_SHAPE_PARAMS = tuple(Scalar(name, "int32", low=0 if name.startswith("pad") else 1) for name in SHAPE_NAMES)
_ARRAYS = {
    "forward": (Array("x", "float32"), Array("weight", "float32"), Array("bias", "float32", optional=True),
            Array("y", "float32")),
    "backward_data": (Array("gy", "float32"), Array("weight", "float32"), Array("gx", "float32")),
    "backward_filter": (Array("gy", "float32"), Array("x", "float32"), Array("gW", "float32")),
}
_DEPTHWISE_FILTER_ARRAYS = (Array("gy", "float32"), Array("x", "float32"), Array("partial", "float32"))

GEMM_KERNELS = {
    (pass_name, tile.name): Kernel("conv.cu", f"conv_{pass_name}_f32_{tile.name}",
                                   _ARRAYS[pass_name] + _SHAPE_PARAMS + (Scalar("k_chunk", "int32", low=1),))
    for pass_name in PASSES for tile in TILES
}
DEPTHWISE_KERNELS = {
    pass_name: Kernel("conv.cu", f"conv_depthwise_{pass_name}_f32",
                      (_DEPTHWISE_FILTER_ARRAYS if pass_name == "backward_filter" else _ARRAYS[pass_name])
                      + _SHAPE_PARAMS + (Scalar("tile_h", "int32", low=1), Scalar("tile_w", "int32", low=1)))
    for pass_name in PASSES
}
REDUCE_KERNEL = Kernel("conv.cu", "conv_splitk_reduce_f32", (
    Array("partial", "float32"),
    Array("out", "float32"),
    Array("bias", "float32", optional=True),
    Scalar("total", "int32", low=1),
    Scalar("slices", "int32", low=1),
    Scalar("inner", "int32", low=1),
    Scalar("channels", "int32", low=1),
))
_REDUCE_THREADS = 256


def kernel_names() -> set[str]:
    """Every kernel this module can launch."""
    kernels = list(GEMM_KERNELS.values()) + list(DEPTHWISE_KERNELS.values()) + [REDUCE_KERNEL]
    return {kernel.name for kernel in kernels}


# ---------------------------------------------------------------- argument checks

def check_operands(op_name: str, operands: dict[str, Any],
                   is_device_array: Callable[[Any], bool] = backend.is_cuda_array) -> int:
    """Every operand (None allowed) must be a CuPy array, all on one device; returns its index.

    Raises:
        TypeError: an operand is not a CuPy array (a NumPy array, a list, ...).
        ValueError: operands on different devices.
    """
    device, first = None, None
    for name, value in operands.items():
        if value is None:
            continue
        if not is_device_array(value):
            raise TypeError(f"{op_name}: {name} must be a CuPy array, got {describe(value, is_device_array)}")
        if device is None:
            device, first = value.device.id, name
        elif value.device.id != device:
            raise ValueError(f"{op_name}: {name} is on cuda:{value.device.id} but {first} is on cuda:{device}; "
                             f"all operands must be on one device")
    return device


def check_gradient_shape(op_name: str, gy_shape: tuple, input_shape: tuple, W_shape: tuple,
                         geometry: WindowGeometry) -> None:
    """gy must be (N, F, *out) for the input and weight shapes and the geometry."""
    if geometry.rank != len(W_shape) - 2:
        raise ValueError(f"{op_name}: the geometry has {geometry.rank} spatial axes but the weight shape "
                         f"{tuple(W_shape)} has {len(W_shape) - 2}")
    expected = (input_shape[0], W_shape[0]) + tuple(geometry.output_size(input_shape[2:]))
    if tuple(gy_shape) != expected:
        raise ValueError(f"{op_name}: gy must have shape {expected} (N, F, *out) for input {tuple(input_shape)} and "
                         f"weight {tuple(W_shape)}, got {tuple(gy_shape)}")


def _runs_on_kernels(shape: ConvShape, *arrays) -> bool:
    float32 = np.dtype(np.float32)
    present = [a for a in arrays if a is not None]
    return (all(a.dtype == float32 for a in present) and all(a.size > 0 for a in present)
            and shape.fits_int32())


# ---------------------------------------------------------------- launching

def _sm_count(device: int) -> int:
    return device_properties(device).sm_count


def _reduce(partial, out, bias, inner: int, channels: int, device: int) -> None:
    """out = Σ over partial's first axis (in order) + bias[(i / inner) % channels]."""
    total, slices = out.size, partial.shape[0]
    REDUCE_KERNEL.launch(grid_stride_blocks(total, _REDUCE_THREADS, device), (_REDUCE_THREADS,),
                         (partial, out, bias, total, slices, inner, channels))


def _run_gemm(plan: GemmPlan, pass_name: str, inputs: tuple, bias, out, shape: ConvShape, device: int,
              bias_inner: int = 1) -> None:
    """Launch an implicit-GEMM plan into ``out``, through a split-K buffer when it has slices.

    Only the forward takes a bias: the kernel's epilogue adds it, or after split-K the
    reduction does, as bias[(i / bias_inner) % F] for element i of ``out``.
    """
    split = plan.slices > 1
    target = backend.cupy().empty((plan.slices,) + tuple(out.shape), dtype=np.float32) if split else out
    bias_arg = (None if split else bias,) if pass_name == "forward" else ()
    GEMM_KERNELS[(pass_name, plan.tile.name)].launch(
        plan.grid, (plan.tile.threads,), inputs + bias_arg + (target, *shape.args(), plan.k_chunk))
    if split:
        _reduce(target, out, bias, bias_inner, shape.F if bias is not None else 1, device)


def _forward(x, W, b, shape: ConvShape, device: int):
    cupy = backend.cupy()
    y = cupy.empty((shape.N, shape.F) + _spatial(shape, "out", x.ndim - 2), dtype=np.float32)
    plan = plan_depthwise("forward", shape) if shape.is_depthwise else None
    if plan is not None:
        DEPTHWISE_KERNELS["forward"].launch(plan.grid, (plan.threads,), (x, W, b, y, *shape.args(), plan.tile_h,
                                                                      plan.tile_w), shared_memory=plan.shared_memory)
        return y
    plan = plan_gemm("forward", shape, _sm_count(device))
    if plan is None:
        return None
    _run_gemm(plan, "forward", (x, W), b, y, shape, device, bias_inner=shape.out_positions)
    return y


def _backward_data(gy, W, input_shape: tuple, shape: ConvShape, device: int):
    gx = backend.cupy().empty(input_shape, dtype=np.float32)
    plan = plan_depthwise("backward_data", shape) if shape.is_depthwise else None
    if plan is not None:
        DEPTHWISE_KERNELS["backward_data"].launch(plan.grid, (plan.threads,), (gy, W, gx, *shape.args(), plan.tile_h,
                                                                           plan.tile_w),
                                             shared_memory=plan.shared_memory)
        return gx
    plan = plan_gemm("backward_data", shape, _sm_count(device))
    if plan is None:
        return None
    _run_gemm(plan, "backward_data", (gy, W), None, gx, shape, device)
    return gx


def _backward_filter(gy, x, W_shape: tuple, shape: ConvShape, device: int):
    cupy = backend.cupy()
    gW = cupy.empty(W_shape, dtype=np.float32)
    plan = plan_depthwise("backward_filter", shape) if shape.is_depthwise else None
    if plan is not None:
        partial = cupy.empty((plan.slices, gW.size), dtype=np.float32)
        DEPTHWISE_KERNELS["backward_filter"].launch(plan.grid, (plan.threads,), (gy, x, partial, *shape.args(),
                                                                             plan.tile_h, plan.tile_w),
                                               shared_memory=plan.shared_memory)
        _reduce(partial, gW, None, 1, 1, device)
        return gW
    plan = plan_gemm("backward_filter", shape, _sm_count(device))
    if plan is None:
        return None
    _run_gemm(plan, "backward_filter", (gy, x), None, gW, shape, device)
    return gW


def _spatial(shape: ConvShape, which: str, rank: int) -> tuple:
    sizes = (shape.OD, shape.OH, shape.OW) if which == "out" else (shape.D, shape.H, shape.W)
    return sizes[3 - rank:]


# ---------------------------------------------------------------- the registered ops

@register("conv_forward", CUDA)
def conv_forward(x, W, b, geometry: WindowGeometry, groups: int):
    """Convolution forward on the GPU; the signature and result of ``conv_forward_reference``.

    Args:
        x: CuPy (N, C, *spatial). W: CuPy (F, C / groups, *window). b: CuPy (F,) or None.
        geometry: stride, padding, dilation. groups: as in the reference.

    Returns:
        ``(y, saved)``: y (N, F, *out) and saved None (backward-filter reads x); or
        ``USE_REFERENCE`` for arguments the kernels do not take.
    """
    device = check_operands("conv_forward", {"x": x, "W": W, "b": b})
    check_conv_shapes(tuple(x.shape), tuple(W.shape), None if b is None else tuple(b.shape), groups, "conv_forward")
    geometry.check_fits(x.shape[2:], "conv_forward")
    shape = ConvShape.of(tuple(x.shape), tuple(W.shape), geometry, groups)
    if _runs_on_kernels(shape, x, W, b):
        cupy = backend.cupy()
        with cupy.cuda.Device(device):
            y = _forward(cupy.ascontiguousarray(x), cupy.ascontiguousarray(W),
                         None if b is None else cupy.ascontiguousarray(b), shape, device)
        if y is not None:
            return y, None
    return USE_REFERENCE


@register("conv_backward_data", CUDA)
def conv_backward_data(gy, W, input_shape: tuple, geometry: WindowGeometry, groups: int):
    """Input gradient on the GPU; the signature and result of ``conv_backward_data_reference``.

    Args:
        gy: CuPy (N, F, *out). W: CuPy (F, C / groups, *window). input_shape: x's shape.

    Returns:
        gx of shape ``input_shape``, or ``USE_REFERENCE``.
    """
    input_shape = tuple(input_shape)
    device = check_operands("conv_backward_data", {"gy": gy, "W": W})
    check_conv_shapes(input_shape, tuple(W.shape), None, groups, "conv_backward_data")
    check_gradient_shape("conv_backward_data", tuple(gy.shape), input_shape, tuple(W.shape), geometry)
    shape = ConvShape.of(input_shape, tuple(W.shape), geometry, groups)
    if _runs_on_kernels(shape, gy, W) and math.prod(input_shape) > 0:
        cupy = backend.cupy()
        with cupy.cuda.Device(device):
            gx = _backward_data(cupy.ascontiguousarray(gy), cupy.ascontiguousarray(W), input_shape, shape, device)
        if gx is not None:
            return gx
    return USE_REFERENCE


@register("conv_backward_filter", CUDA)
def conv_backward_filter(gy, x, saved, W_shape: tuple, geometry: WindowGeometry, groups: int):
    """Weight gradient on the GPU; the signature and result of ``conv_backward_filter_reference``.

    Args:
        gy: CuPy (N, F, *out). x: CuPy (N, C, *spatial), the forward's input.
        saved: what the forward returned; the kernels ignore it (the reference, where it
            runs instead, rebuilds its im2col matrix when it is None).
        W_shape: (F, C / groups, *window).

    Returns:
        gW of shape ``W_shape``, or ``USE_REFERENCE``.
    """
    W_shape = tuple(W_shape)
    device = check_operands("conv_backward_filter", {"gy": gy, "x": x})
    check_conv_shapes(tuple(x.shape), W_shape, None, groups, "conv_backward_filter")
    check_gradient_shape("conv_backward_filter", tuple(gy.shape), tuple(x.shape), W_shape, geometry)
    shape = ConvShape.of(tuple(x.shape), W_shape, geometry, groups)
    if _runs_on_kernels(shape, gy, x):
        cupy = backend.cupy()
        with cupy.cuda.Device(device):
            gW = _backward_filter(cupy.ascontiguousarray(gy), cupy.ascontiguousarray(x), W_shape, shape, device)
        if gW is not None:
            return gW
    return USE_REFERENCE
