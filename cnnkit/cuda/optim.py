"""CUDA implementations of ``sgd_update`` and ``adam_update`` (kernels in ``kernels/optim.cu``).

Each is ONE multi-tensor launch over every parameter (one more for each repeat of an
array, see :func:`sequential_rounds`), with the signature of its reference in
:mod:`cnnkit.optimizers`. The launch reads two small tables:

- a block map: block b updates elements [start_b, start_b + CHUNK) of tensor t_b. It
  depends only on the parameter sizes, so it is built on the host and uploaded once per
  list of sizes (cached);
- a pointer table: the device addresses of every tensor's arrays (parameter, gradient,
  slots). It is uploaded when the addresses change (cached by address, so parameters and
  slots that stay put with gradients written to fixed buffers cost no upload).

The learning rate and the step (through Adam's bias correction) are by-value kernel
arguments, passed on every call. A CUDA graph that captured this launch would replay the
values of the captured step: graph capture would need them, and the tables, in device
memory. Arrays that are not C-contiguous CuPy arrays of one dtype (float32 or float64)
are left to the reference (under CuPy): the wrappers return ``USE_REFERENCE``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from .. import backend
from ..registry import CUDA, USE_REFERENCE, register
from .launcher import Array, Kernel, Scalar

THREADS = 256
CHUNK = 2048  # elements per block: 8 per thread; a multiple of 4 keeps 16-byte alignment
_SUFFIXES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_TABLE_PARAMS = (
    Array("pointers", "uint64"),
    Array("sizes", "int64"),
    Array("block_tensor", "int32"),
    Array("block_start", "int64"),
    Scalar("chunk", "int64", low=4),
)
_SGD_SCALARS = (Scalar("lr", "float64"), Scalar("decay", "float64"), Scalar("momentum", "float64"),
                Scalar("nesterov", "int32", low=0, high=1))
_ADAM_SCALARS = (Scalar("lr_t", "float64"), Scalar("decay", "float64"), Scalar("beta1", "float64"),
                 Scalar("one_minus_beta1", "float64"), Scalar("beta2", "float64"),
                 Scalar("one_minus_beta2", "float64"), Scalar("eps", "float64"))

KERNELS = {
    (name, suffix): Kernel("optim.cu", f"{name}_{suffix}",
                           _TABLE_PARAMS + (_SGD_SCALARS if name.startswith("sgd") else _ADAM_SCALARS))
    for name in ("sgd_update", "sgd_momentum_update", "adam_update", "amsgrad_update") for suffix in ("f32", "f64")
}


def block_map(sizes: Sequence[int], chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Which block updates which elements: ``(block_tensor int32, block_start int64)``.

    Tensor t gets ceil(sizes[t] / chunk) blocks starting at 0, chunk, 2·chunk, ...; empty
    tensors get none. Every element of every tensor belongs to exactly one block.
    """
    counts = [math.ceil(size / chunk) for size in sizes]
    block_tensor = np.repeat(np.arange(len(sizes), dtype=np.int32), counts)
    block_start = np.concatenate([np.arange(count, dtype=np.int64) * chunk for count in counts] or
                                 [np.zeros(0, np.int64)])
    return block_tensor, block_start


@dataclass(frozen=True)
class _Tables:
    sizes: Any
    block_tensor: Any
    block_start: Any

    @property
    def blocks(self) -> int:
        return int(self.block_tensor.size)


@lru_cache(maxsize=16)
def _device_block_map(device_index: int, sizes: tuple[int, ...]) -> _Tables:
    cupy = backend.cupy()
    block_tensor, block_start = block_map(sizes)
    with cupy.cuda.Device(device_index):
        return _Tables(cupy.asarray(np.asarray(sizes, dtype=np.int64)), cupy.asarray(block_tensor),
                       cupy.asarray(block_start))


@lru_cache(maxsize=8)
def _device_pointers(device_index: int, pointers: tuple[int, ...], lists: int):
    cupy = backend.cupy()
    with cupy.cuda.Device(device_index):
        return cupy.asarray(np.asarray(pointers, dtype=np.uint64).reshape(-1, lists))


def check_lists(op: str, names: Sequence[str], lists: Sequence[Sequence[Any]]) -> None:
    """Every list as long as the first (the parameters), each entry shaped like its parameter.

    Raises:
        ValueError: naming the list, the index and both shapes or lengths.
    """
    params = lists[0]
    for name, arrays in zip(names[1:], lists[1:]):
        if len(arrays) != len(params):
            raise ValueError(f"{op}: {name} has {len(arrays)} arrays but params has {len(params)}")
        for i, (a, p) in enumerate(zip(arrays, params)):
            if tuple(a.shape) != tuple(p.shape):
                raise ValueError(f"{op}: {name}[{i}] has shape {tuple(a.shape)}, but params[{i}] has shape "
                                 f"{tuple(p.shape)}")


