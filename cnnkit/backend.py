"""The one place that knows about NumPy and CuPy.

Everything else asks this module for the array module of an array (``xp``), for
a :class:`Device`, or to move an array between devices. CuPy is imported lazily
and guarded: ``import cnnkit`` works on a machine without CuPy or a GPU, and the
reason CuPy could not be used is kept and raised only when a GPU is asked for.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

GPU_INSTALL_HINT = (
    "install the GPU extra with `pip install 'cnnkit[gpu]'` (it pulls cupy-cuda12x; "
    "use the cupy-cudaXXx wheel that matches your CUDA driver)"
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
        except Exception as error:  # ImportError, or a broken CUDA install
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
        raise CudaUnavailableError(
            f"a CUDA device was asked for, but CuPy cannot be imported "
            f"({type(_cupy_import_error).__name__}: {_cupy_import_error}); {GPU_INSTALL_HINT}"
        )
    return module


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
    """True when CuPy imports and at least one GPU is visible."""
    return cuda_device_count() > 0


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
    cupy()  # raises with the import error when CuPy is missing
    count = cuda_device_count()
    if count == 0:
        raise CudaUnavailableError(
            "a CUDA device was asked for, but no NVIDIA GPU is visible to CuPy "
            "(check `nvidia-smi` and CUDA_VISIBLE_DEVICES); use device='cpu' instead"
        )
    if index >= count:
        raise CudaUnavailableError(f"device 'cuda:{index}' was asked for, but only {count} GPU(s) are visible")


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

    The one place where computation enters the device of its arguments: CuPy runs
    kernels, and allocates, on the *current* device, whatever device the operands
    live on.
    """
    return get_array_module(array).cuda.Device(array.device.id)


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


def manual_seed(seed: int) -> None:
    """Seed every random choice cnnkit makes, on CPU and GPU alike.

    All randomness (weight initialisation, dropout masks, shuffling, augmentation)
    is drawn from one NumPy generator; GPU kernels receive seeds drawn from it. So a
    seed gives the same weights on every device, and saving this one generator's
    state (see :func:`get_rng_state`) is enough to resume training exactly.
    """
    global _generator
    _generator = np.random.default_rng(seed)


def rng() -> np.random.Generator:
    """The global generator behind every random choice cnnkit makes."""
    return _generator


def draw_seed() -> int:
    """A fresh 63-bit seed from the global generator, for a kernel or a sub-generator."""
    return int(_generator.integers(0, 2**63 - 1))


def get_rng_state() -> dict:
    """The global generator's state as plain data (JSON-serialisable)."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _generator.bit_generator.state = state


def uniform_on(xp, seed: int, shape: tuple, dtype) -> Any:
    """Uniform [0, 1) samples of ``shape`` made directly on ``xp``'s device from ``seed``."""
    if xp is np:
        return np.random.default_rng(seed).random(shape, dtype=np.dtype(dtype))
    return xp.random.RandomState(seed % 2**32).random_sample(shape, dtype=dtype)
