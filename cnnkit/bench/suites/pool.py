"""2×2 max pooling (forward and backward) against a copy of the same number of bytes.

Pooling is memory bound: its speed limit is how fast the device moves bytes, so the
reference is a device-to-device copy of as many bytes as the pooling pass must move
at least, timed the same way (``numpy.copyto`` / ``cupy.copyto``), and the figure is
GB/s. The inputs are the outputs of the four convolutions of the conv suite.
Before every call, of ours and of the references alike, a buffer larger than the
last-level cache is overwritten, so each run reads from memory. PyTorch's
``max_pool2d_with_indices`` and its backward are a second reference when installed.

Bytes per call, float32 values and one byte per arg-max index (a 2×2 window has
four taps): forward reads x and writes y and the indices; backward reads gy and
the indices and writes gx. For the roofline, forward counts 3 comparisons per
window as its operations.

:func:`copy_bandwidth` measures the device's copy bandwidth on a buffer far larger
than any cache: the ceiling for the fraction of peak and the roofline.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Iterator

from ... import registry
from ...window import make_geometry
from ...registry import impl
from ..device import BenchDevice
from ..peaks import Peak
from ..results import CaseResult, Figure, PeakLabel, measured
from ..timing import measure
from ..torch_ref import as_torch, import_torch
from .common import guarded, ours
from .conv import ANCHOR_SHAPES

INDEX_BYTES = 1


def copy_bandwidth(device: BenchDevice, nbytes: int) -> dict:
    """GB/s of copying one ``nbytes`` buffer into another (counting bytes read plus bytes written)."""
    xp = device.xp
    with device.device.activate():
        source = xp.full(nbytes // 4, 1.5, dtype="float32")  # a copy's speed does not depend on the values
        target = xp.empty_like(source)
        timing = measure(lambda: xp.copyto(target, source), device.clock, device.settings.warmup,
                         device.settings.repeat, max_seconds=device.settings.max_seconds)
    return {"buffer_bytes": nbytes, "gbps": 2 * nbytes / 1e9 / (timing.median_ms / 1e3), "timing": timing.to_dict()}


def _bytes(input_shape: tuple, backward: bool) -> float:
    n = math.prod(input_shape)
    pooled = n // 4
    if backward:
        return 4.0 * pooled + INDEX_BYTES * pooled + 4.0 * n
    return 4.0 * n + 4.0 * pooled + INDEX_BYTES * pooled


def _copy_reference(device: BenchDevice, nbytes: float) -> Figure:
    xp = device.xp
    with device.device.activate():
        source = xp.full(int(nbytes) // 8, 1.5, dtype="float32")
        target = xp.empty_like(source)
    return measured(f"copy of the same bytes ({xp.__name__}.copyto)",
                    lambda: device.measure(lambda: xp.copyto(target, source), flush=True), same_work=False)


def _torch_reference(device: BenchDevice, x, gy, backward: bool) -> Figure:
    torch, reason = import_torch()
    name = "PyTorch max_pool2d"
    if torch is None:
        return Figure.absent(name, reason)
    tx, tgy = as_torch(torch, x), as_torch(torch, gy)
    _, indices = torch.ops.aten.max_pool2d_with_indices(tx, [2, 2], [2, 2])

    def forward():
        torch.ops.aten.max_pool2d_with_indices(tx, [2, 2], [2, 2])

    def backward_pass():
        torch.ops.aten.max_pool2d_with_indices_backward(tgy, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, indices)

    return measured(f"{name} {torch.__version__}", lambda: device.measure(
        backward_pass if backward else forward, clock=device.torch_clock(torch), flush=True))


def _check(device: BenchDevice, x, gy, geometry, backward: bool) -> dict:
    """Our result against the reference implementation run on the same device (max pooling is exact)."""
    forward_reference = registry.reference("pool_forward")
    expected, expected_saved = forward_reference(x, "max", geometry)
    value, saved = impl("pool_forward", x, "max", geometry)
    if backward:
        expected = registry.reference("pool_backward")(gy, expected_saved, x.shape, "max", geometry)
        value = impl("pool_backward", gy, saved, x.shape, "max", geometry)
    mismatches = int((value != expected).sum())
    return {"name": "elements differing from the reference implementation", "mismatches": mismatches,
            "ok": mismatches == 0}


def _case(device: BenchDevice, identity: dict, input_shape: tuple, backward: bool, copy_gbps: float | None,
          peak: Peak | None) -> CaseResult:
    N, C, H, W = input_shape
    x = device.random(input_shape, seed=1)
    gy = device.random((N, C, H // 2, W // 2), seed=2)
    geometry = make_geometry(2, 2, 2, "valid", 1, (H, W))
    _, saved = impl("pool_forward", x, "max", geometry)

    def forward():
        impl("pool_forward", x, "max", geometry)

    def backward_pass():
        impl("pool_backward", gy, saved, x.shape, "max", geometry)

    name, details = ours(("pool_forward", "pool_backward") if backward else ("pool_forward",), device)
    figure = measured(name, lambda: device.measure(backward_pass if backward else forward, flush=True), **details)
    checked = None
    if figure.ok and set(details["implementation"].values()) != {"reference"}:
        checked = _check(device, x, gy, geometry, backward)
    nbytes = _bytes(input_shape, backward)
    comparisons = None if backward else 3.0 * math.prod(gy.shape)  # 3 per 2×2 window, for the roofline
    peaks = [] if copy_gbps is None else [PeakLabel("measured copy bandwidth", copy_gbps)]
    if device.is_cuda and peak is not None:
        peaks.append(PeakLabel(f"{peak.model} memory datasheet", peak.memory_gbps))
    return CaseResult(**identity, work=nbytes / 1e9, flops=comparisons, bytes=nbytes, ours=figure,
                      references=[_copy_reference(device, nbytes), _torch_reference(device, x, gy, backward)],
                      peaks=peaks, check=checked)


def run(device: BenchDevice, input_shapes: tuple[tuple, ...] | None = None, copy_gbps: float | None = None,
        peak: Peak | None = None) -> Iterator[CaseResult]:
    """Forward and backward 2×2 max pooling of each input shape (default: the conv suite's outputs).

    Args:
        copy_gbps: the device's measured copy bandwidth, reported as the ceiling.
    """
    if input_shapes is None:
        input_shapes = tuple(shape.output_shape for shape in ANCHOR_SHAPES)

    def cases():
        for input_shape in input_shapes:
            N, C, H, W = input_shape
            for backward in (False, True):
                op = "bwd" if backward else "fwd"
                identity = {"suite": "pool", "case": f"maxpool2x2 {op}", "device": device.name,
                            "shape": f"b{N} c{C} {H}x{W}", "unit": "GB/s", "key": f"pool {op} c{C} {H}x{W}",
                            "params": {"input_shape": list(input_shape), "window": [2, 2], "stride": [2, 2],
                                       "dtype": "float32", "pass": op, "index_bytes": INDEX_BYTES}}
                yield identity, partial(_case, device, identity, input_shape, backward, copy_gbps, peak)

    return guarded(cases())
