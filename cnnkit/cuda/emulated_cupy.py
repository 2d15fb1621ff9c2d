"""A stand-in for the part of CuPy that cnnkit uses, backed by NumPy, for kernel emulation.

With emulation on (:func:`cnnkit.cuda.use_emulation`, ``CNNKIT_KERNELS=emulate``),
:func:`cnnkit.backend.cupy` returns this module, so the CUDA wrappers run all of their
Python (dtype checks, planning, tile choice, allocation) on :class:`ndarray` values,
host arrays that pass for CuPy arrays on device 0, and :mod:`cnnkit.cuda.emulator` runs
the kernels themselves. Functions not defined here are NumPy's, with array results
returned as :class:`ndarray`; the reference implementations, written against ``xp``, so
run "under CuPy" as they would on a GPU.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

__version__ = "emulated"


class ndarray(np.ndarray):  # noqa: N801  (CuPy's name, so that isinstance(a, cupy.ndarray) works)
    """A host array that passes for a CuPy array on the emulated device 0."""

    @property
    def device(self):
        return _Device(0)

    @property
    def data(self):
        """Like CuPy's ``MemoryPointer``: ``.ptr`` is the address of the first element."""
        return SimpleNamespace(ptr=self.__array_interface__["data"][0])

    def get(self, stream=None, order="C", out=None) -> np.ndarray:
        """A copy in host memory, as CuPy's ``get``."""
        host = np.array(self, order=order).view(np.ndarray)
        if out is not None:
            out[...] = host
            return out
        return host

    def set(self, array, stream=None) -> None:
        self[...] = array


def _emulated(value: Any) -> Any:
    """Array results as :class:`ndarray` (tuples and lists element by element); others unchanged."""
    if isinstance(value, np.ndarray) and not isinstance(value, ndarray):
        return value.view(ndarray)
    if isinstance(value, tuple):
        return tuple(_emulated(v) for v in value)
    if isinstance(value, list):
        return [_emulated(v) for v in value]
    return value


def asarray(a, dtype=None, order=None) -> ndarray:
    """Upload: a copy of a host array, the array itself when it is already on the device."""
    if isinstance(a, ndarray) and (dtype is None or a.dtype == np.dtype(dtype)):
        return a
    return np.array(a, dtype=dtype, order=order or "K", copy=True).view(ndarray)


array = asarray


def ascontiguousarray(a, dtype=None) -> ndarray:
    return np.ascontiguousarray(a, dtype=dtype).view(ndarray)


def asnumpy(a, stream=None) -> np.ndarray:
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def get_array_module(*arrays):
    return __import__(__name__, fromlist=["ndarray"])


def __getattr__(name: str):
    """NumPy's function of that name, returning :class:`ndarray` results."""
    attribute = getattr(np, name)
    if not callable(attribute) or isinstance(attribute, type):
        return attribute

    def emulated(*args, **kwargs):
        return _emulated(attribute(*args, **kwargs))

    emulated.__name__ = name
    emulated.__doc__ = attribute.__doc__
    return emulated


# ---------------------------------------------------------------- cupy.cuda

class _Device:
    """``cupy.cuda.Device``: the one emulated device, usable as a context manager."""

    def __init__(self, device=None):
        index = 0 if device is None else int(getattr(device, "id", device))
        if index != 0:
            from ..backend import CudaUnavailableError
            raise CudaUnavailableError(f"device 'cuda:{index}' was asked for, but the kernel emulator "
                                       f"provides only cuda:0")
        self.id = 0
        self.compute_capability = f"{DEVICE_PROPERTIES['major']}{DEVICE_PROPERTIES['minor']}"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def use(self) -> None:
        pass

    def synchronize(self) -> None:
        pass  # every emulated launch has finished when it returns

    def __eq__(self, other) -> bool:
        return isinstance(other, _Device) and other.id == self.id

    def __hash__(self) -> int:
        return 0


# An H100 as the launch heuristics see it, so that emulation plans exactly as on the GPU.
DEVICE_PROPERTIES = {"name": b"cnnkit kernel emulator (H100 geometry)", "multiProcessorCount": 132,
                     "major": 9, "minor": 0, "sharedMemPerBlockOptin": 227 * 1024,
                     "totalGlobalMem": 80 * 2**30}


def _memory_info() -> tuple[int, int]:
    total = DEVICE_PROPERTIES["totalGlobalMem"]
    return total, total


class _Stream:
    null = None

    def synchronize(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False


class _MemoryPool:
    def used_bytes(self) -> int:
        return 0

    def total_bytes(self) -> int:
        return 0

    def free_all_blocks(self) -> None:
        pass

    def set_limit(self, size=None, fraction=None) -> None:
        pass


_memory_pool = _MemoryPool()


def get_default_memory_pool() -> _MemoryPool:
    return _memory_pool


cuda = SimpleNamespace(
    Device=_Device,
    Stream=_Stream,
    get_current_stream=lambda device=None: _Stream(),
    runtime=SimpleNamespace(getDevice=lambda: 0, getDeviceCount=lambda: 1,
                            getDeviceProperties=lambda index: dict(DEVICE_PROPERTIES), memGetInfo=_memory_info),
)


# ---------------------------------------------------------------- cupy.random

class _RandomState:
    def __init__(self, seed=None):
        self._state = np.random.RandomState(seed)

    def random_sample(self, size=None, dtype=float) -> ndarray:
        return _emulated(np.asarray(self._state.random_sample(size), dtype=dtype))

    def __getattr__(self, name: str):
        method = getattr(self._state, name)
        return lambda *args, **kwargs: _emulated(np.asarray(method(*args, **kwargs)))


random = SimpleNamespace(RandomState=_RandomState)