def _fusable(lists: Sequence[Sequence[Any]]) -> str | None:
    """The dtype suffix when every array is a C-contiguous CuPy array of one float dtype on one device."""
    first = lists[0][0]
    if first.dtype not in _SUFFIXES:
        return None
    for arrays in lists:
        for a in arrays:
            if not (backend.is_cuda_array(a) and a.dtype == first.dtype and a.flags.c_contiguous
                    and a.device.id == first.device.id):
                return None
    return _SUFFIXES[first.dtype]


def sequential_rounds(lists: Sequence[Sequence[Any]]) -> list[list[int]]:
    """The entries of the lists split into launches in which no array is updated twice.

    The same array may appear more than once (tied weights); in one launch two blocks would then
    update it at the same time and one update would be lost. The reference updates the entries
    one after another, so an entry that writes an array (its parameter or a slot; gradients are
    only read) an earlier entry writes goes into a later launch than that entry's. Without
    repeats there is one launch, of every entry.
    """
    written = [lists[0]] + list(lists[2:])
    latest: dict[int, int] = {}  # address -> the launch of the last entry writing it
    rounds: list[list[int]] = []
    for t in range(len(lists[0])):
        addresses = {int(arrays[t].data.ptr) for arrays in written}
        launch = max((latest[a] + 1 for a in addresses if a in latest), default=0)
        for address in addresses:
            latest[address] = launch
        if launch == len(rounds):
            rounds.append([])
        rounds[launch].append(t)
    return rounds


def _launch(name: str, suffix: str, lists: Sequence[Sequence[Any]], scalars: tuple) -> None:
    cupy = backend.cupy()
    device_index = lists[0][0].device.id
    with cupy.cuda.Device(device_index):
        for entries in sequential_rounds(lists):
            round_lists = [[arrays[t] for t in entries] for arrays in lists]
            tables = _device_block_map(device_index, tuple(int(p.size) for p in round_lists[0]))
            if tables.blocks == 0:
                continue
            pointers = tuple(int(arrays[t].data.ptr) for t in range(len(entries)) for arrays in round_lists)
            table = _device_pointers(device_index, pointers, len(lists))
            KERNELS[name, suffix].launch((tables.blocks,), (THREADS,),
                                         (table, tables.sizes, tables.block_tensor, tables.block_start, CHUNK) +
                                         scalars)


@register("sgd_update", CUDA)
def sgd_update(params, grads, velocities, *, lr, momentum, nesterov, weight_decay):
    """One fused SGD step over every parameter, in place; the signature of the reference in
    :mod:`cnnkit.optimizers.sgd`.

    Returns:
        None, or ``USE_REFERENCE`` for arrays the kernel does not take.
    """
    lists = [params, grads] + ([] if velocities is None else [velocities])
    check_lists("sgd_update", ("params", "grads", "velocities"), lists)
    suffix = _fusable(lists) if params else None
    if suffix is None:
        return USE_REFERENCE
    decay = 1.0 - lr * weight_decay if weight_decay else 1.0
    name = "sgd_update" if velocities is None else "sgd_momentum_update"
    _launch(name, suffix, lists, (float(lr), decay, float(momentum), int(bool(nesterov))))
    return None


@register("adam_update", CUDA)
def adam_update(params, grads, ms, vs, vhats, *, lr, beta1, beta2, eps, step, weight_decay):
    """One fused Adam / AMSGrad / AdamW step over every parameter, in place; the signature
    of the reference in :mod:`cnnkit.optimizers.adam`, with lr_t = lr · √(1 − β₂ᵗ) / (1 − β₁ᵗ)
    computed here.

    Returns:
        None, or ``USE_REFERENCE`` for arrays the kernel does not take.
    """
    lists = [params, grads, ms, vs] + ([] if vhats is None else [vhats])
    check_lists("adam_update", ("params", "grads", "ms", "vs", "vhats"), lists)
    suffix = _fusable(lists) if params else None
    if suffix is None:
        return USE_REFERENCE
    lr_t = lr * math.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)
    decay = 1.0 - lr * weight_decay if weight_decay else 1.0
    name = "adam_update" if vhats is None else "amsgrad_update"
    _launch(name, suffix, lists, (lr_t, decay, float(beta1), 1.0 - beta1, float(beta2), 1.0 - beta2, float(eps)))
    return None
