"""Running the CUDA kernels on the CPU: the same ``kernels/*.cu`` source, compiled for the host.

Each kernel file is compiled as C++17 by the system C++ compiler (``$CXX``, else g++ or
clang++) with ``kernels/emulate/cuda_host.h`` force-included, into a shared library cached
by the hash of everything that goes into it (:func:`emulation_cache_dir`). The threads of
a block run as cooperative fibers, so ``__syncthreads`` and the warp collectives are real
rendezvous points; blocks run one after another (kernels/emulate/runtime.cpp).

:func:`launch` is what :meth:`cnnkit.cuda.launcher.Kernel.launch` calls with emulation on:
it stages every array argument in a buffer with guard pages around it, runs the kernel
with the grid, block, shared memory and scalar types of the GPU launch, and copies what
the kernel wrote back. A fault (a divergent barrier, a warp collective with inactive
lanes, shared memory beyond the launch's size, a read or write outside an argument)
raises :class:`KernelFault` naming the kernel, the block and the thread.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .. import backend
from . import emulated_cupy
from .launcher import Array, KernelCompileError, Scalar, kernel_source_dir, read_kernel_source

# -O1 keeps the build of all five kernel files near half a minute on two cores while running
# them several times faster than -O0; -g keeps them debuggable. Strict aliasing is off because
# the kernels reinterpret float arrays as float4 as CUDA allows.
COMPILE_FLAGS = ("-std=c++17", "-O1", "-g", "-fPIC", "-shared", "-fvisibility=hidden", "-fno-strict-aliasing",
                 "-U_FORTIFY_SOURCE", "-w")
_MESSAGE_BYTES = 4096


class KernelFault(RuntimeError):
    """An emulated kernel did something that is wrong on a GPU; the message names kernel, block and thread."""


class EmulatorUnavailableError(RuntimeError):
    """No C++ compiler to build the emulated kernels with, or a platform the emulator does not support."""


# ---------------------------------------------------------------- on and off

def use_emulation(enabled: bool = True) -> None:
    """Run cnnkit's CUDA kernels on the CPU (or stop doing so).

    With emulation on, ``cupy`` as cnnkit sees it is :mod:`cnnkit.cuda.emulated_cupy`: device
    "cuda:0" exists, its arrays are host memory, and every op with a CUDA kernel runs that
    kernel, compiled for the host, through exactly the wrapper code the GPU uses. The same as
    starting with ``CNNKIT_KERNELS=emulate``.
    """
    from .. import registry

    if sys.platform != "linux" or os.uname().machine != "x86_64":
        raise EmulatorUnavailableError(f"the kernel emulator runs on x86-64 Linux only, not on "
                                       f"{sys.platform}/{os.uname().machine}")
    backend.install_cupy_stand_in(emulated_cupy if enabled else None)
    registry.enable_cuda_kernels(enabled)


def is_active() -> bool:
    """True while the kernels run in emulation."""
    return backend.cupy_stand_in() is emulated_cupy


_block_order = "forward"


@contextmanager
def block_order(order: str) -> Iterator[None]:
    """Run the blocks of every launch in ``"forward"`` (the default) or ``"reverse"`` order.

    A GPU runs blocks in no fixed order; results that change when the order does reveal
    blocks that depend on each other (a race between blocks).
    """
    global _block_order
    if order not in ("forward", "reverse"):
        raise ValueError(f"block order must be 'forward' or 'reverse', got {order!r}")
    previous, _block_order = _block_order, order
    try:
        yield
    finally:
        _block_order = previous


# ---------------------------------------------------------------- building

def emulation_cache_dir() -> Path:
    """Where host builds of the kernels are cached: ``$CNNKIT_EMULATE_CACHE``, else ``~/.cache/cnnkit/emulate``."""
    configured = os.environ.get("CNNKIT_EMULATE_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "cnnkit" / "emulate"


def compiler() -> str:
    """The C++ compiler: ``$CXX``, else g++ or clang++ from PATH."""
    for candidate in (os.environ.get("CXX"), "g++", "clang++"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    raise EmulatorUnavailableError("kernel emulation compiles kernels/*.cu for the host and needs a C++17 "
                                   "compiler: install g++ (or set CXX)")


def _emulate_dir() -> Path:
    return kernel_source_dir() / "emulate"



@functools.lru_cache(maxsize=1)
def _compiler_identity() -> str:
    return subprocess.run([compiler(), "--version"], capture_output=True, text=True, timeout=60).stdout


def _build(name: str, source_text: str, extra_flags: Sequence[str] = ()) -> Path:
    """The shared library built from ``source_text``, compiled once per distinct input and cached.

    The cache key covers the source, every file under ``kernels/emulate``, the flags and the
    compiler's version, so editing any of them rebuilds.
    """
    headers = sorted(_emulate_dir().iterdir())
    digest = hashlib.sha256()
    for part in [source_text, _compiler_identity(), " ".join(COMPILE_FLAGS + tuple(extra_flags))]:
        digest.update(part.encode())
    for header in headers:
        digest.update(header.name.encode() + header.read_bytes())
    key = digest.hexdigest()[:20]
    directory = emulation_cache_dir()
    library = directory / f"{name}-{key}.so"
    if library.is_file():
        return library
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / f"{name}-{key}.cpp"  # what was compiled, kept beside the library
    source.write_text(source_text)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".so", delete=False) as partial:
        partial_path = Path(partial.name)
    command = [compiler(), *COMPILE_FLAGS, *extra_flags, "-I", str(_emulate_dir()),
               "-include", str(_emulate_dir() / "cuda_host.h"), "-x", "c++", str(source), "-o", str(partial_path)]
    # Run from kernels/: the #line directives name kernel files relative to it, so a debugger
    # finds kernels/<file>.cu itself.
    result = subprocess.run(command, capture_output=True, text=True, cwd=kernel_source_dir())
    if result.returncode != 0:
        partial_path.unlink(missing_ok=True)
        raise KernelCompileError(f"{name}: the host compiler rejected it for emulation:\n{result.stderr}")
    os.replace(partial_path, library)  # atomic: a concurrent build finds a whole library or none
    return library


_runtime_lock = threading.Lock()
_runtime: ctypes.CDLL | None = None


def _runtime_library() -> ctypes.CDLL:
    """The scheduler and fault checks (kernels/emulate/runtime.cpp), loaded globally for the kernels to link to."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            text = (_emulate_dir() / "runtime.cpp").read_text()
            path = _build("runtime", text, ("-pthread",))
            runtime = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            runtime.cnnkit_emulator_alloc.restype = ctypes.c_void_p
            runtime.cnnkit_emulator_alloc.argtypes = (ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p)
            runtime.cnnkit_emulator_free.argtypes = (ctypes.c_void_p,)
            runtime.cnnkit_emulator_check.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong)
            runtime.cnnkit_emulator_launch.argtypes = (
                ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong), ctypes.c_int, ctypes.c_int,
                ctypes.POINTER(ctypes.c_ulonglong), ctypes.POINTER(ctypes.c_ubyte), ctypes.c_int,
                ctypes.c_char_p, ctypes.c_ulong)
            _runtime = runtime
        return _runtime


