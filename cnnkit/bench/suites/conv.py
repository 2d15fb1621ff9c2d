"""Convolution: our ``conv_forward`` / ``conv_backward_data`` / ``conv_backward_filter`` against cuDNN.

The shapes are the four 3×3, stride 1, padding 1 layers of the targets (bench/README.md). Each runs
forward alone and forward + backward (forward, input gradient, weight gradient, as
one training step of the layer needs). Ours are called through the registry, so
the GPU runs our CUDA kernels where they are registered and the references on
CuPy where not; the JSON names which. The reference is PyTorch: cuDNN in FP32
(``allow_tf32=False``, ``benchmark=True``) on the GPU, its CPU kernels on the CPU,
with ``conv2d`` and ``aten.convolution_backward`` on the very same arrays; absent
when PyTorch is not installed.

FLOPs per pass: 2·N·F·H·W·C·9 (the three passes do the same count); bytes: every
input read once and every output written once, float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Iterator

import numpy as np

from ... import registry
from ...window import make_geometry
from ...registry import impl
from ..device import BenchDevice
from ..peaks import Peak
from ..results import CaseResult, Figure, measured
from ..torch_ref import as_torch, import_torch
from .common import check, flops_peaks, guarded, ours, rel_error

FORWARD_TOLERANCE = 1e-4
OPS = ("conv_forward", "conv_backward_data", "conv_backward_filter")


@dataclass(frozen=True)
class ConvShape:
    """A 3×3, stride 1, padding 1 convolution: input (batch, channels, height, width), ``filters`` outputs."""

    batch: int
    channels: int
    height: int
    width: int
    filters: int

    @property
    def label(self) -> str:
        return f"b{self.batch} {self.channels}->{self.filters} {self.height}x{self.width}"

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.filters, self.height, self.width)

    def with_batch_divided(self, divisor: int) -> "ConvShape":
        return ConvShape(max(1, self.batch // divisor), self.channels, self.height, self.width, self.filters)


ANCHOR_SHAPES = (
    ConvShape(256, 1, 28, 28, 32),
    ConvShape(256, 32, 14, 14, 64),
    ConvShape(64, 128, 28, 28, 128),
    ConvShape(64, 256, 14, 14, 256),
)


def _figures(shape: ConvShape, backward: bool) -> tuple[float, float]:
    """(FLOPs, bytes) of one call."""
    N, C, H, W, F = shape.batch, shape.channels, shape.height, shape.width, shape.filters
    flops = 2.0 * N * F * H * W * C * 9
    x, w, y = N * C * H * W, F * C * 9, N * F * H * W
    if not backward:
        return flops, 4.0 * (x + w + y)
    # forward reads x, W and writes y; backward-data reads gy, W and writes gx; backward-filter reads gy, x, writes gW
    return 3 * flops, 4.0 * ((x + w + y) + (y + w + x) + (y + x + w))


def _reference(device: BenchDevice, x, W, gy, backward: bool) -> Figure:
    torch, reason = import_torch()
    name = "PyTorch cuDNN FP32" if device.is_cuda else "PyTorch CPU"
    if torch is None:
        return Figure.absent(name, reason)
    name = f"{name} {torch.__version__}"
    tx, tW, tgy = as_torch(torch, x), as_torch(torch, W), as_torch(torch, gy)

    def forward():
        return torch.nn.functional.conv2d(tx, tW, padding=1)

    def forward_backward():
        forward()
        torch.ops.aten.convolution_backward(tgy, tx, tW, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                            [True, True, False])

    return measured(name, lambda: device.measure(forward_backward if backward else forward,
                                                 clock=device.torch_clock(torch)))


def _case(device: BenchDevice, identity: dict, shape: ConvShape, backward: bool, peak: Peak | None) -> CaseResult:
    N, C, H, W_, F = shape.batch, shape.channels, shape.height, shape.width, shape.filters
    x = device.random((N, C, H, W_), seed=1)
    W = device.random((F, C, 3, 3), seed=2) * np.float32(1 / np.sqrt(9 * C))
    gy = device.random(shape.output_shape, seed=3)
    geometry = make_geometry(2, 3, 1, 1, 1, (H, W_))

    def forward():
        return impl("conv_forward", x, W, None, geometry, 1)

    def forward_backward():
        _, saved = forward()
        impl("conv_backward_data", gy, W, x.shape, geometry, 1)
        impl("conv_backward_filter", gy, x, saved, W.shape, geometry, 1)

    name, details = ours(OPS if backward else OPS[:1], device)
    figure = measured(name, lambda: device.measure(forward_backward if backward else forward), **details)
    checked = None
    if figure.ok and not backward:
        # The array-generic reference, on this device: a CPU variant cannot take GPU arrays.
        reference = registry.reference("conv_forward")
        expected, _ = reference(x.astype(np.float64), W.astype(np.float64), None, geometry, 1)
        checked = check("relative error against the float64 reference", rel_error(device.xp, forward()[0], expected),
                        FORWARD_TOLERANCE)
    flops, nbytes = _figures(shape, backward)
    return CaseResult(**identity, work=flops / 1e9, flops=flops, bytes=nbytes, ours=figure,
                      references=[_reference(device, x, W, gy, backward)], peaks=flops_peaks(device, peak),
                      check=checked)


def run(device: BenchDevice, shapes: tuple[ConvShape, ...] = ANCHOR_SHAPES,
        peak: Peak | None = None) -> Iterator[CaseResult]:
    """Forward, and forward + backward, for each shape."""

    def cases():
        for shape in shapes:
            for backward in (False, True):
                op = "fwd+bwd" if backward else "fwd"
                identity = {"suite": "conv", "case": f"conv {op}", "device": device.name, "shape": shape.label,
                            "unit": "GFLOP/s",
                            "key": f"conv {op} {shape.channels}->{shape.filters} {shape.height}x{shape.width}",
                            "params": {"batch": shape.batch, "channels": shape.channels, "height": shape.height,
                                       "width": shape.width, "filters": shape.filters, "kernel": [3, 3],
                                       "stride": 1, "padding": 1, "dtype": "float32", "pass": op}}
                yield identity, partial(_case, device, identity, shape, backward, peak)

    return guarded(cases())
