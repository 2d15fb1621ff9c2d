"""CPU stand-ins for CuPy that record kernel launches instead of running them.

:func:`fake` makes the stand-in device arrays: enough for the launcher's argument checks
on their own. With the ``recorded_launches`` fixture (offered to every test by
``tests/conftest.py``), a CUDA wrapper called on :class:`FakeCudaArray`
inputs runs all of its Python (dtype and shape dispatch, planning, allocation) and each
``Kernel.launch`` checks its arguments against the kernel's declared parameters and
records the launch instead of compiling anything. Outputs are left uninitialised: these
tests look at which kernels run with which arguments, not at values.

:func:`kernel_entries` lists the ``extern "C"`` entry points of a kernel file as its
source spells them out; :func:`nvcc_report` compiles a file for sm_90 and returns ptxas'
resource report.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import pytest

from cnnkit import backend
from cnnkit.cuda import launcher

SM_COUNT = 4


class FakeCudaArray(np.ndarray):
    """A NumPy array that passes for a CuPy array on device ``device_id`` (the one fake device array of the tests)."""

    def __array_finalize__(self, obj):
        self.device_id = getattr(obj, "device_id", 0)  # views and results stay on their source's device

    @property
    def device(self):
        return SimpleNamespace(id=self.device_id)

    @property
    def data(self):
        return SimpleNamespace(ptr=self.__array_interface__["data"][0])

    def set(self, host, stream=None):
        """CuPy's host-to-device copy (asynchronous on ``stream`` from pinned memory); remembers the stream."""
        np.copyto(self, host)
        self.uploaded_on = stream

    # ---- reads on the host, recorded (with the line of cnnkit that asked) when host_reads is a list
    host_reads: list | None = None

    def _read(self, how: str) -> np.ndarray:
        if FakeCudaArray.host_reads is not None:
            caller = next((frame for frame in reversed(traceback.extract_stack()[:-2])
                           if "/cnnkit/" in frame.filename.replace("\\", "/")), None)
            where = f"{caller.filename.rsplit('/cnnkit/', 1)[-1]}:{caller.lineno}" if caller else "?"
            FakeCudaArray.host_reads.append(f"{how} at {where}")
        return np.asarray(self).view(np.ndarray)

    def get(self):
        return self._read("get()").copy()

    def item(self, *args):
        return self._read("item()").item(*args)

    def tolist(self):
        return self._read("tolist()").tolist()

    def __float__(self):
        return float(self._read("float()"))

    def __int__(self):
        return int(self._read("int()"))

    def __index__(self):
        return self._read("index").__index__()

    def __bool__(self):
        return bool(self._read("bool()"))

    # ---- as in CuPy, indexing and reductions stay on the device
    def __getitem__(self, index):
        self._count_mask(index)
        return self._on_my_device(super().__getitem__(host_index(index)))

    def __setitem__(self, index, value):
        self._count_mask(index)
        super().__setitem__(host_index(index), value)

    def _count_mask(self, index) -> None:
        """Boolean-mask indexing makes CuPy read the number of selected elements on the host."""
        for part in index if isinstance(index, tuple) else (index,):
            if isinstance(part, FakeCudaArray) and part.dtype == bool and part.ndim:
                part._read("boolean-mask indexing")

    def __array_wrap__(self, array, context=None, return_scalar=False):
        return self._on_my_device(array)  # never a host scalar

    def _on_my_device(self, value):
        if isinstance(value, FakeCudaArray):
            return value
        if isinstance(value, (np.ndarray, np.generic)):
            return fake(np.asarray(value), device=self.device_id)
        return value


def host_index(index):
    """Index arrays as NumPy takes them (on a GPU indexing stays on the device: nothing is read)."""
    if isinstance(index, FakeCudaArray):
        return np.asarray(index).view(np.ndarray)
    if isinstance(index, tuple):
        return tuple(host_index(i) for i in index)
    return index


def fake(array, dtype=None, device: int = 0) -> FakeCudaArray:
    """``array`` as a :class:`FakeCudaArray` on ``device`` (sharing memory when no conversion is needed)."""
    result = np.asarray(array, dtype=dtype).view(FakeCudaArray)
    result.device_id = device
    return result


