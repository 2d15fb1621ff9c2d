"""Where a benchmark runs: the array module, the clock, inputs, cache flushing and run settings.

A :class:`BenchDevice` is the one object a suite needs to know about the CPU or a
GPU, so the suites themselves never branch on the device: they ask it for random
inputs, time work with :meth:`BenchDevice.measure` (``perf_counter`` on the CPU,
CUDA events on the GPU), and flush the caches before memory-bound runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import backend
from . import torch_ref
from .timing import Clock, CudaEventClock, HostClock, Timing, measure

# Overwritten before each memory-bound run so it starts from DRAM: larger than the
# last-level cache of the CPUs and GPUs we meet (H100: 50 MB L2; 2-core VM: 32 MB L3).
FLUSH_BYTES = {"cpu": 64 * 2**20, "cuda": 256 * 2**20}


@dataclass(frozen=True)
class RunSettings:
    """How many times each measurement runs.

    Attributes:
        warmup: calls after the first one, not timed.
        repeat: timed calls wanted.
        max_seconds: time budget of one measurement (see :func:`~cnnkit.bench.timing.measure`).
    """

    warmup: int
    repeat: int
    max_seconds: float


class BenchDevice:
    """The CPU (``"cpu"``) or one GPU (``"cuda:N"``) as the benchmarks see it.

    Args:
        spec: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        settings: warm-up, repeats and budget for this device.
    """

    def __init__(self, spec: str, settings: RunSettings):
        self.device = backend.Device(spec)
        self.settings = settings
        self.xp = self.device.xp
        with self.device.activate():  # CUDA events belong to the device current when they are made
            self.clock: Clock = CudaEventClock(self.xp) if self.device.is_cuda else HostClock()
        self._flush_buffer = None

    @property
    def is_cuda(self) -> bool:
        return self.device.is_cuda

    @property
    def kind(self) -> str:
        return self.device.kind

    @property
    def name(self) -> str:
        return str(self.device)

    @property
    def torch_device(self) -> str:
        return self.name

    def torch_clock(self, torch) -> Clock:
        """The clock for PyTorch work on this device."""
        if self.is_cuda:
            return torch_ref.TorchEventClock(torch, self.device.index)
        return HostClock()

    def random(self, shape: tuple, seed: int, dtype: Any = np.float32):
        """Standard-normal values of ``shape`` made on this device (never zeros: they time differently)."""
        with self.device.activate():
            if self.is_cuda:
                return self.xp.random.RandomState(seed).standard_normal(shape, dtype=dtype)
            return np.random.default_rng(seed).standard_normal(shape, dtype=dtype)

    def integers(self, high: int, shape: tuple, seed: int):
        """Uniform int64 values in [0, high) of ``shape`` on this device."""
        with self.device.activate():
            if self.is_cuda:
                return self.xp.random.RandomState(seed).randint(0, high, size=shape, dtype=np.int64)
            return np.random.default_rng(seed).integers(0, high, size=shape, dtype=np.int64)

    def flush(self) -> None:
        """Overwrite a buffer larger than the last-level cache, so the next run reads from memory."""
        if self._flush_buffer is None:
            with self.device.activate():
                self._flush_buffer = self.xp.empty(FLUSH_BYTES[self.kind] // 4, dtype=np.float32)
        self._flush_buffer.fill(1.0)

    def synchronize(self) -> None:
        if self.is_cuda:
            self.xp.cuda.Device(self.device.index).synchronize()

    def release_memory(self) -> None:
        """Give cached pool memory back between suites (CuPy's pool; PyTorch's when loaded)."""
        self._flush_buffer = None
        if self.is_cuda:
            self.synchronize()
            self.xp.get_default_memory_pool().free_all_blocks()
            torch_ref.release_cuda_memory()

    def measure(self, fn: Callable[[], Any], clock: Clock | None = None, flush: bool = False) -> Timing:
        """Time ``fn`` with this device's settings (and clock unless another is given).

        Args:
            flush: overwrite the cache-sized buffer before every call, untimed.
        """
        with self.device.activate():
            return measure(fn, clock or self.clock, self.settings.warmup, self.settings.repeat,
                           max_seconds=self.settings.max_seconds, before_each=self.flush if flush else None)
