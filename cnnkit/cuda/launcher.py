"""Compiling and launching cnnkit's CUDA kernels: the one place that does either.

Each ``kernels/*.cu`` file is compiled once per device with NVRTC through
``cupy.RawModule`` and cached in memory and on disk (:func:`kernel_cache_dir`).
Kernels are described by a :class:`Kernel` with typed parameters, and every
launch checks each argument against that description first: CuPy itself passes
a Python int as a 64-bit ``long long`` and never looks at an array's dtype, so a
mismatch would otherwise run and return garbage. The checks are plain Python on
array metadata, so they are tested on the CPU.

Wrapper modules (``gemm.py`` and later conv, pool, ...) pick grid, block and
shared memory with the helpers here (:func:`tile_grid`, :func:`grid_stride_blocks`)
and call :meth:`Kernel.launch`; nobody else hands tuples to CuPy.
"""
from __future__ import annotations

import math
import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import backend

DEFAULT_SHARED_MEMORY_LIMIT = 48 * 1024
_MAX_GRID = (2**31 - 1, 65535, 65535)
_MAX_BLOCK = (1024, 1024, 64)


class KernelCompileError(RuntimeError):
    """NVRTC rejected a kernel source; the message holds the file name and NVRTC's log."""


# ---------------------------------------------------------------- sources and cache

def kernel_cache_dir() -> Path:
    """Where compiled kernels are cached: ``$CNNKIT_KERNEL_CACHE``, else ``~/.cache/cnnkit/kernels``."""
    configured = os.environ.get("CNNKIT_KERNEL_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "cnnkit" / "kernels"


def kernel_source_dir() -> Path:
    """The folder holding the ``.cu`` sources.

    A wheel ships them inside the package (``cnnkit/kernels``); an editable install
    reads the repository's top-level ``kernels/``.
    """
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "kernels", package_dir.parent / "kernels"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no kernels/ folder next to or inside {package_dir}: the CUDA sources are missing "
                            f"from this installation")


def kernel_files() -> list[str]:
    """Names of every kernel source file, sorted."""
    return sorted(path.name for path in kernel_source_dir().glob("*.cu"))


_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]*)"[ \t]*$', re.MULTILINE)


def expand_includes(file_name: str, source: str, headers: dict[str, str]) -> str:
    """``source`` with each ``#include "header"`` of a kernels/ header replaced by the header's text.

    CuPy's cache key hashes the source string, not the headers NVRTC would pull in: with the
    text inlined, editing a header recompiles every kernel that includes it. ``#line``
    directives keep compiler messages pointing at the right file and line.

    Args:
        headers: the text of every header in kernels/ by file name.

    Raises:
        ValueError: an include of a file that is not a kernels/ header.
    """
    def inline(match: re.Match) -> str:
        name = match.group(1)
        if name not in headers:
            raise ValueError(f"{file_name}: includes {name!r}, which is not a header in kernels/ "
                             f"({', '.join(sorted(headers)) or 'none'}); kernels include only those")
        line = source.count("\n", 0, match.end()) + 2
        return f'#line 1 "{name}"\n{headers[name]}\n#line {line} "{file_name}"'

    return _INCLUDE.sub(inline, source)


def kernel_headers() -> dict[str, str]:
    """The text of every ``kernels/*.cuh`` header by file name."""
    return {path.name: path.read_text() for path in sorted(kernel_source_dir().glob("*.cuh"))}


def read_kernel_source(file_name: str) -> str:
    """The text of ``kernels/<file_name>`` with its kernels/ headers inlined (:func:`expand_includes`)."""
    path = kernel_source_dir() / file_name
    if not path.is_file():
        raise FileNotFoundError(f"kernel source {file_name!r} not found in {path.parent}; "
                                f"available: {', '.join(kernel_files()) or 'none'}")
    return expand_includes(file_name, path.read_text(), kernel_headers())


