"""Gradient averaging over ranks in buckets, started while backward is still running.

Parameters are grouped into buckets in reverse order (the order backward reaches
them), each a few megabytes, as PyTorch's DistributedDataParallel does: a few
large all-reduces cost far less than one per parameter. Every parameter carries a
post-accumulate-grad hook; when the last gradient of a bucket is complete its
gradients are packed into one buffer and a non-blocking all-reduce starts (MPI
``Iallreduce`` for NumPy, NCCL on a side stream for CuPy) while backward goes on
with earlier layers. :meth:`GradientReducer.finish`, called before the optimizer
step, waits for them and hands each parameter its averaged gradient.

Buckets are started strictly in order on every rank, so the collectives match
even if hooks fire in a different order somewhere.
"""
from __future__ import annotations

from typing import Any

from ..autograd import Parameter, Tensor
from . import comm

FIRST_BUCKET_BYTES = 1 << 20  # small, so that the first all-reduce starts early in backward


def _buckets(params: list[Parameter], cap_bytes: int) -> list[list[Parameter]]:
    """``params`` in reverse order, cut into runs of one dtype and device of about ``cap_bytes`` each."""
    buckets: list[list[Parameter]] = []
    current: list[Parameter] = []
    size = 0
    for p in reversed(params):
        if current and (p.dtype != current[0].dtype or p.device != current[0].device):
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += p.data.nbytes
        limit = min(FIRST_BUCKET_BYTES, cap_bytes) if not buckets else cap_bytes
        if size >= limit:
            buckets.append(current)
            current, size = [], 0
    if current:
        buckets.append(current)
    return buckets


class GradientReducer:
    """Averages the gradients of ``params`` over all ranks, bucket by bucket.

    Args:
        params: the trainable parameters, in the model's order.
        bucket_cap_mb: the size of a bucket in megabytes (the first is at most 1 MB).
    """

    def __init__(self, params: list[Parameter], bucket_cap_mb: float):
        self.params = list(params)
        self.buckets = _buckets(self.params, max(1, int(bucket_cap_mb * (1 << 20))))
        self._bucket_of = {id(p): index for index, bucket in enumerate(self.buckets) for p in bucket}
        self._handles = [p.register_post_accumulate_grad_hook(self._on_gradient) for p in self.params]
        self._reset()

    def _reset(self) -> None:
        self._missing = [len(bucket) for bucket in self.buckets]
        self._in_flight: list[Any] = [None] * len(self.buckets)
        self._next = 0

    def _on_gradient(self, parameter: Parameter) -> None:
        index = self._bucket_of[id(parameter)]
        self._missing[index] -= 1
        while self._next < len(self.buckets) and self._missing[self._next] <= 0:
            self._start(self._next)
            self._next += 1

    def _start(self, index: int) -> None:
        bucket = self.buckets[index]
        xp = bucket[0].xp
        with bucket[0].device.activate():
            # A parameter no gradient reached this step contributes zeros, as in DDP.
            flat = [p.grad.data.ravel() if p.grad is not None else xp.zeros(p.size, p.dtype) for p in bucket]
            buffer = xp.concatenate(flat) if len(flat) > 1 else flat[0].copy()
        self._in_flight[index] = comm.start_allreduce(buffer)

    def finish(self) -> None:
        """Wait for every bucket (starting any that backward did not complete) and set the averaged gradients."""
        while self._next < len(self.buckets):
            self._start(self._next)
            self._next += 1
        ranks = comm.size()
        for bucket, pending in zip(self.buckets, self._in_flight):
            buffer = comm.wait(pending)
            buffer /= ranks
            offset = 0
            for p in bucket:
                p.grad = Tensor(buffer[offset:offset + p.size].reshape(p.shape))
                offset += p.size
        self._reset()

    def remove(self) -> None:
        """Unregister the hooks (at the end of training)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
