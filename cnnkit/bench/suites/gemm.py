"""GEMM: our ``gemm`` op against cuBLAS (``cupy.matmul``) on the GPU and NumPy's BLAS on the CPU.

C = A·B with A (M, K) and B (K, N) in float32: 2·M·N·K FLOPs and at least
4·(M·K + K·N + M·N) bytes per call. On a GPU with TF32 tensor cores (sm_80 and
newer) every size also runs in TF32: ours through
``cnnkit.cuda.set_matmul_precision("tf32")``, which sets cuBLAS's compute type for
``cupy.matmul`` too. Every product is checked against the float64 product of
the same inputs; a TF32 reference whose error is FP32-small did not use TF32 and is
reported as failed rather than compared with.
"""
from __future__ import annotations

import re
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Iterator

import numpy as np

from ... import backend, cuda
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


@contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """The GPU matmul precision, ours and cuBLAS's alike, for the duration: "fp32" -> "highest", "tf32" -> "tf32"."""
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
    with matmul_precision(precision):
        figure = measured(name, lambda: device.measure(lambda: xp.matmul(a, b)),
                          compute_type=backend.cublas_float32_compute_type(),
                          precision=cuda.matmul_precision_in_use())
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
        name, details = ours(("gemm",), device)  # inside, so the JSON has the precision this case ran with
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