@contextmanager
def _cupy_cache_at(directory: Path) -> Iterator[None]:
    """Make CuPy store and look up compiled kernels in ``directory`` while compiling ours.

    CuPy 14 fixes its disk cache (``CUPY_CACHE_DIR``) when it is imported, so the cache
    backend object is swapped for the duration; CuPy 13 reads the variable at each compile.
    """
    compiler = backend.cupy().cuda.compiler
    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(compiler, "_set_kernel_cache_backend"):
        previous = compiler._kernel_cache_backend
        compiler._set_kernel_cache_backend(compiler._DiskKernelCacheBackend(str(directory)))
        try:
            yield
        finally:
            compiler._set_kernel_cache_backend(previous)
    else:
        previous_dir = os.environ.get("CUPY_CACHE_DIR")
        os.environ["CUPY_CACHE_DIR"] = str(directory)
        try:
            yield
        finally:
            if previous_dir is None:
                del os.environ["CUPY_CACHE_DIR"]
            else:
                os.environ["CUPY_CACHE_DIR"] = previous_dir


# ---------------------------------------------------------------- devices

@dataclass(frozen=True)
class DeviceProperties:
    """What the launch heuristics need to know about one GPU."""

    index: int
    name: str
    sm_count: int
    compute_capability: tuple[int, int]
    max_shared_memory_per_block: int  # with the opt-in above 48 KB


@lru_cache(maxsize=None)
def device_properties(index: int) -> DeviceProperties:
    """Properties of GPU ``index``, read once per process."""
    props = backend.cupy().cuda.runtime.getDeviceProperties(index)
    name = props["name"]
    return DeviceProperties(
        index=index,
        name=name.decode() if isinstance(name, bytes) else str(name),
        sm_count=int(props["multiProcessorCount"]),
        compute_capability=(int(props["major"]), int(props["minor"])),
        max_shared_memory_per_block=int(props["sharedMemPerBlockOptin"]),
    )


def current_device_index() -> int:
    """Index of CuPy's current CUDA device."""
    return backend.cupy().cuda.runtime.getDevice()


# ---------------------------------------------------------------- modules

class KernelModule:
    """One ``.cu`` file compiled for one device, holding its kernels.

    Use :meth:`load`, which compiles each (file, device, options) once per process;
    compiled binaries are also cached on disk, so a later process only loads them.
    """

    _loaded: dict[tuple[str, int, tuple[str, ...]], "KernelModule"] = {}
    _lock = threading.Lock()

    def __init__(self, file_name: str, device_index: int, options: tuple[str, ...] = ()):
        cupy = backend.cupy()
        self.file_name, self.device_index, self.options = file_name, device_index, options
        source = read_kernel_source(file_name)
        major, minor = device_properties(device_index).compute_capability
        with cupy.cuda.Device(device_index), _cupy_cache_at(kernel_cache_dir()):
            module = cupy.RawModule(code=source, options=options)
            try:
                module.compile()
            except cupy.cuda.compiler.CompileException as error:
                raise KernelCompileError(f"{file_name}: NVRTC could not compile it for sm_{major}{minor} "
                                         f"(options {options}):\n{error.get_message()}") from None
        self._module = module
        self._functions: dict[str, Any] = {}

    @classmethod
    def load(cls, file_name: str, device_index: int | None = None, options: tuple[str, ...] = ()) -> "KernelModule":
        """The compiled module for ``file_name`` on ``device_index`` (default: the current device)."""
        if device_index is None:
            device_index = current_device_index()
        key = (file_name, device_index, tuple(options))
        with cls._lock:
            module = cls._loaded.get(key)
            if module is None:
                module = cls._loaded[key] = cls(file_name, device_index, tuple(options))
        return module

    def function(self, name: str):
        """The ``cupy.RawKernel`` for the ``extern "C"`` entry point ``name``."""
        function = self._functions.get(name)
        if function is None:
            try:
                function = self._module.get_function(name)
            except Exception as error:  # CuPy raises a driver error (CUDA_ERROR_NOT_FOUND)
                raise LookupError(f"{self.file_name} has no kernel named {name!r} ({error})") from None
            self._functions[name] = function
        return function


