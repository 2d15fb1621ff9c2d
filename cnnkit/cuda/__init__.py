"""The GPU side of cnnkit: device queries, matmul precision, and the hand-written kernels.

Importing this package never imports CuPy; the functions that need it ask
:func:`cnnkit.backend.cupy` when called, which raises
:class:`~cnnkit.backend.CudaUnavailableError` with the reason on a machine without
CuPy or a GPU. The kernels themselves live in ``kernels/*.cu``; :mod:`.launcher`
compiles and launches them and :mod:`.ops` registers their wrappers with
:mod:`cnnkit.registry`. :func:`use_emulation` runs the same kernels on the CPU
(:mod:`.emulator`), for testing and debugging them without a GPU.
"""
from __future__ import annotations

from typing import NamedTuple

from .. import backend, registry
from .emulator import KernelFault, use_emulation
from .launcher import device_properties, kernel_cache_dir

__all__ = [
    "KernelFault",
    "MemoryInfo",
    "device_count",
    "device_name",
    "get_matmul_precision",
    "is_available",
    "kernel_cache_dir",
    "matmul_precision_in_use",
    "memory_info",
    "set_matmul_precision",
    "synchronize",
    "use_emulation",
]

MATMUL_PRECISIONS = ("highest", "tf32")
_matmul_precision = "highest"


def is_available() -> bool:
    """True when CuPy imports and at least one NVIDIA GPU is visible."""
    return backend.cuda_is_available()


def device_count() -> int:
    """Number of visible NVIDIA GPUs (0 without CuPy or a driver)."""
    return backend.cuda_device_count()


def _device_index(device) -> int:
    """None (the current CUDA device), an index, 'cuda:N' or a Device -> the index."""
    if device is None:
        return backend.cupy().cuda.runtime.getDevice()
    if isinstance(device, int) and not isinstance(device, bool):
        return backend.Device(f"cuda:{device}").index
    resolved = backend.Device(device)
    if not resolved.is_cuda:
        raise ValueError(f"a CUDA device is needed here, got {device!r}")
    return resolved.index


def synchronize(device=None) -> None:
    """Wait until all work queued on ``device`` (default: the current one) has finished."""
    backend.cupy().cuda.Device(_device_index(device)).synchronize()


class MemoryInfo(NamedTuple):
    """GPU memory in bytes: the device's free/total and CuPy's memory pool usage."""

    free: int
    total: int
    pool_used: int  # held by live arrays
    pool_total: int  # held by the pool, used or cached for reuse


def memory_info(device=None) -> MemoryInfo:
    """Free and total device memory, and how much of it CuPy's pool holds, for ``device``."""
    cupy = backend.cupy()
    with cupy.cuda.Device(_device_index(device)):
        free, total = cupy.cuda.runtime.memGetInfo()
        pool = cupy.get_default_memory_pool()
        return MemoryInfo(int(free), int(total), int(pool.used_bytes()), int(pool.total_bytes()))


def device_name(index: int = 0) -> str:
    """The GPU's product name, e.g. 'NVIDIA H100 80GB HBM3'."""
    return device_properties(_device_index(index)).name


def set_matmul_precision(precision: str) -> None:
    """Choose how every float32 matrix product on the GPU runs: matmul, dense layers and the
    products inside convolutions, on our kernels and on the references (cuBLAS through CuPy).

    The default is "highest", as PyTorch's ``allow_tf32=False``; CuPy's own ``CUPY_TF32``
    variable is overridden, so no environment setting changes results behind this one.

    Args:
        precision: "highest" (default): FP32 on CUDA cores, about 1e-6 relative error.
            "tf32": TF32 tensor cores allowed on sm_80 and newer (inputs rounded to a
            10-bit mantissa, FP32 accumulation), about 1e-3 relative error and several
            times faster. Our GEMM kernel and cuBLAS use them; our convolution kernels
            have no TF32 path and stay FP32 (see :func:`matmul_precision_in_use`).
    """
    global _matmul_precision
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"matmul precision must be one of {', '.join(map(repr, MATMUL_PRECISIONS))}, "
                         f"got {precision!r}")
    _matmul_precision = precision
    backend.set_cublas_tf32(precision == "tf32")


def get_matmul_precision() -> str:
    """The current float32 matmul precision: "highest" or "tf32"."""
    return _matmul_precision


def matmul_precision_in_use() -> dict:
    """What float32 products run in now, read back from where it takes effect (for reports).

    Returns:
        ``{"setting": "highest" | "tf32", "cublas": "fp32" | "tf32" | None}``: cuBLAS's
        compute type as CuPy holds it (None without CuPy).
    """
    compute_type = backend.cublas_float32_compute_type()
    cublas = None if compute_type is None else ("tf32" if compute_type == "COMPUTE_TYPE_TF32" else "fp32")
    return {"setting": _matmul_precision, "cublas": cublas}


if registry.kernel_choice() == registry.EMULATE:  # CNNKIT_KERNELS=emulate
    use_emulation()
