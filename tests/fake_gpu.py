"""A fake device layer: NumPy arrays that pass for CuPy arrays on a chosen GPU, and a CuPy
stand-in that records which device was current when work, events and streams were made.

With the ``fake_gpu`` fixture, ``cnnkit.backend`` sees the one fake device array of the
tests (:class:`~tests.cuda.launch_recorder.FakeCudaArray`) as CuPy arrays and a machine with ``GPU_COUNT`` GPUs; the array-generic references run on them
through NumPy. No kernel is compiled or launched (those go through
``tests/cuda/launch_recorder.py``). ``FakeCupy.current`` is the index of the current
device, moved by ``cupy.cuda.Device(i)`` used as a context, as in CuPy.

As in CuPy, results stay on the device (NumPy's functions through the stand-in give
device arrays; indexing and reductions give 0-d device arrays, never host scalars), and
with the fixture every way a value reaches the host is recorded in ``FakeCupy.host_reads``
(see :class:`~tests.cuda.launch_recorder.FakeCudaArray`), so tests can count
device-to-host reads.
"""
from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from cnnkit import backend, registry
from tests.cuda.launch_recorder import FakeCudaArray, _FakeCupy, fake, host_index

GPU_COUNT = 2
FREE_BYTES = 8 << 30  # what each fake GPU reports free


def on_device(array, index: int = 0, dtype=None) -> FakeCudaArray:
    """A copy of ``array`` on fake device ``index``."""
    return fake(np.array(array, dtype=dtype), device=index)


class FakeCuda:
    """``cupy.cuda``: a device context that moves ``current``, events and streams that remember their device."""

    def __init__(self):
        self.current = 0
        self.events, self.streams, self.pinned = [], [], []
        owner = self

        class Device:
            def __init__(self, index=None):
                self.id = owner.current if index is None else int(index)

            def __enter__(self):
                self._previous, owner.current = owner.current, self.id
                return self

            def __exit__(self, *exc):
                owner.current = self._previous
                return False

            def synchronize(self):
                pass

        class Event:
            def __init__(self, *args, **kwargs):
                self.device = owner.current
                self.recorded_on = None
                owner.events.append(self)

            def record(self, stream=None):
                self.recorded_on = stream

            def synchronize(self):
                pass

        class Stream:
            def __init__(self, non_blocking=False):
                self.device = owner.current
                self.waited_for = []
                owner.streams.append(self)

            def wait_event(self, event):
                self.waited_for.append(event)

            def synchronize(self):
                pass

            def __enter__(self):
                self._previous, owner.current_stream = owner.current_stream, self
                return self

            def __exit__(self, *exc):
                owner.current_stream = self._previous
                return False

        self.Device, self.Event, self.Stream = Device, Event, Stream
        self.null_stream = self.current_stream = Stream()
        self.runtime = SimpleNamespace(getDeviceCount=lambda: GPU_COUNT, getDevice=lambda: owner.current,
                                       memGetInfo=lambda: (FREE_BYTES, 2 * FREE_BYTES))

    def get_current_stream(self):
        return self.current_stream

    def alloc_pinned_memory(self, nbytes):
        self.pinned.append(nbytes)
        return bytearray(nbytes)

    def get_elapsed_time(self, start, end):
        return 1.0


class FakeLinalg:
    """``cupy._core._routines_linalg``: the cuBLAS compute type of float32 products (TF32 to begin
    with, as ``CUPY_TF32=1`` would make it)."""

    NAMES = ("COMPUTE_TYPE_TBD", "COMPUTE_TYPE_DEFAULT", "COMPUTE_TYPE_PEDANTIC", "COMPUTE_TYPE_FP16",
             "COMPUTE_TYPE_FP32", "COMPUTE_TYPE_FP64", "COMPUTE_TYPE_BF16", "COMPUTE_TYPE_TF32")

    def __init__(self):
        self.float32 = self.NAMES.index("COMPUTE_TYPE_TF32")

    def compute_type_to_str(self, code):
        return {code: name for code, name in enumerate(self.NAMES)}[code]  # KeyError past the end, as CuPy

    def get_compute_type(self, dtype):
        assert np.dtype(dtype) == np.float32
        return self.float32

    def set_compute_type(self, dtype, code):
        assert np.dtype(dtype) == np.float32 and 0 <= code < len(self.NAMES)
        self.float32 = code

    @property
    def float32_name(self) -> str:
        return self.NAMES[self.float32]


