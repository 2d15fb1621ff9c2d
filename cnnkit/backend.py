"""The one place that knows about NumPy and CuPy.

Everything else asks this module for the array module of an array (``xp``), for
a :class:`Device`, or to move an array between devices. CuPy is imported lazily
and guarded: ``import cnnkit`` works on a machine without CuPy or a GPU, and the
reason CuPy could not be used is kept and raised only when a GPU is asked for.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import numpy as np

GPU_INSTALL_HINT = (
    "install the GPU extra: `pip install 'cnnkit[gpu]'` for a CUDA 12 driver or `pip install 'cnnkit[gpu-cuda13]'` "
    "for CUDA 13 (CuPy with its [ctk] extra, which brings cuBLAS, cuRAND, NVRTC and the CUDA headers)"
)


class CudaUnavailableError(RuntimeError):
    """Raised when a CUDA device is asked for on a machine that cannot provide one."""


_cupy_module = None
_cupy_import_error: BaseException | None = None
# A module standing in for CuPy: the kernel emulator's (cnnkit.cuda.emulated_cupy), or None.
_cupy_stand_in = None


def install_cupy_stand_in(module) -> None:
    """Make ``module`` answer for CuPy (``None``: the real CuPy again); see :func:`cnnkit.cuda.use_emulation`."""
    global _cupy_stand_in
    _cupy_stand_in = module


def cupy_stand_in():
    """The module standing in for CuPy, or ``None``."""
    return _cupy_stand_in


def _import_cupy():
    """Import CuPy once; remember why it failed instead of raising."""
    global _cupy_module, _cupy_import_error
    if _cupy_module is None and _cupy_import_error is None:
        try:
            import cupy
            _set_compute_type(cupy, tf32=False)  # FP32 products until cnnkit.cuda.set_matmul_precision says otherwise
        except Exception as error:  # ImportError, a broken CUDA install, a CuPy too old for cnnkit
            _cupy_import_error = error
        else:
            _cupy_module = cupy
    return _cupy_module


def cupy():
    """Return the CuPy module, or raise :class:`CudaUnavailableError` saying why not."""
    if _cupy_stand_in is not None:
        return _cupy_stand_in
    module = _import_cupy()
    if module is None:
        raise CudaUnavailableError(f"a CUDA device was asked for, but {cuda_unavailable_reason()}")
    return module


def cuda_unavailable_reason() -> str | None:
    """Why no GPU can be used here (CuPy missing, or no GPU visible), or None when one can."""
    if _cupy_stand_in is not None:
        return None
    if _import_cupy() is None:
        return (f"CuPy cannot be imported ({type(_cupy_import_error).__name__}: {_cupy_import_error}); "
                f"{GPU_INSTALL_HINT}")
    if cuda_device_count() == 0:
        return "no NVIDIA GPU is visible to CuPy (check `nvidia-smi` and CUDA_VISIBLE_DEVICES)"
    return None


def cuda_device_count() -> int:
    """Number of visible NVIDIA GPUs; 0 when CuPy or the driver is missing (1 in kernel emulation)."""
    if _cupy_stand_in is not None:
        return _cupy_stand_in.cuda.runtime.getDeviceCount()
    module = _import_cupy()
    if module is None:
        return 0
    try:
        return module.cuda.runtime.getDeviceCount()
    except Exception:  # no driver, or no device: CuPy raises CUDARuntimeError
        return 0


def cuda_is_available() -> bool:
    """True when CuPy imports, a GPU is visible, and cuBLAS, cuRAND and NVRTC load."""
    return cuda_device_count() > 0 and not cuda_library_problems()


def _load_cublas(cupy) -> None:
    cupy.cuda.device.get_cublas_handle()


def _load_curand(cupy) -> None:
    cupy.cuda.curand.getVersion()


def _compile_with_nvrtc(cupy) -> None:
    # An element-wise kernel like those the references run: NVRTC and the CUDA headers CuPy includes.
    probe = cupy.ElementwiseKernel("float32 x", "float32 y", "y = x + 1.0f", "cnnkit_nvrtc_probe")
    probe(cupy.zeros(1, dtype=np.float32))


# The CUDA libraries CuPy loads on first use, not at import: a machine with the driver alone
# imports CuPy and sees the GPU, then fails at the first product, random draw or kernel.
# Each entry: name, what needs it, the cuda-toolkit component that provides it, and a probe.
CUDA_LIBRARIES = (
    ("cuBLAS", "matrix products", "cublas", _load_cublas),
    ("cuRAND", "random numbers", "curand", _load_curand),
    ("NVRTC", "compiling kernels, with the CUDA headers", "nvrtc,cudart", _compile_with_nvrtc),
)
_library_problems: list[str] | None = None


def cuda_library_problems() -> list[str]:
    """One line per CUDA library that does not load, saying what needs it and how to install it
    (the GPU extra, :data:`GPU_INSTALL_HINT`, installs them all).

    Probed once per process on the current GPU (empty without CuPy or a GPU, where
    :func:`cuda_device_count` already tells).
    """
    global _library_problems
    if _cupy_stand_in is not None:
        return []  # the kernel emulator runs without CUDA libraries
    if _library_problems is None:
        if cuda_device_count() == 0:
            return []
        module = _import_cupy()
        _library_problems = []
        for name, purpose, component, probe in CUDA_LIBRARIES:
            try:
                probe(module)
            except Exception as error:  # OSError from the loader, CompileException, CUDA errors
                _library_problems.append(
                    f"{name} (for {purpose}) does not load ({type(error).__name__}: {error}); "
                    f"`pip install 'cuda-toolkit[{component}]'` matching the driver installs it alone")
    return _library_problems


def set_cublas_tf32(enabled: bool) -> None:
    """Make CuPy's float32 matrix products (cuBLAS, via ``matmul``/``tensordot``) use TF32 or plain FP32.

    This is CuPy's cuBLAS compute type, the setting its ``CUPY_TF32`` variable chooses
    at start-up; cnnkit sets it explicitly, so the variable never changes results.
    """
    if _cupy_module is not None and (not enabled or cuda_device_count() > 0):
        # (TF32 asks the current GPU for its compute capability: nothing to set without one.)
        _set_compute_type(_cupy_module, enabled)


def _set_compute_type(cupy, tf32: bool) -> None:
    linalg = cupy._core._routines_linalg
    wanted = "COMPUTE_TYPE_TF32" if tf32 else "COMPUTE_TYPE_DEFAULT"
    code = 0
    while True:  # CuPy numbers its compute types from 0 and names them; look the code up by name
        try:
            name = linalg.compute_type_to_str(code)
        except (KeyError, ValueError):
            raise RuntimeError(f"this CuPy ({cupy.__version__}) has no cuBLAS compute type {wanted}; "
                               f"cnnkit needs CuPy 14.1 or newer") from None
        if name == wanted:
            linalg.set_compute_type(np.float32, code)
            return
        code += 1


def cublas_float32_compute_type() -> str | None:
    """The compute type CuPy's float32 products use now ("COMPUTE_TYPE_DEFAULT" is FP32,
    "COMPUTE_TYPE_TF32"), or None without CuPy."""
    module = _cupy_module
    if module is None:
        return None
    linalg = module._core._routines_linalg
    return str(linalg.compute_type_to_str(linalg.get_compute_type(np.float32)))


class Device:
    """Where arrays live: ``Device("cpu")``, ``Device("cuda")`` or ``Device("cuda:1")``.

    A CUDA device is checked when it is created, so asking for a GPU that is not
    there fails at once with the reason and how to fix it.
    """

    __slots__ = ("kind", "index")

    def __init__(self, spec: "str | Device | None" = "cpu"):
        if isinstance(spec, Device):
            self.kind, self.index = spec.kind, spec.index
            return
        self.kind, self.index = _parse_device(spec)
        if self.is_cuda:
            _check_cuda_device(self.index)

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    @property
    def xp(self):
        """The array module for this device: ``numpy`` or ``cupy``."""
        return cupy() if self.is_cuda else np

    @contextmanager
    def activate(self) -> Iterator[None]:
        """Make this the current CUDA device for the duration (no-op on CPU)."""
        if self.is_cuda:
            with cupy().cuda.Device(self.index):
                yield
        else:
            yield

    def __eq__(self, other: object) -> bool:
        # Comparing with a string never touches the GPU: Device("cuda") == "cuda:0" holds without one.
        if isinstance(other, str):
            try:
                return (self.kind, self.index) == _parse_device(other)
            except ValueError:
                return False
        return isinstance(other, Device) and (self.kind, self.index) == (other.kind, other.index)

    def __hash__(self) -> int:
        return hash((self.kind, self.index))

    def __str__(self) -> str:
        return f"cuda:{self.index}" if self.is_cuda else "cpu"

    def __repr__(self) -> str:
        return f"Device('{self}')"


def _parse_device(spec: "str | None") -> tuple[str, int]:
    """``(kind, index)`` for a device string, without checking that the device exists."""
    if spec is None:
        return "cpu", 0
    if not isinstance(spec, str):
        raise TypeError(f"device must be a string such as 'cpu', 'cuda' or 'cuda:1', got {spec!r}")
    kind, _, index_text = spec.strip().lower().partition(":")
    if kind == "gpu":
        kind = "cuda"
    if kind not in ("cpu", "cuda") or (kind == "cpu" and index_text):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    if index_text and not index_text.isdigit():
        raise ValueError(f"device index must be a non-negative integer, got {spec!r}")
    return kind, int(index_text or 0)


def _check_cuda_device(index: int) -> None:
    reason = cuda_unavailable_reason()
    if reason is not None:
        raise CudaUnavailableError(f"a CUDA device was asked for, but {reason}; use device='cpu' instead")
    count = cuda_device_count()
    if index >= count:
        raise CudaUnavailableError(f"device 'cuda:{index}' was asked for, but only {count} GPU(s) are visible")
    problems = cuda_library_problems()
    if problems:
        raise CudaUnavailableError(f"a CUDA device was asked for, but CuPy cannot use it: {' '.join(problems)} "
                                   f"To install every library: {GPU_INSTALL_HINT}")


CPU = Device("cpu")


def as_device(device: "str | Device | None") -> Device:
    """Normalise a device argument; ``None`` means the default device."""
    if device is None:
        return get_default_device()
    return device if isinstance(device, Device) else Device(device)


def is_cuda_array(array: Any) -> bool:
    """True for a CuPy ndarray. Cheap: CuPy is only consulted when already imported."""
    if _cupy_stand_in is not None and isinstance(array, _cupy_stand_in.ndarray):
        return True
    module = sys.modules.get("cupy")
    return module is not None and isinstance(array, module.ndarray)


def get_array_module(*arrays: Any):
    """``cupy`` if any argument is a CuPy array, else ``numpy`` (the DeZero/Chainer ``xp``)."""
    for array in arrays:
        if is_cuda_array(array):
            if _cupy_stand_in is not None and isinstance(array, _cupy_stand_in.ndarray):
                return _cupy_stand_in
            return sys.modules["cupy"]
    return np


def device_of(array: Any) -> Device:
    """The device an array lives on."""
    if is_cuda_array(array):
        device = Device.__new__(Device)
        device.kind, device.index = "cuda", array.device.id
        return device
    return CPU


def device_of_array(array: Any):
    """A context in which ``array``'s CUDA device is the current one (CuPy's own ``cuda.Device``).

    The one way computation enters the device of its arguments (the registry for every
    op, autograd for the array arithmetic of forward and backward passes): CuPy runs
    kernels, and allocates, on the *current* device, whatever device the operands live
    on, reaching other devices' arrays through peer access.
    """
    return get_array_module(array).cuda.Device(array.device.id)


def device_of_arrays(arrays) -> Any:
    """:func:`device_of_array` for the first CUDA array among ``arrays``; a no-op context when there is none."""
    for array in arrays:
        if is_cuda_array(array):
            return device_of_array(array)
    return nullcontext()


def to_device(array: Any, device: "str | Device") -> Any:
    """Return ``array`` on ``device``, copying only when it lives elsewhere."""
    device = as_device(device)
    if device.is_cuda:
        module = cupy()
        if is_cuda_array(array) and array.device.id == device.index:
            return array
        with module.cuda.Device(device.index):
            return module.asarray(array)
    return to_numpy(array)


def to_numpy(array: Any) -> np.ndarray:
    """Copy a CuPy array to the host; NumPy arrays pass through unchanged."""
    if is_cuda_array(array):
        return array.get()
    return np.asarray(array)


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` in place, adding (not overwriting) at repeated indices."""
    if is_cuda_array(target) and get_array_module(target) is not _cupy_stand_in:
        import cupyx

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


