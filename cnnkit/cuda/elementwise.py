"""CUDA implementations of the element-wise and row-wise ops (kernels in ``kernels/elementwise.cu``).

Registered under the names and signatures of their references:

- activations and gradients (:mod:`cnnkit.ops.activation`): relu, leaky_relu, elu,
  sigmoid, tanh, silu, gelu (exact and tanh form). A gradient kernel reads x or y,
  whichever its formula needs, and gy: three streams of memory traffic, not four;
- softmax and log_softmax along any axis: the last axis one warp (up to 1024 columns)
  or one 256-thread block per row, a middle axis one thread per (outer, inner) column;
- the fused losses (:mod:`cnnkit.ops.loss`): softmax cross-entropy with class indices or
  probabilities and its gradient, sigmoid binary cross-entropy and its gradient;
- dropout (:mod:`cnnkit.ops.dropout`) with a counter-based Philox4x32-10 generator: the
  mask depends only on (seed, element index), not on the launch shape, but its bits
  differ from the NumPy reference's (which draws from NumPy's generator);
- batch normalisation (:mod:`cnnkit.ops.norm`): see :func:`plan_channel_parts`.

Arrays must be CuPy arrays of one float dtype, float32 or float64; any other dtype
(float16, mixed dtypes) and empty arrays are left to the reference, under CuPy (a wrapper
returns ``USE_REFERENCE`` and the registry runs it). Inputs
that are not C-contiguous are copied first. CuPy compiles with ``-ftz=true``: denormal
values flush to zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .. import backend
from ..philox import dropout_threshold
from ..registry import CUDA, USE_REFERENCE, register
from . import launcher
from .launcher import Array, Kernel, Scalar, grid_stride_blocks

THREADS = 256
_SUFFIXES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_DTYPE_NAMES = {"f32": "float32", "f64": "float64"}
_INT32_MAX = 2**31 - 1
# Rows up to this many columns get one warp each; longer rows a whole block.
WARP_ROW_LIMIT = 1024
# Batch-norm reductions: a thread sums at most this many values in the input's dtype
# before the block merges the sums in double.
_VALUES_PER_THREAD = 64
_MAX_GRID_Y = 65535


def _suffix(*arrays) -> str | None:
    """"f32"/"f64" when every array is a CuPy array of that one dtype, else None."""
    dtype = arrays[0].dtype
    if dtype not in _SUFFIXES or any(a.dtype != dtype or not backend.is_cuda_array(a) for a in arrays):
        return None
    return _SUFFIXES[dtype]


def _vector_length(dtype) -> int:
    return 16 // np.dtype(dtype).itemsize


# ---------------------------------------------------------------- kernel declarations

@lru_cache(maxsize=None)
def map_kernel(name: str, suffix: str, inputs: int) -> Kernel:
    """The element-wise kernel ``name_suffix``: ``inputs`` arrays in, one out, n, and α except with 3 inputs."""
    dtype = _DTYPE_NAMES[suffix]
    arrays = [Array(f"in{k}", dtype) for k in range(inputs)] + [Array("out", dtype)]
    scalars = [Scalar("n", "int64", low=0)] + ([Scalar("alpha", "float64")] if inputs < 3 else [])
    return Kernel("elementwise.cu", f"{name}_{suffix}", arrays + scalars)


@lru_cache(maxsize=None)
def row_kernel(name: str, suffix: str, target: str | None = None) -> Kernel:
    """A row kernel: softmax/log_softmax (x, y) or cross-entropy (z, target, loss, probs), then rows, cols.

    ``target`` is None for softmax, "index" (int64 targets) or "prob" (probabilities).
    """
    dtype = _DTYPE_NAMES[suffix]
    if target is None:
        arrays = [Array("x", dtype), Array("y", dtype)]
    else:
        arrays = [Array("z", dtype), Array("target", "int64" if target == "index" else dtype),
                  Array("loss", dtype), Array("probs", dtype)]
    return Kernel("elementwise.cu", f"{name}_{suffix}",
                  arrays + [Scalar("rows", "int64", low=1), Scalar("cols", "int32", low=1)],
                  threads=_block_reduction_threads(name))


@lru_cache(maxsize=None)
def named_kernel(name: str, suffix: str) -> Kernel:
    """The kernels with their own parameter lists (strided softmax, gradients, dropout, batch norm).

    ``name`` is the entry point without its dtype suffix; a "log_" prefix and a "_warp" or
    "_block" variant share the parameters of the plain name.
    """
    d = _DTYPE_NAMES[suffix]
    table = {
        "softmax_strided": [Array("x", d), Array("y", d), Scalar("columns", "int64", low=1),
                            Scalar("C", "int32", low=1), Scalar("inner", "int32", low=1)],
        "xent_grad_index": [Array("probs", d), Array("target", "int64"), Array("gy", d), Array("g", d),
                            Scalar("n", "int64", low=1, high=_INT32_MAX), Scalar("cols", "int32", low=1)],
        "xent_grad_prob": [Array("probs", d), Array("target", d), Array("gy", d), Array("g", d),
                           Scalar("rows", "int64", low=1), Scalar("cols", "int32", low=1)],
        "dropout": [Array("x", d), Array("y", d), Array("mask", d), Scalar("n", "int64", low=0),
                    Scalar("seed", "uint64"), Scalar("stream", "uint64"), Scalar("threshold", "uint32"),
                    Scalar("scale", "float64", low=1.0)],
        "bn_stats": [Array("x", d), Array("partial", "float64"), Scalar("outer", "int32", low=1),
                     Scalar("C", "int32", low=1), Scalar("inner", "int32", low=1), Scalar("chunk", "int64", low=1)],
        "bn_finalize": [Array("partial", "float64"), Array("x", d), Array("gamma", d), Array("mean", d),
                        Array("var", d), Array("inv_std", d), Array("scale", d), Scalar("parts", "int32", low=1),
                        Scalar("C", "int32", low=1), Scalar("inner", "int32", low=1), Scalar("m", "int64", low=1),
                        Scalar("eps", "float64")],
        "bn_infer_scale": [Array("gamma", d), Array("var", d), Array("scale", d), Scalar("C", "int32", low=1),
                           Scalar("eps", "float64")],
        "bn_apply": [Array("x", d), Array("mean", d), Array("scale", d), Array("beta", d), Array("y", d),
                     Scalar("n", "int64", low=1, high=_INT32_MAX), Scalar("C", "int32", low=1),
                     Scalar("inner", "int32", low=1)],
        "bn_backward_reduce": [Array("gy", d), Array("x", d), Array("mean", d), Array("partial", "float64"),
                               Scalar("outer", "int32", low=1), Scalar("C", "int32", low=1),
                               Scalar("inner", "int32", low=1), Scalar("chunk", "int64", low=1)],
        "bn_backward_finalize": [Array("partial", "float64"), Array("gamma", d), Array("inv_std", d),
                                 Array("ggamma", d), Array("gbeta", d), Array("coef_a", d), Array("coef_b", d),
                                 Array("coef_c", d), Scalar("parts", "int32", low=1), Scalar("C", "int32", low=1),
                                 Scalar("m", "int64", low=1)],
        "bn_backward_apply": [Array("gy", d), Array("x", d), Array("mean", d), Array("coef_a", d),
                              Array("coef_b", d), Array("coef_c", d), Array("gx", d),
                              Scalar("n", "int64", low=1, high=_INT32_MAX), Scalar("C", "int32", low=1),
                              Scalar("inner", "int32", low=1)],
    }
    base = name.removeprefix("log_").removesuffix("_warp").removesuffix("_block")
    return Kernel("elementwise.cu", f"{name}_{suffix}", table[base], threads=_block_reduction_threads(name))


def _block_reduction_threads(name: str) -> int | None:
    """THREADS for the kernels whose block reductions assume exactly that many threads, else None."""
    return THREADS if name.endswith("_block") or name in ("bn_stats", "bn_backward_reduce") else None


def row_variant(cols: int) -> str:
    """"warp" (one warp per row) up to :data:`WARP_ROW_LIMIT` columns, else "block" (256 threads)."""
    return "warp" if cols <= WARP_ROW_LIMIT else "block"


def _row_blocks(rows: int, variant: str, device_index: int) -> tuple[int]:
    rows_per_block = THREADS // 32 if variant == "warp" else 1
    return grid_stride_blocks(rows, rows_per_block, device_index)


def _map(name: str, inputs: tuple, alpha: float | None = 0.0):
    """out = f(inputs) element-wise with kernel ``name``; inputs of one shape and dtype."""
    cupy = backend.cupy()
    first = inputs[0]
    with cupy.cuda.Device(first.device.id):
        inputs = tuple(cupy.ascontiguousarray(a) for a in inputs)
        out = cupy.empty(first.shape, dtype=first.dtype)
        kernel = map_kernel(name, _SUFFIXES[first.dtype], len(inputs))
        blocks = grid_stride_blocks(out.size // _vector_length(out.dtype) + 1, THREADS, first.device.id)
        kernel.launch(blocks, (THREADS,), inputs + (out, out.size) + (() if alpha is None else (float(alpha),)))
        return out


def _maps(*arrays) -> bool:
    """The kernels take these arrays: one float dtype, one shape, at least one element."""
    return _suffix(*arrays) is not None and arrays[0].size > 0 and all(a.shape == arrays[0].shape for a in arrays)


# ---------------------------------------------------------------- activations

@register("relu", CUDA)
def relu(x):
    """y = max(x, 0), NaN kept."""
    return _map("relu", (x,)) if _maps(x) else USE_REFERENCE


@register("relu_grad", CUDA)
def relu_grad(x, y, gy):
    """gx = gy · [x > 0]."""
    return _map("relu_grad", (x, gy)) if _maps(x, gy) else USE_REFERENCE


@register("leaky_relu", CUDA)
def leaky_relu(x, alpha: float = 0.1):
    """y = x for x > 0, α·x otherwise."""
    return _map("leaky_relu", (x,), alpha) if _maps(x) else USE_REFERENCE


@register("leaky_relu_grad", CUDA)
def leaky_relu_grad(x, y, gy, alpha: float = 0.1):
    """gx = gy for x > 0, α·gy otherwise."""
    return _map("leaky_relu_grad", (x, gy), alpha) if _maps(x, gy) else USE_REFERENCE


@register("elu", CUDA)
def elu(x, alpha: float = 1.0):
    """y = x for x > 0, α·(eˣ − 1) otherwise."""
    return _map("elu", (x,), alpha) if _maps(x) else USE_REFERENCE


@register("elu_grad", CUDA)
def elu_grad(x, y, gy, alpha: float = 1.0):
    """gx = gy for x > 0, gy·α·eˣ (= gy·(y + α)) otherwise; reads x, not y."""
    return _map("elu_grad", (x, gy), alpha) if _maps(x, gy) else USE_REFERENCE


@register("sigmoid", CUDA)
def sigmoid(x):
    """y = 1 / (1 + e^(−x)) without overflow."""
    return _map("sigmoid", (x,)) if _maps(x) else USE_REFERENCE


@register("sigmoid_grad", CUDA)
def sigmoid_grad(x, y, gy):
    """gx = gy · y · (1 − y); reads y."""
    return _map("sigmoid_grad", (y, gy)) if _maps(y, gy) else USE_REFERENCE


@register("tanh", CUDA)
def tanh(x):
    """y = tanh(x)."""
    return _map("tanh", (x,)) if _maps(x) else USE_REFERENCE


@register("tanh_grad", CUDA)
def tanh_grad(x, y, gy):
    """gx = gy · (1 − y²); reads y."""
    return _map("tanh_grad", (y, gy)) if _maps(y, gy) else USE_REFERENCE


@register("silu", CUDA)
def silu(x):
    """y = x · σ(x)."""
    return _map("silu", (x,)) if _maps(x) else USE_REFERENCE


@register("silu_grad", CUDA)
def silu_grad(x, y, gy):
    """gx = gy · σ(x) · (1 + x · (1 − σ(x))); reads x."""
    return _map("silu_grad", (x, gy)) if _maps(x, gy) else USE_REFERENCE


@register("gelu", CUDA)
def gelu(x, approximate: bool = False):
    """y = x · Φ(x) with erf, or the tanh approximation with ``approximate``."""
    if not _maps(x):
        return USE_REFERENCE
    return _map("gelu_tanh" if approximate else "gelu", (x,))


@register("gelu_grad", CUDA)
def gelu_grad(x, y, gy, approximate: bool = False):
    """gx = gy · (Φ(x) + x · φ(x)), or the tanh form's derivative; reads x."""
    if not _maps(x, gy):
        return USE_REFERENCE
    return _map("gelu_tanh_grad" if approximate else "gelu_grad", (x, gy))


