"""Datasheet peaks of common NVIDIA GPUs, looked up by the name the driver reports.

These are labels printed beside measured figures ("41 % of FP32 peak"), never
targets: every target is a ratio to a reference measured in the same run, and the
memory bandwidth a benchmark compares with is the one it measured (a large
device-to-device copy). Figures are NVIDIA's published dense rates (no structured
sparsity) at boost clock; a card running at lower clocks or power reaches less.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Peak:
    """Published peak rates of one GPU model.

    Attributes:
        model: the model the figures belong to, e.g. ``"H100 SXM5 80GB"``.
        fp32_tflops: FP32 FMA rate on CUDA cores (2 FLOP per FMA).
        tf32_tflops: dense TF32 tensor-core rate, None where the card has none.
        memory_gbps: device memory bandwidth in GB/s (10⁹ bytes).
    """

    model: str
    fp32_tflops: float
    tf32_tflops: float | None
    memory_gbps: float

    def to_dict(self) -> dict:
        return {**asdict(self), "source": "datasheet"}


# (tokens that must all appear in the name, the peak); the first match wins, so
# specific variants come before the generic name of their family.
_TABLE: tuple[tuple[tuple[str, ...], Peak], ...] = (
    (("h200", "nvl"), Peak("H200 NVL", 60.0, 417.0, 4800.0)),
    (("h200",), Peak("H200 SXM 141GB", 67.0, 494.7, 4800.0)),
    (("h100", "nvl"), Peak("H100 NVL 94GB", 60.0, 417.0, 3900.0)),
    (("h100", "pcie"), Peak("H100 PCIe 80GB", 51.2, 378.0, 2000.0)),
    (("h100",), Peak("H100 SXM5 80GB", 67.0, 494.7, 3350.0)),
    (("a100", "pcie", "80gb"), Peak("A100 PCIe 80GB", 19.5, 156.0, 1935.0)),
    (("a100", "pcie"), Peak("A100 PCIe 40GB", 19.5, 156.0, 1555.0)),
    (("a100", "80gb"), Peak("A100 SXM4 80GB", 19.5, 156.0, 2039.0)),
    (("a100",), Peak("A100 SXM4 40GB", 19.5, 156.0, 1555.0)),
    (("l40s",), Peak("L40S", 91.6, 183.0, 864.0)),
    (("l4",), Peak("L4", 30.3, 60.0, 300.0)),
    (("a10",), Peak("A10", 31.2, 62.5, 600.0)),
    (("rtx", "4090"), Peak("GeForce RTX 4090", 82.6, 82.6, 1008.0)),
    (("rtx", "3090"), Peak("GeForce RTX 3090", 35.6, 35.6, 936.0)),
    (("v100", "pcie"), Peak("V100 PCIe", 14.0, None, 900.0)),
    (("v100",), Peak("V100 SXM2", 15.7, None, 900.0)),
    (("t4",), Peak("T4", 8.1, None, 320.0)),
)


def _tokens(name: str) -> set[str]:
    return set(re.split(r"[\s\-_/]+", name.lower().strip()))


def lookup_peak(gpu_name: str | None) -> Peak | None:
    """The datasheet peak for a GPU name such as ``"NVIDIA H100 80GB HBM3"``; None if unknown."""
    if not gpu_name:
        return None
    tokens = _tokens(gpu_name)
    for required, peak in _TABLE:
        if all(token in tokens for token in required):
            return peak
    return None


def known_models() -> list[str]:
    return [peak.model for _, peak in _TABLE]
