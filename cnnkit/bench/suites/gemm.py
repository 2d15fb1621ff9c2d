"""GEMM: our ``gemm`` op against cuBLAS (``cupy.matmul``) on the GPU and NumPy's BLAS on the CPU.

C = A·B with A (M, K) and B (K, N) in float32: 2·M·N·K FLOPs and at least
4·(M·K + K·N + M·N) bytes per call. On a GPU with TF32 tensor cores (sm_80 and
newer) every size also runs in TF32: ours through
``cnnkit.cuda.set_matmul_precision("tf32")``, cuBLAS with the compute type that
``CUPY_TF32=1`` selects. Every product is checked against the float64 product of
the same inputs; a TF32 reference whose error is FP32-small did not use TF32 and is
reported as failed rather than compared with.
"""
from __future__ import annotations

import re
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Iterator

import numpy as np

from ...registry import impl
from ..device import BenchDevice
from ..hardware import numpy_info
from ..peaks import Peak
from ..results import FAILED, CaseResult, Figure, measured
from .common import check, flops_peaks, guarded, ours, rel_error

FP32_TOLERANCE = 1e-4
TF32_TOLERANCE = 1e-2
# TF32 keeps 10 mantissa bits, so a TF32 product of random data is ~1e-4..1e-3 off the
# float64 one; an FP32 product is ~1e-6 off. Below this, the product did not use TF32.
TF32_LEAST_ERROR = 1e-5


def parse_size(text: str) -> tuple[int, int, int]:
    """``"1024"`` -> (1024, 1024, 1024); ``"4096x1024x512"`` -> (M, N, K) = (4096, 1024, 512)."""
    parts = re.split(r"[x×]", text.strip().lower())
    if len(parts) not in (1, 3) or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"a GEMM size must be N (square) or MxNxK with positive integers, got {text!r}")
    numbers = [int(part) for part in parts]
    return (numbers[0],) * 3 if len(numbers) == 1 else tuple(numbers)


def _cublas_compute_types(cupy):
    """CuPy's private module holding the cuBLAS compute type of ``cupy.matmul``, or RuntimeError."""
    linalg = getattr(getattr(cupy, "_core", None), "_routines_linalg", None)
    if linalg is None or not all(hasattr(linalg, name) for name in ("set_compute_type", "get_compute_type",
                                                                     "compute_type_to_str")):
        raise RuntimeError("this CuPy does not expose cuBLAS compute types (cupy._core._routines_linalg)")
    return linalg


def _compute_type_code(linalg, name: str) -> int:
    for code in range(32):
        if linalg.compute_type_to_str(code) == name:
            return code
    raise RuntimeError(f"this CuPy has no cuBLAS compute type {name}")


@contextmanager
def cublas_compute_type(linalg, code: int) -> Iterator[None]:
    """Make ``cupy.matmul`` on float32 use compute type ``code`` for the duration.

    This is the switch that ``CUPY_TF32=1`` flips at start-up (to TF32), set here
    explicitly both ways, so that the FP32 reference is FP32 even where that
    variable is set, and restored afterwards.
    """
    previous = linalg.get_compute_type(np.float32)
    linalg.set_compute_type(np.float32, code)
    try:
        yield
    finally:
        linalg.set_compute_type(np.float32, previous)


@contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """Our GPU matmul precision for the duration: "fp32" -> "highest", "tf32" -> "tf32"."""
    from ... import cuda
    previous = cuda.get_matmul_precision()
    cuda.set_matmul_precision("tf32" if precision == "tf32" else "highest")
    try:
        yield
    finally:
        cuda.set_matmul_precision(previous)


def _tf32_capable(device: BenchDevice) -> tuple[bool, str]:
    from ...cuda import launcher
    major, minor = launcher.device_properties(device.device.index).compute_capability
    if major >= 8:
        return True, ""
    return False, f"TF32 tensor cores need compute capability 8.0 or newer; this GPU is {major}.{minor}"