# ---------------------------------------------------------------- defaults

_default_device: Device = CPU
_default_dtype = np.dtype(np.float32)
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def get_default_device() -> Device:
    return _default_device


def set_default_device(device: "str | Device") -> None:
    """Device on which new tensors and layer weights are created by default."""
    global _default_device
    _default_device = Device(device)


@contextmanager
def default_device(device: "str | Device") -> Iterator[Device]:
    """Temporarily change the default device: ``with default_device("cuda"): ...``."""
    previous = get_default_device()
    set_default_device(device)
    try:
        yield get_default_device()
    finally:
        set_default_device(previous)


def get_default_dtype() -> np.dtype:
    return _default_dtype


def set_default_dtype(dtype: Any) -> None:
    """float32 (the default) or float64 (used by the gradient checks)."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype not in _FLOAT_DTYPES:
        raise ValueError(f"default dtype must be float32 or float64, got {dtype}")
    _default_dtype = dtype


# ---------------------------------------------------------------- randomness

_generator = np.random.default_rng()
_stream_seed = int(_generator.integers(0, 2**63 - 1))
_stream_count = 0


def manual_seed(seed: int) -> None:
    """Seed every random choice cnnkit makes, on CPU and GPU alike.

    Two sources follow the seed. Weight initialisation, shuffling and data splits
    draw from one NumPy generator on the host. Dropout masks and augmentation, which
    are made on the data's device, draw from the counter-based Philox stream
    (:mod:`cnnkit.philox`) keyed by the seed: each draw takes the next value of a call
    counter, so a seed gives the same weights and the very same masks on the CPU and
    on a GPU, and no generator is created per draw. Saving both (see
    :func:`get_rng_state`) is enough to resume training exactly.
    """
    global _generator, _stream_seed, _stream_count
    _generator = np.random.default_rng(seed)
    _stream_seed, _stream_count = int(seed) % 2**64, 0


def rng() -> np.random.Generator:
    """The global host generator (weights, shuffling, splits)."""
    return _generator


def next_random_stream() -> tuple[int, int]:
    """``(seed, stream)`` for one Philox draw: the global seed and the next value of the call counter."""
    global _stream_count
    _stream_count += 1
    return _stream_seed, _stream_count


def get_rng_state() -> dict:
    """Both random sources' state as plain data (JSON-serialisable)."""
    return {"numpy": _generator.bit_generator.state, "philox": {"seed": _stream_seed, "count": _stream_count}}


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`.

    A state saved before the Philox stream existed (the NumPy generator's state
    alone) restores the generator and leaves the stream as it is.
    """
    global _stream_seed, _stream_count
    if "numpy" not in state:
        _generator.bit_generator.state = state
        return
    _generator.bit_generator.state = state["numpy"]
    _stream_seed, _stream_count = int(state["philox"]["seed"]), int(state["philox"]["count"])