@dataclass(frozen=True)
class PrecompileResult:
    file_name: str
    ok: bool
    seconds: float
    message: str  # the compiler's log when it failed, else ""


def precompile_all() -> list[PrecompileResult]:
    """Compile every kernel source for the current device (``cnnkit kernels --precompile``).

    Returns:
        One result per ``.cu`` file; failures carry NVRTC's log instead of raising.
    """
    device_index = current_device_index()
    results = []
    for file_name in kernel_files():
        start = time.perf_counter()
        try:
            KernelModule.load(file_name, device_index)
        except KernelCompileError as error:
            results.append(PrecompileResult(file_name, False, time.perf_counter() - start, str(error)))
        else:
            results.append(PrecompileResult(file_name, True, time.perf_counter() - start, ""))
    return results


# ---------------------------------------------------------------- typed parameters

CONTIGUOUS = "contiguous"
ROWS = "rows"
_LAYOUTS = (CONTIGUOUS, ROWS)
_SCALAR_TYPES = {"int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
                 "float32": np.float32, "float64": np.float64}


@dataclass(frozen=True)
class Array:
    """A pointer parameter, passed a CuPy array.

    Args:
        name: the parameter's name in the kernel (used in error messages).
        dtype: the element type the kernel reads, e.g. ``"float32"``; matched exactly.
        layout: ``"contiguous"`` (C-contiguous) or ``"rows"``: a 2-D array whose rows are
            contiguous and lie a fixed, positive distance apart (a C-ordered matrix or a
            slice of its columns); the kernel gets that distance as a leading dimension.
        optional: ``None`` is allowed and passed as a null pointer.
    """

    name: str
    dtype: str
    layout: str = CONTIGUOUS
    optional: bool = False

    def __post_init__(self):
        np.dtype(self.dtype)
        if self.layout not in _LAYOUTS:
            raise ValueError(f"Array {self.name!r}: layout must be one of {_LAYOUTS}, got {self.layout!r}")


@dataclass(frozen=True)
class Scalar:
    """A by-value parameter, cast explicitly to ``dtype`` and range-checked.

    Args:
        name: the parameter's name in the kernel.
        dtype: one of int32, uint32, int64, uint64, float32, float64.
        low, high: the allowed range (inclusive), within the dtype's own.
    """

    name: str
    dtype: str
    low: float | None = None
    high: float | None = None

    def __post_init__(self):
        if self.dtype not in _SCALAR_TYPES:
            raise ValueError(f"Scalar {self.name!r}: dtype must be one of {sorted(_SCALAR_TYPES)}, got {self.dtype!r}")


def has_contiguous_rows(array: Any) -> bool:
    """True for a 2-D array laid out as rows of unit stride a fixed positive distance apart."""
    if array.ndim != 2:
        return False
    rows, cols = array.shape
    row_stride, col_stride = array.strides
    itemsize = array.itemsize
    cols_ok = cols <= 1 or col_stride == itemsize
    rows_ok = rows <= 1 or (row_stride % itemsize == 0 and row_stride >= max(cols, 1) * itemsize)
    return cols_ok and rows_ok


