"""End-to-end training of the small CNN (``models.zoo.small_cnn``): images per second, ours against PyTorch.

One call is one training step on a fixed batch of random 1×28×28 images with
random labels of 10 classes, already on the device: forward, softmax cross-entropy
from logits, backward, Adam (learning rate 1e-3) update, and reading the loss back
to the host. Ours is ``model.train_on_batch`` on ``cnnkit.models.zoo.small_cnn``;
the reference is the same network written in PyTorch (same layers, batch-norm
momentum 0.1 in PyTorch's convention = our 0.9, epsilon 1e-3, dropout 0.25, Adam
with epsilon 1e-7) and stepped eagerly, ``loss.item()`` included, since our ``fit``
reads every loss back too. Absent when PyTorch is not installed.

The figure is batch size / median step time. A step whose loss is not finite
fails the case.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Iterator

from ... import backend, losses, optimizers, registry
from ...models.zoo import small_cnn
from ..device import BenchDevice
from ..results import CaseResult, Figure, measured
from ..torch_ref import as_torch, import_torch
from .common import guarded

IMAGE_SHAPE = (1, 28, 28)
CLASSES = 10


def _ours_name(device: BenchDevice) -> tuple[str, dict]:
    if not device.is_cuda:
        return "cnnkit NumPy", {}
    kernels = []
    if registry.cuda_kernels_enabled():
        kernels = [op for op, backends in registry.registered_ops().items() if registry.CUDA in backends]
    return ("cnnkit CuPy + CUDA kernels" if kernels else "cnnkit references on CuPy"), {"cuda_kernels": kernels}


def _torch_small_cnn(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32, eps=1e-3, momentum=0.1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64, eps=1e-3, momentum=0.1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, CLASSES),
    )


def _reference(device: BenchDevice, x, y) -> tuple[Figure, list[float]]:
    torch, reason = import_torch()
    name = "PyTorch eager" if device.is_cuda else "PyTorch CPU"
    if torch is None:
        return Figure.absent(name, reason), []
    torch.manual_seed(0)
    model = _torch_small_cnn(torch).to(device.torch_device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    tx, ty = as_torch(torch, x), as_torch(torch, y)
    loss_values: list[float] = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(tx), ty)
        loss.backward()
        optimizer.step()
        loss_values.append(loss.item())

    return measured(f"{name} {torch.__version__}", lambda: device.measure(step, clock=device.torch_clock(torch))), \
        loss_values


def _case(device: BenchDevice, identity: dict, batch_size: int) -> CaseResult:
    x = device.random((batch_size,) + IMAGE_SHAPE, seed=1)
    y = device.integers(CLASSES, (batch_size,), seed=2)
    backend.manual_seed(0)
    model = small_cnn(IMAGE_SHAPE, num_classes=CLASSES)
    model.compile(optimizers.Adam(learning_rate=1e-3), losses.SparseCategoricalCrossentropy(from_logits=True))
    model.to(device.name)
    loss_values: list[float] = []

    def step():
        loss_values.append(model.train_on_batch(x, y))

    name, details = _ours_name(device)
    figure = measured(name, lambda: device.measure(step), **details)
    checked = None
    if figure.ok:
        checked = {"name": "every training loss is finite", "ok": all(math.isfinite(v) for v in loss_values),
                   "first_loss": loss_values[0], "last_loss": loss_values[-1], "steps": len(loss_values)}
    reference, reference_losses = _reference(device, x, y)
    if reference_losses:
        reference.details.update(first_loss=reference_losses[0], last_loss=reference_losses[-1])
    return CaseResult(**identity, work=float(batch_size), ours=figure, references=[reference], check=checked)


def run(device: BenchDevice, batch_sizes: tuple[int, ...] = (128, 512)) -> Iterator[CaseResult]:
    """One case per batch size."""

    def cases():
        for batch_size in batch_sizes:
            identity = {"suite": "train", "case": "small CNN step", "device": device.name,
                        "shape": f"b{batch_size} 1x28x28", "unit": "images/s", "key": f"train b{batch_size}",
                        "params": {"batch_size": batch_size, "image_shape": list(IMAGE_SHAPE), "classes": CLASSES,
                                   "optimizer": "Adam(1e-3)", "dtype": "float32"}}
            yield identity, partial(_case, device, identity, batch_size)

    return guarded(cases())
