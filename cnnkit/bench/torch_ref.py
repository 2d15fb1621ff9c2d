"""PyTorch as a reference, when it is installed (it is never a dependency of cnnkit).

On the GPU PyTorch stands in for cuDNN (CuPy 14 has no cuDNN bindings) and for
cuBLAS TF32; on the CPU it is the framework our NumPy path is compared with. It is
configured for a fair FP32 comparison: cuDNN picks its fastest algorithm
(``benchmark=True``) but may not use TF32 (``allow_tf32=False``, which PyTorch
enables for convolutions by default), and matrix products stay FP32.
"""
from __future__ import annotations

from typing import Any, Callable

_torch = None
_torch_error: str | None = None


def import_torch():
    """``(torch, None)``, or ``(None, reason)`` when PyTorch cannot be imported."""
    global _torch, _torch_error
    if _torch is None and _torch_error is None:
        try:
            import torch
        except Exception as error:  # ImportError, or a broken install
            _torch_error = f"PyTorch is not installed ({type(error).__name__}: {error})"
        else:
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            _torch = torch
    return _torch, _torch_error


def torch_info() -> dict:
    """Version, CUDA/cuDNN builds and CPU threads of the PyTorch in use, or why there is none."""
    torch, reason = import_torch()
    if torch is None:
        return {"available": False, "reason": reason}
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"available": True, "version": torch.__version__, "cuda": torch.version.cuda, "cudnn": cudnn,
            "cpu_threads": torch.get_num_threads(), "cudnn_benchmark": True, "cudnn_allow_tf32": False,
            "matmul_allow_tf32": False}


def release_cuda_memory() -> None:
    """Return PyTorch's cached GPU memory, if PyTorch was loaded (never imports it)."""
    if _torch is not None and _torch.cuda.is_available():
        _torch.cuda.empty_cache()


def as_torch(torch, array):
    """A tensor sharing ``array``'s memory (NumPy via ``from_numpy``, CuPy via DLPack)."""
    if hasattr(array, "__cuda_array_interface__"):
        return torch.from_dlpack(array)
    return torch.from_numpy(array)


class TorchEventClock:
    """Device time of a call: ``torch.cuda.Event`` pairs on PyTorch's current stream."""

    def __init__(self, torch, device_index: int):
        self.torch, self.device_index = torch, device_index
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def time_ms(self, fn: Callable[[], Any]) -> float:
        with self.torch.cuda.device(self.device_index):
            self.start.record()
            fn()
            self.end.record()
            self.end.synchronize()
        return float(self.start.elapsed_time(self.end))