def leading_dimension(array: Any) -> int:
    """Elements between consecutive rows of a :func:`has_contiguous_rows` array.

    A single row has no meaningful one; it gets its length rounded up to a multiple of
    4 so that it never blocks the 16-byte vector paths.
    """
    rows, cols = array.shape
    if rows > 1:
        return array.strides[0] // array.itemsize
    return max(4, -(-cols // 4) * 4)


def describe(value: Any, is_device_array: Callable[[Any], bool] = backend.is_cuda_array) -> str:
    """How an argument reads in an error message: 'a float64 CuPy array', 'a numpy.ndarray (host memory)'."""
    if value is None:
        return "None"
    if is_device_array(value):
        return f"a {value.dtype} CuPy array"
    if isinstance(value, np.ndarray):
        return "a numpy.ndarray (host memory)"
    return f"{value!r} ({type(value).__name__})"


class Kernel:
    """An ``extern "C"`` entry point of a kernel file with its declared parameters.

    Example::

        Kernel("gemm.cu", "gemm_f32_nn_128x128_vec4",
               [Array("A", "float32", ROWS), ..., Scalar("M", "int32", low=1), ...])

    ``threads``: the exact number of threads per block the kernel needs (block-wide
    reductions written for one size), or None when any block the launch limits allow works.
    """

    def __init__(self, file_name: str, name: str, params: Sequence[Array | Scalar], threads: int | None = None):
        self.file_name, self.name, self.params = file_name, name, tuple(params)
        self.threads = threads
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"{name}: parameter names must be unique, got {names}")
        self._shared_memory_set: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"Kernel({self.file_name!r}, {self.name!r}, [{', '.join(p.name for p in self.params)}])"

    def check(self, args: Sequence[Any], device_index: int,
              is_device_array: Callable[[Any], bool] = backend.is_cuda_array) -> tuple:
        """Validate ``args`` against the parameters and return them ready for CuPy.

        Arrays are returned as they are (``None`` for an absent optional one), scalars as
        NumPy scalars of the declared type.

        Args:
            args: one value per parameter, in order.
            device_index: the CUDA device the kernel will run on.
            is_device_array: what counts as a CuPy array (tests pass stand-ins).

        Raises:
            TypeError: wrong number of arguments, an argument of the wrong kind or dtype.
            ValueError: an array on another device or in the wrong layout, a scalar out of range.
        """
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: expected {len(self.params)} arguments "
                            f"({', '.join(p.name for p in self.params)}), got {len(args)}")
        return tuple(self._check_array(p, a, device_index, is_device_array) if isinstance(p, Array)
                     else self._check_scalar(p, a)
                     for p, a in zip(self.params, args))

    def _check_array(self, param: Array, value: Any, device_index: int, is_device_array) -> Any:
        where = f"{self.name}: argument {param.name!r}"
        expected = f"a {param.dtype} CuPy array on cuda:{device_index}"
        if value is None and param.optional:
            return None
        if not is_device_array(value):
            raise TypeError(f"{where} must be {expected}{' or None' if param.optional else ''}, "
                            f"got {describe(value, is_device_array)}")
        if value.dtype != np.dtype(param.dtype):
            raise TypeError(f"{where} must be {expected}, got a {value.dtype} CuPy array")
        if value.device.id != device_index:
            raise ValueError(f"{where} must be {expected}, got a {value.dtype} CuPy array on cuda:{value.device.id}")
        if param.layout == CONTIGUOUS and not value.flags.c_contiguous:
            raise ValueError(f"{where} must be C-contiguous, got a {value.dtype} CuPy array of shape "
                             f"{tuple(value.shape)} with strides {tuple(value.strides)}")
        if param.layout == ROWS and not has_contiguous_rows(value):
            raise ValueError(f"{where} must be a 2-D array with contiguous rows (unit stride along the last "
                             f"axis, a positive row stride of at least one row), got a {value.dtype} CuPy array "
                             f"of shape {tuple(value.shape)} with strides {tuple(value.strides)}")
        return value

    def _check_scalar(self, param: Scalar, value: Any) -> Any:
        where = f"{self.name}: argument {param.name!r}"
        scalar_type = _SCALAR_TYPES[param.dtype]
        is_integer = np.dtype(scalar_type).kind in "iu"
        kinds = (int, np.integer) if is_integer else (int, float, np.integer, np.floating)
        if not isinstance(value, kinds) or isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{where} must be {'an integer' if is_integer else 'a real number'} "
                            f"(passed as {param.dtype}), got {value!r} ({type(value).__name__})")
        if is_integer:
            number, info = int(value), np.iinfo(scalar_type)
            low, high = int(info.min), int(info.max)
        else:  # any float, inf and NaN included, unless it overflows the type or the declared range
            number, info = float(value), np.finfo(scalar_type)
            low, high = -math.inf, math.inf
            if math.isfinite(number) and abs(number) > float(info.max):
                raise ValueError(f"{where} must fit in a {param.dtype} (|x| <= {float(info.max):.6g}), got {number}")
        low = low if param.low is None else max(param.low, low)
        high = high if param.high is None else min(param.high, high)
        if not (low <= number <= high or math.isnan(number)):
            article = "an" if param.dtype.startswith("i") else "a"
            raise ValueError(f"{where} must be {article} {param.dtype} in [{low}, {high}], got {number}")
        return scalar_type(number)

    def launch(self, grid: Sequence[int], block: Sequence[int], args: Sequence[Any], shared_memory: int = 0) -> None:
        """Check ``args`` and the launch shape, then run the kernel on the current device and stream.

        Args:
            grid, block: up to three dimensions each, from the wrapper's launch helpers.
            args: one value per declared parameter.
            shared_memory: dynamic shared memory per block in bytes; above 48 KB the
                kernel's limit is raised first (once per device).
        """
        from . import emulator

        device_index = current_device_index()
        checked = self.check(args, device_index)
        grid, block = check_launch_shape(self.name, grid, block)
        if self.threads is not None and math.prod(block) != self.threads:
            raise ValueError(f"{self.name}: must be launched with blocks of exactly {self.threads} threads (its "
                             f"block reductions are written for that many), got block {block}")
        available = device_properties(device_index).max_shared_memory_per_block
        if shared_memory > available:
            raise ValueError(f"{self.name}: needs {shared_memory} bytes of shared memory per block, but "
                             f"cuda:{device_index} allows at most {available}")
        if emulator.is_active():
            emulator.launch(self, grid, block, checked, shared_memory)
            return
        function = KernelModule.load(self.file_name, device_index).function(self.name)
        if shared_memory > DEFAULT_SHARED_MEMORY_LIMIT:
            self._allow_shared_memory(function, device_index, shared_memory)
        function(grid, block, checked, shared_mem=shared_memory)

    def _allow_shared_memory(self, function, device_index: int, nbytes: int) -> None:
        if self._shared_memory_set.get(device_index, 0) >= nbytes:
            return
        function.max_dynamic_shared_size_bytes = nbytes
        self._shared_memory_set[device_index] = nbytes