# ---------------------------------------------------------------- softmax

def _normalize_axis(op: str, axis: int, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis must be an int in [{-ndim}, {ndim}), got {axis!r}")
    return int(axis) % ndim


def _softmax(op: str, x, axis: int):
    if x.ndim == 0 or not _maps(x):
        return USE_REFERENCE
    axis = _normalize_axis(op, axis, x.ndim)
    C = x.shape[axis]
    inner = math.prod(x.shape[axis + 1:])
    if C > _INT32_MAX or inner > _INT32_MAX:
        return USE_REFERENCE
    cupy = backend.cupy()
    device_index = x.device.id
    with cupy.cuda.Device(device_index):
        x = cupy.ascontiguousarray(x)
        y = cupy.empty_like(x)
        suffix = _SUFFIXES[x.dtype]
        if inner == 1:
            rows, variant = x.size // C, row_variant(C)
            row_kernel(f"{op}_{variant}", suffix).launch(_row_blocks(rows, variant, device_index), (THREADS,),
                                                         (x, y, rows, C))
        else:
            columns = x.size // C
            named_kernel(f"{op}_strided", suffix).launch(grid_stride_blocks(columns, THREADS, device_index),
                                                         (THREADS,), (x, y, columns, C, inner))
        return y


@register("softmax", CUDA)
def softmax(x, axis: int):
    """y = e^(x − max x) / Σ e^(x − max x) along ``axis``; x's shape and dtype."""
    return _softmax("softmax", x, axis)


@register("log_softmax", CUDA)
def log_softmax(x, axis: int):
    """y = (x − m) − log Σ e^(x − m) along ``axis``, m = max x; x's shape and dtype."""
    return _softmax("log_softmax", x, axis)


# ---------------------------------------------------------------- losses

def _index_targets(target, rows: int) -> bool:
    return backend.is_cuda_array(target) and target.dtype == np.int64 and target.shape == (rows,)


@register("softmax_cross_entropy", CUDA)
def softmax_cross_entropy(logits, target):
    """Fused softmax cross-entropy on the GPU; the signature of the reference in :mod:`cnnkit.ops.loss`.

    Args:
        logits: (N, C) float32 or float64 CuPy array z.
        target: (N,) int64 class indices in [0, C), or (N, C) probabilities of z's dtype.

    Returns:
        ``(loss, probs)``: loss (N,) = log Σ_j e^(z_nj) − Σ_j t_nj z_nj and probs = softmax(z).
        A class index outside [0, C) gives a NaN loss and a NaN gradient row.
    """
    if logits.ndim != 2 or not _maps(logits) or logits.shape[1] > _INT32_MAX:
        return USE_REFERENCE
    rows, cols = logits.shape
    by_index = _index_targets(target, rows)
    if not by_index and not _maps(logits, target):
        return USE_REFERENCE
    cupy = backend.cupy()
    device_index = logits.device.id
    with cupy.cuda.Device(device_index):
        logits, target = cupy.ascontiguousarray(logits), cupy.ascontiguousarray(target)
        loss = cupy.empty(rows, dtype=logits.dtype)
        probs = cupy.empty_like(logits)
        variant = row_variant(cols)
        kernel = row_kernel(f"xent_{'index' if by_index else 'prob'}_{variant}", _SUFFIXES[logits.dtype],
                            "index" if by_index else "prob")
        kernel.launch(_row_blocks(rows, variant, device_index), (THREADS,), (logits, target, loss, probs, rows, cols))
        return loss, probs


@register("softmax_cross_entropy_grad", CUDA)
def softmax_cross_entropy_grad(probs, target, gy):
    """glogits (N, C) = (probs · Σ_j t_nj − t_n) · gy_n, i.e. (probs − onehot) · gy for class indices."""
    if probs.ndim != 2 or not _maps(probs) or _suffix(probs, gy) is None or gy.shape != probs.shape[:1]:
        return USE_REFERENCE
    rows, cols = probs.shape
    by_index = _index_targets(target, rows)
    if (by_index and probs.size > _INT32_MAX) or (not by_index and not _maps(probs, target)):
        return USE_REFERENCE
    cupy = backend.cupy()
    device_index = probs.device.id
    with cupy.cuda.Device(device_index):
        probs, target, gy = (cupy.ascontiguousarray(a) for a in (probs, target, gy))
        g = cupy.empty_like(probs)
        suffix = _SUFFIXES[probs.dtype]
        if by_index:
            named_kernel("xent_grad_index", suffix).launch(grid_stride_blocks(g.size, THREADS, device_index),
                                                           (THREADS,), (probs, target, gy, g, g.size, cols))
        else:
            variant = row_variant(cols)
            named_kernel(f"xent_grad_prob_{variant}", suffix).launch(
                _row_blocks(rows, variant, device_index), (THREADS,), (probs, target, gy, g, rows, cols))
        return g


@register("sigmoid_binary_cross_entropy", CUDA)
def sigmoid_binary_cross_entropy(logits, target):
    """Element-wise max(z, 0) − z·t + log(1 + e^(−|z|)); z's shape and dtype."""
    if not _maps(logits, target):
        return USE_REFERENCE
    return _map("sigmoid_bce", (logits, target))


@register("sigmoid_binary_cross_entropy_grad", CUDA)
def sigmoid_binary_cross_entropy_grad(logits, target, gy):
    """gz = (σ(z) − t) · gy."""
    if not _maps(logits, target, gy):
        return USE_REFERENCE
    return _map("sigmoid_bce_grad", (logits, target, gy), alpha=None)


# ---------------------------------------------------------------- dropout

@register("dropout", CUDA)
def dropout(x, rate: float, seed: int, stream: int):
    """Inverted dropout on the GPU; the signature of :func:`cnnkit.ops.dropout.dropout_reference`.

    Element i is kept when word i % 4 of the Philox4x32-10 block with counter
    (i // 4, ``stream``) under key ``seed`` reaches ``ceil(rate · 2^32)``: the same
    word and test as the reference (:func:`cnnkit.philox.random_words`), so the mask is
    bit-identical to the CPU's for any GPU and launch shape.

    Returns:
        ``(y, mask)``, both of x's shape and dtype: mask holds 0 or 1/(1 − rate), y = x · mask.
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be a number in [0, 1), got {rate!r}")
    if not _maps(x):
        return USE_REFERENCE
    cupy = backend.cupy()
    with cupy.cuda.Device(x.device.id):
        x = cupy.ascontiguousarray(x)
        y, mask = cupy.empty_like(x), cupy.empty_like(x)
        blocks = grid_stride_blocks(x.size // 4 + 1, THREADS, x.device.id)
        named_kernel("dropout", _SUFFIXES[x.dtype]).launch(
            blocks, (THREADS,), (x, y, mask, x.size, int(seed) % 2**64, int(stream) % 2**64, dropout_threshold(rate),
                     1 / (1 - rate)))
        return y, mask


# ---------------------------------------------------------------- batch normalisation

def plan_channel_parts(outer: int, C: int, inner: int, sm_count: int) -> tuple[int, int]:
    """How a per-channel reduction over x viewed as (outer, C, inner) is cut into blocks.

    Each channel's m = outer · inner values are split into ``parts`` chunks of ``chunk``
    consecutive values (in (outer, inner) order), one 256-thread block each: enough
    blocks to give every SM about eight, and enough parts that no thread sums more than
    64 values in the input's precision; at most 65535 parts (CUDA's grid y limit).

    Returns:
        ``(parts, chunk)`` with parts · chunk >= m and no empty part.
    """
    m = outer * inner
    wanted = max(math.ceil(8 * sm_count / C), math.ceil(m / (THREADS * _VALUES_PER_THREAD)))
    parts = max(1, min(wanted, math.ceil(m / THREADS), _MAX_GRID_Y))
    chunk = math.ceil(m / parts)
    return math.ceil(m / chunk), chunk


@dataclass(frozen=True)
class BatchNormSaved:
    """What the CUDA training forward keeps for the CUDA backward: x (contiguous), μ and 1/√(σ² + ε)."""

    x: Any
    mean: Any
    inv_std: Any


def _channel_shape(shape: tuple, axis: int) -> tuple[int, int, int]:
    """(outer, C, inner) for channels along ``axis`` (negative counts from the end)."""
    axis %= len(shape)
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _norm_runs_on_kernels(x, axis: int, *channel_arrays) -> bool:
    """x and the (C,) channel arrays are CuPy arrays of one float dtype, x non-empty and < 2^31 elements."""
    if x.ndim == 0 or not _maps(x) or _suffix(x, *channel_arrays) is None or x.size > _INT32_MAX:
        return False
    C = x.shape[axis % x.ndim]
    return all(a.shape == (C,) for a in channel_arrays)


def _apply(x, mean, scale, beta, C: int, inner: int):
    cupy = backend.cupy()
    y = cupy.empty_like(x)
    blocks = grid_stride_blocks(x.size // _vector_length(x.dtype) + 1, THREADS, x.device.id)
    named_kernel("bn_apply", _SUFFIXES[x.dtype]).launch(blocks, (THREADS,), (x, mean, scale, beta, y, x.size, C, inner))
    return y


@register("batch_norm_train", CUDA)
def batch_norm_train(x, gamma, beta, eps: float, axis: int):
    """Training-mode batch normalisation; the signature of the reference in :mod:`cnnkit.ops.norm`.

    Three launches: per-(channel, part) shifted sums, a per-channel finalize (in double)
    and the normalisation y = (x − μ) · γ/√(σ² + ε) + β.

    Returns:
        ``(y, batch_mean, batch_var, saved)`` with the biased variance; ``saved`` is a
        :class:`BatchNormSaved` for :func:`batch_norm_backward`.
    """
    if not _norm_runs_on_kernels(x, axis, gamma, beta):
        return USE_REFERENCE
    cupy = backend.cupy()
    device_index = x.device.id
    with cupy.cuda.Device(device_index):
        x, gamma, beta = (cupy.ascontiguousarray(a) for a in (x, gamma, beta))
        outer, C, inner = _channel_shape(x.shape, axis)
        parts, chunk = plan_channel_parts(outer, C, inner, launcher.device_properties(device_index).sm_count)
        suffix = _SUFFIXES[x.dtype]
        partial = cupy.empty((parts, C, 2), dtype=np.float64)
        named_kernel("bn_stats", suffix).launch((C, parts), (THREADS,), (x, partial, outer, C, inner, chunk))
        mean, var, inv_std, scale = (cupy.empty(C, dtype=x.dtype) for _ in range(4))
        named_kernel("bn_finalize", suffix).launch(
            grid_stride_blocks(C, THREADS, device_index), (THREADS,),
            (partial, x, gamma, mean, var, inv_std, scale, parts, C, inner, outer * inner, float(eps)))
        y = _apply(x, mean, scale, beta, C, inner)
        return y, mean, var, BatchNormSaved(x, mean, inv_std)


@register("batch_norm_backward", CUDA)
def batch_norm_backward(gy, gamma, saved, axis: int):
    """Training-mode gradient: gβ = Σ gy, gγ = Σ gy·x̂, gx = γ/√(σ² + ε) · (gy − gβ/m − x̂·gγ/m).

    Three launches: per-(channel, part) Σ gy and Σ gy·(x − μ), a per-channel finalize (in
    double) and gx = a·gy + b·(x − μ) + c per channel.

    Returns:
        ``(gx, ggamma, gbeta)``.
    """
    if not isinstance(saved, BatchNormSaved):  # the forward ran the reference
        return USE_REFERENCE
    cupy = backend.cupy()
    x = saved.x
    device_index = x.device.id
    with cupy.cuda.Device(device_index):
        gy = cupy.ascontiguousarray(gy, dtype=x.dtype)
        gamma = cupy.ascontiguousarray(gamma, dtype=x.dtype)
        outer, C, inner = _channel_shape(x.shape, axis)
        parts, chunk = plan_channel_parts(outer, C, inner, launcher.device_properties(device_index).sm_count)
        suffix = _SUFFIXES[x.dtype]
        partial = cupy.empty((parts, C, 2), dtype=np.float64)
        named_kernel("bn_backward_reduce", suffix).launch((C, parts), (THREADS,),
                                                          (gy, x, saved.mean, partial, outer, C, inner, chunk))
        ggamma, gbeta = cupy.empty(C, dtype=x.dtype), cupy.empty(C, dtype=x.dtype)
        coef = cupy.empty((3, C), dtype=x.dtype)
        named_kernel("bn_backward_finalize", suffix).launch(
            grid_stride_blocks(C, THREADS, device_index), (THREADS,),
            (partial, gamma, saved.inv_std, ggamma, gbeta, coef[0], coef[1], coef[2], parts, C, outer * inner))
        gx = cupy.empty_like(x)
        blocks = grid_stride_blocks(x.size // _vector_length(x.dtype) + 1, THREADS, device_index)
        named_kernel("bn_backward_apply", suffix).launch(
            blocks, (THREADS,), (gy, x, saved.mean, coef[0], coef[1], coef[2], gx, x.size, C, inner))
        return gx, ggamma, gbeta


@register("batch_norm_infer", CUDA)
def batch_norm_infer(x, gamma, beta, mean, var, eps: float, axis: int):
    """y = (x − mean) · γ/√(var + ε) + β with given statistics; x's shape and dtype."""
    if not _norm_runs_on_kernels(x, axis, gamma, beta, mean, var):
        return USE_REFERENCE
    cupy = backend.cupy()
    device_index = x.device.id
    with cupy.cuda.Device(device_index):
        x, gamma, beta, mean, var = (cupy.ascontiguousarray(a) for a in (x, gamma, beta, mean, var))
        _, C, inner = _channel_shape(x.shape, axis)
        scale = cupy.empty(C, dtype=x.dtype)
        named_kernel("bn_infer_scale", _SUFFIXES[x.dtype]).launch(
            grid_stride_blocks(C, THREADS, device_index), (THREADS,), (gamma, var, scale, C, float(eps)))
        return _apply(x, mean, scale, beta, C, inner)
