"""Which code computes an op: the NumPy reference, a CPU variant, or a hand-written CUDA kernel.

Ops never branch on the device. They call ``impl("relu", x)`` and this module picks:
on CuPy arrays the CUDA kernel registered for that op (see :mod:`cnnkit.cuda`); on
NumPy arrays the CPU variant where one is registered (see :mod:`cnnkit.cpu`: the
reference run over batch shards on every core); otherwise the reference
implementation, which is written against ``xp`` and so also runs on CuPy when no
kernel is registered. The references are the specification every kernel and
variant is tested against. Importing :mod:`cnnkit` imports the references (with the
ops and optimizers), the CPU variants and the CUDA wrappers (which need no CuPy to
import), and each registers itself here.

A kernel or variant that does not take the arguments it was given (a dtype it has no
kernel for, a shape too small to shard) returns :data:`USE_REFERENCE`, and this module
runs the reference instead, as Chainer's ``Fallback`` does. So the backends never
import the references, and dependencies point one way: ops and optimizers register
references here, and backends register implementations here, and neither imports
the other.

Our CUDA kernels have not yet been validated on GPU hardware, so they are opt-in:
``CNNKIT_KERNELS=cuda`` (or :func:`use_cuda_kernels`) turns them on; by default a GPU
runs the references through CuPy (cuBLAS for the products). ``CNNKIT_KERNELS=reference``
states the default explicitly. ``CNNKIT_KERNELS=emulate`` (or :func:`cnnkit.cuda.use_emulation`)
runs the CUDA kernels on the CPU, compiled for the host (:mod:`cnnkit.cuda.emulator`).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

from . import backend

REFERENCE = "reference"
CPU = "cpu"
CUDA = "cuda"
EMULATE = "emulate"


class _UseReference:
    """The type of :data:`USE_REFERENCE`."""

    def __repr__(self) -> str:
        return "USE_REFERENCE"


# What a CUDA kernel or CPU variant returns for arguments it does not take: "run the reference".
USE_REFERENCE = _UseReference()

_implementations: dict[tuple[str, str], Callable] = {}
_KERNEL_CHOICES = (REFERENCE, CUDA, EMULATE)
_kernel_choice = os.environ.get("CNNKIT_KERNELS", REFERENCE).strip().lower()
if _kernel_choice not in _KERNEL_CHOICES:
    raise ValueError(f"CNNKIT_KERNELS must be one of {', '.join(_KERNEL_CHOICES)}, got {_kernel_choice!r}")
_cuda_kernels_enabled = _kernel_choice in (CUDA, EMULATE)


def register(name: str, backend_name: str = REFERENCE) -> Callable[[Callable], Callable]:
    """Decorator: make ``fn`` the ``backend_name`` implementation of op ``name``."""
    if backend_name not in (REFERENCE, CPU, CUDA):
        raise ValueError(f"backend_name must be {REFERENCE!r}, {CPU!r} or {CUDA!r}, got {backend_name!r}")

    def decorate(fn: Callable) -> Callable:
        _implementations[(name, backend_name)] = fn
        return fn

    return decorate


def lookup(name: str, on_gpu: bool) -> Callable:
    """The implementation ``impl`` tries first for op ``name`` (it may return :data:`USE_REFERENCE`)."""
    return choose(name, on_gpu)[0]


def choose(name: str, on_gpu: bool) -> tuple[Callable, str]:
    """The implementation of op ``name`` for a device, and why it is the one (shown by ``cnnkit kernels``)."""
    if on_gpu:
        kernel = _implementations.get((name, CUDA))
        if kernel is not None and _cuda_kernels_enabled:
            return kernel, "our CUDA kernel (CNNKIT_KERNELS=cuda)"
        reason = ("our CUDA kernel is opt-in until validated on a GPU (CNNKIT_KERNELS=cuda)" if kernel is not None
                  else "no CUDA kernel for this op")
    else:
        variant = _implementations.get((name, CPU))
        if variant is not None:
            return variant, "the CPU variant measured faster than the reference"
        reason = "no CPU variant for this op"
    return reference(name), reason


def reference(name: str) -> Callable:
    """The reference implementation of op ``name``: array-generic, so it runs on any device's arrays.

    Checks of a kernel against the specification use this, never :func:`lookup` with
    ``on_gpu=False``: that may return a CPU variant, which only takes NumPy arrays.
    """
    try:
        return _implementations[(name, REFERENCE)]
    except KeyError:
        known = sorted({key[0] for key in _implementations})
        raise KeyError(f"no implementation registered for op {name!r}; known ops: {', '.join(known)}") from None


def _device_array(argument):
    """The argument if it is a CuPy array, the first element of a list of arrays (multi-tensor ops) if that is one."""
    if isinstance(argument, (list, tuple)):
        argument = argument[0] if argument else None
    return argument if backend.is_cuda_array(argument) else None


def impl(name: str, *args, **kwargs):
    """Run op ``name`` with the implementation for the device of its array arguments.

    Arguments may be arrays or lists of arrays (multi-tensor ops such as optimizer
    updates, where every list lives on one device). On a GPU the op runs with the
    device of its first GPU array made current, so arrays on ``cuda:1`` are computed
    by device 1 (not by device 0 reading them over peer access), and whatever the
    op allocates lands there too. Where the chosen kernel or variant returns
    :data:`USE_REFERENCE`, the reference runs on the same arguments.
    """
    for argument in args:
        array = _device_array(argument)
        if array is not None:
            with backend.device_of_array(array):
                return _run(name, True, args, kwargs)
    return _run(name, False, args, kwargs)


def _run(name: str, on_gpu: bool, args: tuple, kwargs: dict):
    result = lookup(name, on_gpu)(*args, **kwargs)
    if result is USE_REFERENCE:
        return reference(name)(*args, **kwargs)
    return result


def has_cuda_kernel(name: str) -> bool:
    return (name, CUDA) in _implementations


def registered_ops() -> dict[str, tuple[str, ...]]:
    """Every op name with the backends that implement it (for ``cnnkit kernels``)."""
    table: dict[str, list[str]] = {}
    for name, backend_name in _implementations:
        table.setdefault(name, []).append(backend_name)
    return {name: tuple(sorted(backends)) for name, backends in sorted(table.items())}


def cuda_kernels_enabled() -> bool:
    return _cuda_kernels_enabled


def enable_cuda_kernels(enabled: bool) -> None:
    """Choose between our CUDA kernels and the references on the GPU, until changed again."""
    global _cuda_kernels_enabled
    _cuda_kernels_enabled = enabled


@contextmanager
def use_cuda_kernels(enabled: bool) -> Iterator[None]:
    """Temporarily choose between our CUDA kernels and the references on the GPU."""
    global _cuda_kernels_enabled
    previous, _cuda_kernels_enabled = _cuda_kernels_enabled, enabled
    try:
        yield
    finally:
        _cuda_kernels_enabled = previous



def kernel_choice() -> str:
    """What ``CNNKIT_KERNELS`` asked for at start-up: "reference", "cuda" or "emulate"."""
    return _kernel_choice