class FakeCupy(_FakeCupy):
    """CuPy with a :class:`FakeCuda` and arrays made on the current device; the rest is NumPy."""

    ndarray = FakeCudaArray
    __version__ = "14.2.0 (fake)"

    def __init__(self):
        self.cuda = FakeCuda()
        self._core = SimpleNamespace(_routines_linalg=FakeLinalg())
        outer = self

        class RandomState:
            def __init__(self, seed):
                self.generator = np.random.default_rng(seed)

            def standard_normal(self, shape, dtype=np.float64):
                return outer.asarray(self.generator.standard_normal(shape, dtype=dtype))

            def randint(self, low, high, size, dtype=np.int64):
                return outer.asarray(self.generator.integers(low, high, size=size, dtype=dtype))

        self.random = SimpleNamespace(RandomState=RandomState)

    @property
    def current(self) -> int:
        return self.cuda.current

    def asarray(self, a, dtype=None):
        if isinstance(a, FakeCudaArray) and a.device_id == self.current and dtype in (None, a.dtype):
            return a
        return on_device(a, self.current, dtype)

    def ascontiguousarray(self, a, dtype=None):
        return on_device(np.ascontiguousarray(a, dtype=dtype), self.current)

    def empty(self, shape, dtype=float):
        return on_device(np.empty(shape, dtype=dtype), self.current)

    def empty_like(self, a, dtype=None):
        return self.empty(a.shape, a.dtype if dtype is None else dtype)

    def full(self, shape, value, dtype=None):
        return on_device(np.full(shape, value, dtype=dtype), self.current)

    def get_default_memory_pool(self):
        return SimpleNamespace(free_all_blocks=lambda: None, used_bytes=lambda: 0, total_bytes=lambda: 0)

    @property
    def host_reads(self) -> list:
        return FakeCudaArray.host_reads

    def __getattr__(self, name):
        value = getattr(np, name)
        if isinstance(value, type) or not callable(value):
            return value

        def on_current_device(*args, **kwargs):
            return self._on_current_device(value(*args, **kwargs))

        return on_current_device

    def _on_current_device(self, value):
        """NumPy's results as CuPy's would be: arrays on the current device."""
        if isinstance(value, FakeCudaArray):
            return value
        if isinstance(value, (np.ndarray, np.generic)):
            return on_device(value, self.current)
        if isinstance(value, tuple):
            return tuple(self._on_current_device(v) for v in value)
        return value


def _refusing_device_arrays(variant):
    """A CPU variant that, like NumPy code handed a CuPy array, refuses device arrays."""

    def refuse(*args, **kwargs):
        for argument in args:
            if isinstance(argument, FakeCudaArray):
                raise TypeError(f"{variant.__qualname__} got a device array: implicit conversion to a NumPy "
                                "array is not allowed (what CuPy says)")
        return variant(*args, **kwargs)

    return refuse


@pytest.fixture
def fake_gpu(monkeypatch) -> FakeCupy:
    """Install a :class:`FakeCupy` with ``GPU_COUNT`` GPUs as CuPy for the test; the CUDA kernels stay off.

    The CPU variants of the registry refuse fake device arrays, as they would fail on CuPy ones.
    """
    for key, variant in list(registry._implementations.items()):
        if key[1] == registry.CPU:
            monkeypatch.setitem(registry._implementations, key, _refusing_device_arrays(variant))
    cupy = FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(backend, "_cupy_module", cupy)
    monkeypatch.setattr(backend, "cupy", lambda: cupy)
    monkeypatch.setattr(backend, "is_cuda_array", lambda a: isinstance(a, FakeCudaArray))
    monkeypatch.setattr(backend, "cuda_device_count", lambda: GPU_COUNT)
    monkeypatch.setattr(backend, "_library_problems", [])  # cuBLAS, cuRAND and NVRTC load
    monkeypatch.setattr(registry, "_cuda_kernels_enabled", False)
    monkeypatch.setattr(FakeCudaArray, "host_reads", [])
    monkeypatch.setitem(sys.modules, "cupyx", SimpleNamespace(
        scatter_add=lambda target, index, values: np.add.at(target, host_index(index), values)))
    return cupy