@dataclass
class HostModule:
    """One kernel file built for the host: its library and the ranges of its ``__shared__`` variables."""

    file_name: str
    library: ctypes.CDLL
    static_shared: Any  # ctypes array of (address, bytes) pairs
    static_ranges: int

    def entry(self, name: str) -> int:
        """The address of the ``extern "C"`` entry point ``name``."""
        try:
            return ctypes.cast(getattr(self.library, name), ctypes.c_void_p).value
        except AttributeError:
            raise LookupError(f"{self.file_name} has no kernel named {name!r}") from None


def _shared_variables(path: Path, library: ctypes.CDLL) -> list[tuple[int, int]]:
    """(address, bytes) of every ``__shared__`` variable: the library's zero-initialised objects.

    cuda_host.h makes ``__shared__`` variables static storage, and kernel files declare no
    other mutable globals, so the objects in .bss are exactly them, apart from the C runtime's
    own flags, whose names hold a dot.
    """
    listing = subprocess.run(["nm", "--defined-only", "-S", str(path)], capture_output=True, text=True,
                             check=True).stdout
    symbols, anchor = [], None
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        value, size, kind, name = int(parts[0], 16), int(parts[1], 16), parts[2], parts[3]
        if kind in "bBu" and "." not in name:
            symbols.append((value, size))
        elif kind == "T" and anchor is None and hasattr(library, name):
            anchor = (value, ctypes.cast(getattr(library, name), ctypes.c_void_p).value)
    if not symbols:
        return []
    if anchor is None:
        raise KernelCompileError(f"{path.name}: no exported function to locate its shared memory by")
    base = anchor[1] - anchor[0]
    ranges: list[list[int]] = []
    for value, size in sorted(symbols):
        if ranges and value <= ranges[-1][0] + ranges[-1][1]:
            ranges[-1][1] = max(ranges[-1][1], value + size - ranges[-1][0])
        else:
            ranges.append([value, size])
    return [(base + value, size) for value, size in ranges]


_modules: dict[str, HostModule] = {}
_modules_lock = threading.Lock()


def load(file_name: str) -> HostModule:
    """The host build of ``kernels/<file_name>``, compiled on first use (or found in the cache)."""
    with _modules_lock:
        module = _modules.get(file_name)
        if module is None:
            _runtime_library()
            path = _build(Path(file_name).stem, read_kernel_source(file_name))
            library = ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL)
            ranges = _shared_variables(path, library)
            flat = (ctypes.c_ulong * max(1, 2 * len(ranges)))(*[v for pair in ranges for v in pair])
            module = _modules[file_name] = HostModule(file_name, library, flat, len(ranges))
        return module


def precompile_all() -> dict[str, float]:
    """Build every kernel file for the host (seconds each; cached builds take no time)."""
    import time

    seconds = {}
    for path in sorted(kernel_source_dir().glob("*.cu")):
        start = time.perf_counter()
        load(path.name)
        seconds[path.name] = time.perf_counter() - start
    return seconds


