"""Batches uploaded to a GPU while the previous ones train: pinned staging buffers, a copy stream, events.

A copy from ordinary (pageable) host memory cannot overlap with kernels: the driver
stages it through a pinned buffer of its own and the call returns only when it is
done. :class:`StreamedUpload` keeps a ring of pinned buffers instead, copies each
batch into one, and starts the transfer on a stream of its own, so the upload of
batch k+1 runs while batch k computes on the compute stream (what PyTorch's
``pin_memory=True`` with ``non_blocking`` copies gives). Two events order the streams
without the host waiting: the compute stream waits for a batch's "uploaded" event
before its first use, and the copy stream waits for the compute stream's "released"
event (recorded when the next batch is handed out) before it writes device memory
that CuPy's pool may have taken back from batches already trained on.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend


class _StagingSlot:
    """Pinned host buffers (one per field, grown as needed) and the event of their last upload."""

    def __init__(self):
        self.buffers: list = []  # (pinned memory, its size in bytes) per field
        self.uploaded = None  # event recorded on the copy stream after the last copy out of this slot

    def buffer(self, cupy, field: int, array: np.ndarray) -> np.ndarray:
        """A pinned array of ``array``'s shape and dtype for ``field``, reusing the slot's memory."""
        while len(self.buffers) <= field:
            self.buffers.append((None, 0))
        memory, capacity = self.buffers[field]
        if capacity < array.nbytes:  # the first batch, or larger samples: the last batch is never larger
            capacity = max(array.nbytes, 1)
            memory = cupy.cuda.alloc_pinned_memory(capacity)
            self.buffers[field] = (memory, capacity)
        return np.frombuffer(memory, dtype=array.dtype, count=array.size).reshape(array.shape)


class Uploaded:
    """A batch whose device arrays are being filled on the copy stream; see :meth:`StreamedUpload.ready`."""

    def __init__(self, arrays: tuple, event):
        self.arrays, self.event = arrays, event


class StreamedUpload:
    """Moves host batches to ``device`` on a copy stream of its own, through ``slots`` pinned buffers.

    :meth:`upload` runs where the batches are prepared (the prefetch thread), :meth:`ready`
    where they are used; ``slots`` must exceed the number of batches in flight between
    the two (the prefetch depth) so a buffer is reused only after its copy finished.

    Args:
        device: a CUDA :class:`~cnnkit.backend.Device`.
        slots: pinned buffer sets in the ring.
    """

    def __init__(self, device: backend.Device, slots: int):
        self.device = device
        self.cupy = backend.cupy()
        with device.activate():  # streams and events belong to the device current when they are made
            self.stream = self.cupy.cuda.Stream(non_blocking=True)
            self.released = self.cupy.cuda.Event(disable_timing=True)
            self.released.record(self.cupy.cuda.get_current_stream())
        self.slots = [_StagingSlot() for _ in range(slots)]
        self.next_slot = 0

    def upload(self, arrays: tuple) -> Uploaded:
        """Stage the host arrays of one batch in pinned memory and start their copies; device arrays pass."""
        slot = self.slots[self.next_slot]
        self.next_slot = (self.next_slot + 1) % len(self.slots)
        if slot.uploaded is not None:
            slot.uploaded.synchronize()  # the copy out of these buffers, one ring ago, has finished
        with self.device.activate(), self.stream:
            self.stream.wait_event(self.released)
            moved = []
            for field, array in enumerate(arrays):
                if backend.is_cuda_array(array):
                    moved.append(backend.to_device(array, self.device))
                    continue
                array = np.asarray(array)
                staged = slot.buffer(self.cupy, field, array)
                np.copyto(staged, array)
                target = self.cupy.empty(array.shape, dtype=array.dtype)
                target.set(staged, stream=self.stream)
                moved.append(target)
            slot.uploaded = self.cupy.cuda.Event(disable_timing=True)
            slot.uploaded.record(self.stream)
        return Uploaded(tuple(moved), slot.uploaded)

    def ready(self, batch: Uploaded) -> tuple:
        """The batch's arrays, usable on the current stream: it waits (on the GPU) for their upload."""
        with self.device.activate():
            compute = self.cupy.cuda.get_current_stream()
            compute.wait_event(batch.event)
            self.released.record(compute)  # every batch before this one has been handed over
        return batch.arrays
