"""Helpers every suite uses: naming our implementation, numerical checks, peaks, failure handling."""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

from ... import cuda, registry
from ..device import BenchDevice
from ..peaks import Peak
from ..results import CaseResult, PeakLabel, failed_case


def ours(ops: tuple[str, ...], device: BenchDevice) -> tuple[str, dict]:
    """The name of what ``impl(op, ...)`` runs on ``device`` for each of ``ops``, and details for the JSON.

    Returns:
        ``("cnnkit NumPy" | "cnnkit CUDA kernel" | "cnnkit reference on CuPy" | "cnnkit CUDA kernel +
        reference on CuPy", {"implementation": {op: "cuda" | "reference"}, "function": {op: qualified name}})``,
        and on a GPU ``"matmul_precision"``: the setting and cuBLAS's compute type as read back
        (:func:`cnnkit.cuda.matmul_precision_in_use`; our convolution kernels are FP32 whatever the setting).
    """
    kinds, functions = {}, {}
    for op in ops:
        function = registry.lookup(op, device.is_cuda)
        functions[op] = f"{function.__module__}.{function.__qualname__}"
        runs_kernel = device.is_cuda and registry.cuda_kernels_enabled() and registry.has_cuda_kernel(op)
        kinds[op] = "cuda" if runs_kernel else "reference"
    if not device.is_cuda:
        name = "cnnkit NumPy"
    elif set(kinds.values()) == {"cuda"}:
        name = "cnnkit CUDA kernel"
    elif set(kinds.values()) == {"reference"}:
        name = "cnnkit reference on CuPy"
    else:
        name = "cnnkit CUDA kernel + reference on CuPy"
    details = {"implementation": kinds, "function": functions}
    if device.is_cuda:
        details["matmul_precision"] = cuda.matmul_precision_in_use()
    return name, details


def rel_error(xp, value, expected) -> float:
    """‖value − expected‖ / ‖expected‖ (Frobenius), computed in float64."""
    difference = value.astype("float64") - expected.astype("float64")
    return float(xp.linalg.norm(difference.ravel()) / xp.linalg.norm(expected.astype("float64").ravel()))


def check(name: str, error: float, tolerance: float) -> dict:
    """A numerical check for the JSON; NaN fails."""
    return {"name": name, "rel_error": error, "tolerance": tolerance, "ok": bool(error <= tolerance)}


def flops_peaks(device: BenchDevice, peak: Peak | None, tf32: bool = False) -> list[PeakLabel]:
    """The datasheet FP32 (or TF32) rate of this GPU in GFLOP/s, when the GPU is in the table."""
    if not device.is_cuda or peak is None:
        return []
    if tf32:
        return [] if peak.tf32_tflops is None else [PeakLabel(f"{peak.model} TF32 datasheet", peak.tf32_tflops * 1e3)]
    return [PeakLabel(f"{peak.model} FP32 datasheet", peak.fp32_tflops * 1e3)]


def guarded(cases: Iterable[tuple[dict, Callable[[], CaseResult]]]) -> Iterator[CaseResult]:
    """Run each case; one whose set-up raises becomes a failed result, and the next one runs.

    Args:
        cases: ``(identity, run)`` pairs, ``identity`` holding the CaseResult fields a
            failure needs (suite, case, device, shape, params, unit, key).
    """
    for identity, run in cases:
        try:
            yield run()
        except Exception as error:  # reported in the table and JSON, and in the exit status
            yield failed_case(error=error, **identity)
