"""A recording fake of the device layer: NumPy arrays that pass for CuPy arrays and count host reads.

With the ``fake_gpu`` fixture, ``Device("cuda")`` exists, arrays moved there are
:class:`DeviceArray` objects, and the references run on them through a stand-in for
the ``cupy`` module (NumPy's functions, their results kept on the "device"). Every way
a value reaches the host from a CuPy array (``.get()``, ``float()``, ``int()``,
``bool()``, ``.item()``, ``.tolist()``) is recorded with the line of cnnkit that asked
for it, so tests can count the device-to-host reads of a training step. Like CuPy,
indexing and reductions give 0-d device arrays, never host scalars.
"""
from __future__ import annotations

import sys
import traceback
from types import SimpleNamespace

import numpy as np
import pytest

from cnnkit import backend, registry


class DeviceArray(np.ndarray):
    """A NumPy array on the fake device 0; reading it on the host is recorded."""

    reads: list | None = None  # set by the fixture

    @property
    def device(self):
        return SimpleNamespace(id=0)

    def _read(self, how: str) -> None:
        if DeviceArray.reads is not None:
            caller = next((frame for frame in reversed(traceback.extract_stack()[:-2])
                           if "/cnnkit/" in frame.filename.replace("\\", "/")), None)
            where = f"{caller.filename.rsplit('/cnnkit/', 1)[-1]}:{caller.lineno}" if caller else "?"
            DeviceArray.reads.append(f"{how} at {where}")

    def _host(self) -> np.ndarray:
        return np.asarray(self).view(np.ndarray)

    def get(self):
        self._read("get()")
        return self._host().copy()

    def item(self, *args):
        self._read("item()")
        return self._host().item(*args)

    def tolist(self):
        self._read("tolist()")
        return self._host().tolist()

    def __float__(self):
        self._read("float()")
        return float(self._host())

    def __int__(self):
        self._read("int()")
        return int(self._host())

    def __index__(self):
        self._read("index")
        return self._host().__index__()

    def __bool__(self):
        self._read("bool()")
        return bool(self._host())

    def __getitem__(self, index):
        return _on_device(super().__getitem__(_host_index(index)))

    def __setitem__(self, index, value):
        super().__setitem__(_host_index(index), value)

    def __array_wrap__(self, array, context=None, return_scalar=False):
        # CuPy never turns a 0-d result into a host scalar.
        return np.asarray(array).view(DeviceArray)


def _host_index(index):
    """Index arrays as NumPy reads them (without counting: on a GPU indexing stays on the device)."""
    if isinstance(index, DeviceArray):
        return index._host()
    if isinstance(index, tuple):
        return tuple(i._host() if isinstance(i, DeviceArray) else i for i in index)
    return index


def _on_device(value):
    if isinstance(value, DeviceArray):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value).view(DeviceArray)
    if isinstance(value, tuple):
        return tuple(_on_device(v) for v in value)
    return value


class _Context:
    def __init__(self, index=0):
        self.id = index

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


class FakeCupy:
    """The ``cupy`` module as the references use it: NumPy's functions, results on the device."""

    ndarray = DeviceArray
    cuda = SimpleNamespace(Device=_Context, runtime=SimpleNamespace(getDeviceCount=lambda: 1, getDevice=lambda: 0))

    @staticmethod
    def asarray(a, dtype=None):
        host = a._host() if isinstance(a, DeviceArray) else a
        return np.array(host, dtype=dtype).view(DeviceArray)

    @staticmethod
    def asnumpy(a):
        return a.get() if isinstance(a, DeviceArray) else np.asarray(a)

    def __getattr__(self, name):
        value = getattr(np, name)
        if isinstance(value, type) or not callable(value):
            return value

        def on_device(*args, **kwargs):
            return _on_device(value(*args, **kwargs))

        return on_device


@pytest.fixture
def fake_gpu(monkeypatch):
    """One fake GPU; yields the list of host reads (descriptions), emptied by the test as it likes."""
    reads: list[str] = []
    cupy = FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", SimpleNamespace(
        scatter_add=lambda target, index, values: np.add.at(target, _host_index(index), values)))
    monkeypatch.setattr(backend, "cupy", lambda: cupy)
    monkeypatch.setattr(backend, "is_cuda_array", lambda a: isinstance(a, DeviceArray))
    monkeypatch.setattr(backend, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(DeviceArray, "reads", reads)
    with registry.use_cuda_kernels(False):
        yield reads