def is_fake(value) -> bool:
    return isinstance(value, FakeCudaArray)


class _DeviceContext:
    def __init__(self, index=0):
        self.id = index

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _FakeCupy:
    """The few CuPy functions the wrappers call; everything else is NumPy's (for reference fallbacks)."""

    ndarray = FakeCudaArray
    cuda = SimpleNamespace(Device=_DeviceContext)

    @staticmethod
    def asarray(a, dtype=None):
        return fake(a, dtype)

    @staticmethod
    def ascontiguousarray(a, dtype=None):
        return fake(np.ascontiguousarray(a, dtype=dtype))

    @staticmethod
    def empty(shape, dtype=float):
        return fake(np.empty(shape, dtype=dtype))

    @staticmethod
    def empty_like(a, dtype=None):
        return fake(np.empty(a.shape, dtype=a.dtype if dtype is None else dtype))

    def __getattr__(self, name):
        return getattr(np, name)


@dataclass
class Launch:
    kernel: launcher.Kernel
    grid: tuple
    block: tuple
    args: tuple  # as checked: arrays as given, scalars as NumPy scalars of the declared type

    @property
    def name(self) -> str:
        return self.kernel.name

    def arg(self, name: str):
        return self.args[[p.name for p in self.kernel.params].index(name)]


@pytest.fixture
def recorded_launches(monkeypatch) -> list[Launch]:
    """Make FakeCudaArray count as a CuPy array and record every kernel launch (checked) in the list."""
    launches: list[Launch] = []
    cupy = _FakeCupy()
    properties = launcher.DeviceProperties(0, "recorder", SM_COUNT, (9, 0), 227 * 1024)

    def record(self, grid, block, args, shared_memory=0):
        checked = self.check(args, 0, is_device_array=is_fake)
        grid, block = launcher.check_launch_shape(self.name, grid, block)
        launches.append(Launch(self, grid, block, checked))

    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(backend, "cupy", lambda: cupy)
    monkeypatch.setattr(backend, "is_cuda_array", is_fake)
    monkeypatch.setattr(launcher, "device_properties", lambda index: properties)
    monkeypatch.setattr(launcher.Kernel, "launch", record)
    return launches


# An entry point is spelled out in its file: defined at the start of a line, or named as the
# first argument of an *_ENTRY macro (the macros' own definitions start with #define).
_ENTRY = re.compile(r'^(?:[A-Z0-9_]+_ENTRY\(\s*(\w+)\s*,|extern "C" __global__ void (?:__launch_bounds__\([^)]*\)\s*)?(\w+)\s*\()',
                    re.MULTILINE)


@lru_cache(maxsize=None)
def kernel_entries(file_name: str) -> frozenset:
    """The ``extern "C"`` entry points of ``kernels/<file_name>``, read from the source as written."""
    source = (launcher.kernel_source_dir() / file_name).read_text()
    return frozenset(macro_argument or definition for macro_argument, definition in _ENTRY.findall(source))


@dataclass(frozen=True)
class PtxasReport:
    entries: frozenset
    spills: dict  # entry -> (spill store bytes, spill load bytes)
    log: str


@lru_cache(maxsize=None)
def nvcc_report(file_name: str, arch: str = "sm_90") -> PtxasReport:
    """Compile ``kernels/<file_name>`` to a cubin with ``nvcc -Xptxas -v`` (skips without nvcc)."""
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    source = launcher.kernel_source_dir() / file_name
    result = subprocess.run(["nvcc", "-cubin", f"-arch={arch}", "-Xptxas", "-v", "-o", "/dev/null", str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    entries, spills, current = set(), {}, None
    for line in result.stderr.splitlines():
        match = re.search(r"Compiling entry function '(\w+)'", line)
        if match:
            current = match.group(1)
            entries.add(current)
        match = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if match and current:
            spills[current] = (int(match.group(1)), int(match.group(2)))
    return PtxasReport(frozenset(entries), spills, result.stderr)
