"""CUDA implementations of the ``gemm`` and ``gemm_bias_act`` ops (kernels in ``kernels/gemm.cu``).

``gemm(a, b, transpose_a=False, transpose_b=False)`` and ``gemm_bias_act(a, b, bias,
activation)`` have the signatures of their references in :mod:`cnnkit.ops.matmul`;
``gemm_bias_act`` fuses the per-column bias and the activation into the epilogue.

How a product is computed:

- float32 operands run our kernels. By default (``cnnkit.cuda.get_matmul_precision()
  == "highest"``) that is the FP32 SIMT kernel: 128×128 tiles when there are at least
  as many tiles as SMs, else 64×64 tiles, and when even those leave SMs idle and K is
  long, split-K: the K range is cut into slices whose partial products are summed, in a
  fixed order, by a second kernel that also applies bias and activation. Operands whose
  rows are 16-byte aligned use 128-bit loads; any other row layout the scalar variant.
- With ``set_matmul_precision("tf32")`` on sm_80 or newer, aligned operands go to the
  TF32 tensor-core kernel: inputs rounded to TF32 (10-bit mantissa), FP32 accumulation,
  about 1e-3 relative error. Misaligned operands fall back to the FP32 kernel.
- float64 (the gradient checks), mixed dtypes and empty products are left to the
  reference (the wrappers return ``USE_REFERENCE``), which runs on CuPy: cuBLAS.
- CuPy compiles the kernels with ``-ftz=true``: denormal values flush to zero.

Transposed operands are never copied: ``transpose_a``/``transpose_b`` select a kernel
that reads the stored layout, and a transposed view (F-ordered array) is read as the
transpose of its C-ordered storage. Only arrays with no unit stride are copied first.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend
from ..registry import CUDA, USE_REFERENCE, register
from . import get_matmul_precision
from .launcher import (
    ROWS,
    Array,
    Kernel,
    Scalar,
    ceil_div,
    describe,
    device_properties,
    grid_stride_blocks,
    has_contiguous_rows,
    leading_dimension,
    tile_grid,
)

ACTIVATIONS = {"none": 0, "relu": 1}

# M, N, K and leading dimensions stay below this so tile origins plus a tile fit in an int.
_MAX_DIM = 2**31 - 1024
# Slices are multiples of 32 so that every slice starts 16-byte aligned (gemm.cu).
_K_CHUNK_ALIGN = 32
_MAX_SPLITS = 32


@dataclass(frozen=True)
class _Tile:
    name: str
    rows: int
    cols: int
    threads: int
    shared_memory: int
    min_k_per_split: int  # shorter slices cost more in partial sums than they win in parallelism


_TILE_128 = _Tile("128x128", 128, 128, 256, 0, 128)
_TILE_64 = _Tile("64x64", 64, 64, 128, 0, 128)
_TILE_TF32 = _Tile("tf32", 128, 128, 256, 3 * 2 * 4608 * 4, 256)  # TF32_SHARED_BYTES in gemm.cu


@dataclass(frozen=True)
class GemmPlan:
    """Which kernel runs a product and how it is cut up."""

    kernel_name: str
    tile: _Tile
    splits: int  # K slices, one grid layer each
    k_chunk: int  # K elements per slice, a multiple of 32


def plan_gemm(M: int, N: int, K: int, trans_a: bool, trans_b: bool, sm_count: int, vectorized: bool,
              tf32: bool) -> GemmPlan:
    """Choose kernel, tile and split-K for an M×N×K product (pure: tested on the CPU).

    Args:
        trans_a, trans_b: whether the stored A, B are read transposed (see gemm.cu).
        sm_count: streaming multiprocessors on the device.
        vectorized: both operands 16-byte aligned with leading dimensions multiple of 4.
        tf32: the TF32 tensor-core path is wanted and available (it needs ``vectorized``).
    """
    layout = ("t" if trans_a else "n") + ("t" if trans_b else "n")
    if tf32 and vectorized:
        tile = _TILE_TF32
        name = f"gemm_f32_tf32_{layout}"
    else:
        tile = _TILE_128 if ceil_div(M, 128) * ceil_div(N, 128) >= sm_count else _TILE_64
        name = f"gemm_f32_{layout}_{tile.name}_{'vec4' if vectorized else 'scalar'}"
    tiles = ceil_div(M, tile.rows) * ceil_div(N, tile.cols)
    splits = 1
    if tiles < sm_count:
        splits = max(1, min(ceil_div(sm_count, tiles), K // tile.min_k_per_split, _MAX_SPLITS))
    k_chunk = ceil_div(ceil_div(K, splits), _K_CHUNK_ALIGN) * _K_CHUNK_ALIGN
    return GemmPlan(name, tile, ceil_div(K, k_chunk), k_chunk)


_GEMM_PARAMS = (
    Array("A", "float32", ROWS),
    Array("B", "float32", ROWS),
    Array("C", "float32"),
    Array("bias", "float32", optional=True),
    Scalar("M", "int32", low=1, high=_MAX_DIM),
    Scalar("N", "int32", low=1, high=_MAX_DIM),
    Scalar("K", "int32", low=1, high=_MAX_DIM),
    Scalar("lda", "int32", low=1, high=_MAX_DIM),
    Scalar("ldb", "int32", low=1, high=_MAX_DIM),
    Scalar("ldc", "int32", low=1, high=_MAX_DIM),
    Scalar("k_chunk", "int32", low=_K_CHUNK_ALIGN),
    Scalar("activation", "int32", low=0, high=max(ACTIVATIONS.values())),
)
_REDUCE = Kernel("gemm.cu", "gemm_splitk_reduce_f32", (
    Array("partial", "float32"),
    Array("C", "float32"),
    Array("bias", "float32", optional=True),
    Scalar("M", "int32", low=1),
    Scalar("N", "int32", low=1),
    Scalar("splits", "int32", low=1),
    Scalar("activation", "int32", low=0, high=max(ACTIVATIONS.values())),
))
_kernels: dict[str, Kernel] = {}


def _gemm_kernel(name: str) -> Kernel:
    kernel = _kernels.get(name)
    if kernel is None:
        kernel = _kernels[name] = Kernel("gemm.cu", name, _GEMM_PARAMS)
    return kernel


def _stored_operand(x, transposed: bool):
    """(storage, leading dimension, read transposed) for a 2-D array, copying only when unavoidable.

    An F-ordered array (a transposed view, say) is the transpose of C-ordered storage,
    so it is read from that storage with the transpose flag flipped.
    """
    if has_contiguous_rows(x):
        return x, leading_dimension(x), transposed
    if has_contiguous_rows(x.T):
        return x.T, leading_dimension(x.T), not transposed
    x = backend.cupy().ascontiguousarray(x)
    return x, leading_dimension(x), transposed


def _is_vector_aligned(x, ld: int) -> bool:
    return x.data.ptr % 16 == 0 and ld % 4 == 0


def _check_operands(op_name: str, a, b, bias, activation: str, transpose_a: bool, transpose_b: bool):
    for name, x in (("a", a), ("b", b), ("bias", bias)):
        if x is not None and not backend.is_cuda_array(x):
            raise TypeError(f"{op_name}: {name} must be a CuPy array like the other operands, got {describe(x)}")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"{op_name}: a and b must be 2-D, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    M, K = a.shape[::-1] if transpose_a else a.shape
    K_b, N = b.shape[::-1] if transpose_b else b.shape
    if K != K_b:
        raise ValueError(f"{op_name}: op(a) is {M}×{K} but op(b) is {K_b}×{N}; the inner dimensions must match "
                         f"(shapes {tuple(a.shape)} and {tuple(b.shape)}, transpose_a={transpose_a}, "
                         f"transpose_b={transpose_b})")
    if bias is not None and tuple(bias.shape) != (N,):
        raise ValueError(f"{op_name}: bias must have shape ({N},), one value per output column, "
                         f"got {tuple(bias.shape)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{op_name}: activation must be one of {', '.join(map(repr, ACTIVATIONS))}, "
                         f"got {activation!r}")
    return M, N, K


def _gemm(op_name: str, a, b, bias, activation: str, transpose_a: bool, transpose_b: bool):
    M, N, K = _check_operands(op_name, a, b, bias, activation, transpose_a, transpose_b)
    float32 = np.dtype(np.float32)
    all_float32 = a.dtype == float32 and b.dtype == float32 and (bias is None or bias.dtype == float32)
    if not all_float32 or 0 in (M, N, K):
        return USE_REFERENCE

    cupy = backend.cupy()
    device_index = a.device.id
    with cupy.cuda.Device(device_index):
        props = device_properties(device_index)
        A, lda, trans_a = _stored_operand(a, transpose_a)
        B, ldb, trans_b = _stored_operand(b, transpose_b)
        if bias is not None:
            bias = cupy.ascontiguousarray(bias)
        vectorized = _is_vector_aligned(A, lda) and _is_vector_aligned(B, ldb)
        tf32 = get_matmul_precision() == "tf32" and props.compute_capability >= (8, 0)
        plan = plan_gemm(M, N, K, trans_a, trans_b, props.sm_count, vectorized, tf32)
        kernel = _gemm_kernel(plan.kernel_name)
        grid = tile_grid(M, N, plan.tile.rows, plan.tile.cols, plan.splits)
        block = (plan.tile.threads,)
        act = ACTIVATIONS[activation]

        c = cupy.empty((M, N), dtype=np.float32)
        if plan.splits == 1:
            kernel.launch(grid, block, (A, B, c, bias, M, N, K, lda, ldb, N, plan.k_chunk, act),
                          shared_memory=plan.tile.shared_memory)
            return c
        partial = cupy.empty((plan.splits, M, N), dtype=np.float32)
        kernel.launch(grid, block, (A, B, partial, None, M, N, K, lda, ldb, N, plan.k_chunk, 0),
                      shared_memory=plan.tile.shared_memory)
        threads = 256
        _REDUCE.launch(grid_stride_blocks(M * N, threads, device_index), (threads,),
                       (partial, c, bias, M, N, plan.splits, act))
        return c


@register("gemm", CUDA)
def gemm(a, b, transpose_a: bool = False, transpose_b: bool = False):
    """C = op(A) · op(B) on the GPU, op being an optional transpose (BLAS NN, NT, TN, TT).

    Args:
        a: 2-D CuPy array, (M, K), or (K, M) with ``transpose_a``.
        b: 2-D CuPy array, (K, N), or (N, K) with ``transpose_b``.

    Returns:
        C, a new C-contiguous (M, N) float32 array for float32 operands (our kernels);
        ``USE_REFERENCE`` for any other operands.
    """
    return _gemm("gemm", a, b, None, "none", transpose_a, transpose_b)


@register("gemm_bias_act", CUDA)
def gemm_bias_act(a, b, bias=None, activation: str = "none"):
    """C = act(A · B + bias) with bias and activation applied in the kernel's epilogue.

    Args:
        a: 2-D CuPy array (M, K).
        b: 2-D CuPy array (K, N).
        bias: CuPy array (N,), one value per output column, or None.
        activation: "none" or "relu" (relu keeps NaN).

    Returns:
        C, a new C-contiguous (M, N) array, or ``USE_REFERENCE`` as for :func:`gemm`.
    """
    return _gemm("gemm_bias_act", a, b, bias, activation, False, False)