# ---------------------------------------------------------------- launching

def _byte_bounds(array: np.ndarray) -> tuple[int, int]:
    """[low, high) addresses of the bytes ``array`` can reach."""
    start = array.__array_interface__["data"][0]
    if array.size == 0:
        return start, start
    low = high = start
    for extent, stride in zip(array.shape, array.strides):
        reach = (extent - 1) * stride
        low, high = (low + reach, high) if reach < 0 else (low, high + reach)
    return low, high + array.itemsize


@dataclass
class _Staged:
    """Host arrays whose memory overlaps, staged together in one guarded buffer."""

    low: int
    high: int
    names: list
    buffer: int = 0

    @property
    def nbytes(self) -> int:
        return self.high - self.low


def _stage(params: Sequence, args: Sequence) -> tuple[list, dict]:
    """Group the array arguments by overlapping memory (aliases must stay aliases) and stage each group."""
    spans = []
    for index, (param, value) in enumerate(zip(params, args)):
        if isinstance(param, Array) and value is not None:
            low, high = _byte_bounds(np.asarray(value))
            spans.append((low, high, index, param.name))
    groups: list[_Staged] = []
    owner = {}
    for low, high, index, name in sorted(spans):
        if groups and low < groups[-1].high:
            group = groups[-1]
            group.high = max(group.high, high)
            group.names.append(name)
        else:
            group = _Staged(low, high, [name])
            groups.append(group)
        owner[index] = group
    runtime = _runtime_library()
    for group in groups:
        label = "argument " + ", ".join(repr(n) for n in group.names)
        group.buffer = runtime.cnnkit_emulator_alloc(group.nbytes, group.low % 16, label.encode())
        if not group.buffer:
            _release(groups)
            raise MemoryError(f"the kernel emulator could not map {group.nbytes} bytes for {label}")
        ctypes.memmove(group.buffer, group.low, group.nbytes)
    return groups, owner


def _release(groups: Sequence[_Staged]) -> None:
    runtime = _runtime_library()
    for group in groups:
        if group.buffer:
            runtime.cnnkit_emulator_free(group.buffer)
            group.buffer = 0


def _word(param: Scalar, value) -> tuple[int, bool]:
    """A scalar argument as the 64-bit word the calling convention passes, and whether it is floating point."""
    if param.dtype == "float32":
        return struct.unpack("<I", struct.pack("<f", float(value)))[0], True
    if param.dtype == "float64":
        return struct.unpack("<Q", struct.pack("<d", float(value)))[0], True
    return int(value) & 0xFFFF_FFFF_FFFF_FFFF, False


def launch(kernel, grid: tuple, block: tuple, args: Sequence, shared_memory: int) -> None:
    """Run ``kernel`` (a :class:`~cnnkit.cuda.launcher.Kernel`) on checked ``args`` in emulation.

    Raises:
        KernelFault: the kernel faulted or touched memory outside its arguments; nothing is
            copied back then.
    """
    module = load(kernel.file_name)
    entry = module.entry(kernel.name)
    runtime = _runtime_library()
    groups, owner = _stage(kernel.params, args)
    try:
        words, floating = [], []
        for index, (param, value) in enumerate(zip(kernel.params, args)):
            if isinstance(param, Array):
                address = 0
                if value is not None:
                    address = owner[index].buffer + (np.asarray(value).__array_interface__["data"][0] - owner[index].low)
                words.append(address)
                floating.append(False)
            else:
                word, is_float = _word(param, value)
                words.append(word)
                floating.append(is_float)
        message = ctypes.create_string_buffer(_MESSAGE_BYTES)
        status = runtime.cnnkit_emulator_launch(
            entry, kernel.name.encode(), (ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), shared_memory,
            module.static_shared, module.static_ranges, len(words), (ctypes.c_ulonglong * len(words))(*words),
            (ctypes.c_ubyte * len(words))(*floating), int(_block_order == "reverse"), message, _MESSAGE_BYTES)
        if status:
            raise KernelFault(message.value.decode(errors="replace"))
        problems = []
        for group in groups:
            if runtime.cnnkit_emulator_check(group.buffer, message, _MESSAGE_BYTES):
                problems.append(message.value.decode(errors="replace"))
        if problems:
            raise KernelFault(f"kernel {kernel.name}, grid {grid}, block {block}: " + "; ".join(problems))
        for group in groups:
            _copy_back(group)
    finally:
        _release(groups)


def _copy_back(group: _Staged) -> None:
    """Write the staged bytes back where the kernel changed them (inputs may be read-only)."""
    staged = np.ctypeslib.as_array((ctypes.c_ubyte * group.nbytes).from_address(group.buffer))
    original = np.ctypeslib.as_array((ctypes.c_ubyte * group.nbytes).from_address(group.low))
    if group.nbytes and not np.array_equal(staged, original):
        ctypes.memmove(group.low, group.buffer, group.nbytes)