def _reference(device: BenchDevice, precision: str, a, b, expected) -> Figure:
    xp = device.xp
    if not device.is_cuda:
        blas = numpy_info()["blas"] or {}
        name = f"NumPy BLAS ({blas.get('name', 'unknown')} {blas.get('version', '')})".replace(" )", ")")
        return measured(name, lambda: device.measure(lambda: np.matmul(a, b)))
    name = f"cuBLAS {precision.upper()} (cupy.matmul)"
    compute_type = "COMPUTE_TYPE_TF32" if precision == "tf32" else "COMPUTE_TYPE_DEFAULT"
    try:
        linalg = _cublas_compute_types(xp)
        context = cublas_compute_type(linalg, _compute_type_code(linalg, compute_type))
    except RuntimeError as error:
        if precision == "tf32":
            return Figure.failed(name, error)
        # FP32 is CuPy's default unless CUPY_TF32 is set; the error check below tells.
        context, compute_type = nullcontext(), "CuPy default"
    with context:
        figure = measured(name, lambda: device.measure(lambda: xp.matmul(a, b)), compute_type=compute_type)
        if not figure.ok:
            return figure
        try:
            error = rel_error(xp, xp.matmul(a, b), expected)
        except Exception as failure:  # reported, like any failing measurement
            return Figure.failed(name, failure)
    figure.details["rel_error"] = error
    if (error > TF32_LEAST_ERROR) != (precision == "tf32"):
        return Figure(name, FAILED, reason=f"cuBLAS did not run in {precision.upper()}: relative error {error:.1e} "
                                             f"against float64 (TF32 gives more than {TF32_LEAST_ERROR:g})")
    return figure


def _case(device: BenchDevice, identity: dict, peak: Peak | None) -> CaseResult:
    M, N, K = (identity["params"][name] for name in "MNK")
    precision = identity["params"]["precision"]
    name, details = ours(("gemm",), device)

    def result(ours_figure: Figure, references: list[Figure] | None = None, checked: dict | None = None):
        return CaseResult(**identity, work=2 * M * N * K / 1e9, flops=2.0 * M * N * K,
                          bytes=4.0 * (M * K + K * N + M * N), ours=ours_figure, references=references or [],
                          peaks=flops_peaks(device, peak, tf32=precision == "tf32"), check=checked)

    if precision == "tf32":
        capable, reason = _tf32_capable(device)
        if not capable:
            return result(Figure.absent(name, reason))
    xp = device.xp
    a, b = device.random((M, K), seed=1), device.random((K, N), seed=2)
    expected = xp.matmul(a.astype(np.float64), b.astype(np.float64))
    checked = None
    with matmul_precision(precision) if device.is_cuda else nullcontext():
        figure = measured(name, lambda: device.measure(lambda: impl("gemm", a, b)), **details)
        if figure.ok:
            error = rel_error(xp, impl("gemm", a, b), expected)
            tolerance = TF32_TOLERANCE if precision == "tf32" else FP32_TOLERANCE
            checked = check("relative error against the float64 product", error, tolerance)
            if precision == "tf32":
                figure.details["ran_in_tf32"] = error > TF32_LEAST_ERROR
    return result(figure, [_reference(device, precision, a, b, expected)], checked)


def run(device: BenchDevice, sizes: list[tuple[int, int, int]], peak: Peak | None = None,
        tf32: bool = True) -> Iterator[CaseResult]:
    """One case per size and precision (FP32, and TF32 on a GPU when ``tf32``)."""
    precisions = ("fp32", "tf32") if device.is_cuda and tf32 else ("fp32",)

    def cases():
        for M, N, K in sizes:
            for precision in precisions:
                identity = {"suite": "gemm", "case": f"sgemm {precision}", "device": device.name,
                            "shape": f"{M}x{N}x{K}", "unit": "GFLOP/s", "key": f"gemm {precision} {M}x{N}x{K}",
                            "params": {"M": M, "N": N, "K": K, "dtype": "float32", "precision": precision}}
                yield identity, partial(_case, device, identity, peak)

    return guarded(cases())