# ---------------------------------------------------------------- launch shapes

def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def check_launch_shape(kernel_name: str, grid: Sequence[int], block: Sequence[int]) -> tuple[tuple, tuple]:
    """Pad grid and block to three dimensions and check them against CUDA's limits."""
    shapes = []
    for what, shape, limits in (("grid", grid, _MAX_GRID), ("block", block, _MAX_BLOCK)):
        dims = tuple(int(d) for d in shape)
        if not 1 <= len(dims) <= 3:
            raise ValueError(f"{kernel_name}: {what} must have 1 to 3 dimensions, got {tuple(shape)}")
        dims = dims + (1,) * (3 - len(dims))
        if any(not 1 <= d <= limit for d, limit in zip(dims, limits)):
            raise ValueError(f"{kernel_name}: {what} {dims} is outside CUDA's limits: each dimension at least 1 "
                             f"and at most {limits}")
        shapes.append(dims)
    if math.prod(shapes[1]) > 1024:
        raise ValueError(f"{kernel_name}: block {shapes[1]} has {math.prod(shapes[1])} threads; CUDA allows 1024")
    return shapes[0], shapes[1]


def tile_grid(rows: int, cols: int, tile_rows: int, tile_cols: int, depth: int = 1) -> tuple[int, int, int]:
    """One block per ``tile_rows``×``tile_cols`` output tile (x over rows, y over columns), ``depth`` deep."""
    return ceil_div(rows, tile_rows), ceil_div(cols, tile_cols), depth


def grid_stride_blocks(n: int, threads: int, device_index: int, blocks_per_sm: int = 8) -> tuple[int]:
    """Blocks for a grid-stride loop over ``n`` items: enough to fill every SM, no more than needed."""
    wanted = ceil_div(max(n, 1), threads)
    return (max(1, min(wanted, device_properties(device_index).sm_count * blocks_per_sm)),)
