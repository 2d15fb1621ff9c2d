"""Collectives on CuPy arrays through NCCL (``cupy.cuda.nccl``), one process per GPU.

The communicator is made once per job: rank 0 draws NCCL's unique id, MPI
broadcasts it, and every rank joins with its own GPU (the current CuPy device).
Operations are queued on CUDA streams and return at once, as NCCL's do; an
all-reduce that should overlap with computation runs on a side stream ordered
after the work already queued on the current stream.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import backend


def _nccl_module():
    """``cupy.cuda.nccl`` when this CuPy build has it, else None."""
    backend.cupy()  # raises, with the reason, when CuPy cannot be used at all
    try:
        from cupy.cuda import nccl
    except ImportError:
        return None
    return nccl if getattr(nccl, "available", True) else None


def _nccl_dtype(nccl, dtype: np.dtype) -> int:
    names = {"int8": "NCCL_INT8", "uint8": "NCCL_UINT8", "int32": "NCCL_INT32", "uint32": "NCCL_UINT32",
             "int64": "NCCL_INT64", "uint64": "NCCL_UINT64", "float16": "NCCL_FLOAT16",
             "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64"}
    name = names.get(np.dtype(dtype).name)
    if name is None:
        raise TypeError(f"cnnkit.distributed: NCCL cannot reduce arrays of dtype {np.dtype(dtype)}; "
                        f"supported: {', '.join(names)}")
    return getattr(nccl, name)


class NcclCommunicator:
    """One rank's NCCL communicator on the current GPU, with a side stream for overlapped all-reduces."""

    def __init__(self, nccl, communicator, device_index: int):
        self._nccl = nccl
        self._communicator = communicator
        self.device_index = device_index
        cupy = backend.cupy()
        with cupy.cuda.Device(device_index):
            self._side_stream = cupy.cuda.Stream(non_blocking=True)

    @classmethod
    def bootstrap(cls, mpi_comm, rank: int, size: int) -> "NcclCommunicator | None":
        """Every rank together: the communicator, or None on every rank when any rank lacks NCCL."""
        nccl = _nccl_module()
        if not all(mpi_comm.allgather(nccl is not None)):
            return None
        unique_id = mpi_comm.bcast(nccl.get_unique_id() if rank == 0 else None, root=0)
        device_index = backend.cupy().cuda.Device().id
        return cls(nccl, nccl.NcclCommunicator(size, unique_id, rank), device_index)

    def _check_device(self, array: Any) -> None:
        if array.device.id != self.device_index:
            raise ValueError(f"cnnkit.distributed: this rank's NCCL communicator is on cuda:{self.device_index}, "
                             f"got an array on cuda:{array.device.id}; keep each rank's model on its own GPU")

    def start_allreduce(self, array: Any) -> Callable[[], None]:
        """Queue the in-place sum of ``array``; the returned function makes the current stream wait for it."""
        self._check_device(array)
        cupy = backend.cupy()
        current = cupy.cuda.get_current_stream()
        ready = current.record()
        self._side_stream.wait_event(ready)
        self._communicator.allReduce(array.data.ptr, array.data.ptr, array.size,
                                     _nccl_dtype(self._nccl, array.dtype), self._nccl.NCCL_SUM,
                                     self._side_stream.ptr)
        done = self._side_stream.record()

        def finish() -> None:
            cupy.cuda.get_current_stream().wait_event(done)

        return finish

    def broadcast(self, array: Any, root: int) -> None:
        self._check_device(array)
        stream = backend.cupy().cuda.get_current_stream()
        self._communicator.bcast(array.data.ptr, array.size, _nccl_dtype(self._nccl, array.dtype), root,
                                 stream.ptr)

    def allgather(self, array: Any, lengths: list[int]) -> list:
        """Each rank's ``array`` (first dimensions ``lengths``), padded to the longest for NCCL and cut back."""
        self._check_device(array)
        cupy = backend.cupy()
        longest = max(lengths)
        padded = cupy.zeros((longest,) + array.shape[1:], dtype=array.dtype)
        padded[:len(array)] = array
        gathered = cupy.empty((len(lengths) * longest,) + array.shape[1:], dtype=array.dtype)
        stream = cupy.cuda.get_current_stream()
        self._communicator.allGather(padded.data.ptr, gathered.data.ptr, padded.size,
                                     _nccl_dtype(self._nccl, array.dtype), stream.ptr)
        return [gathered[r * longest:r * longest + n] for r, n in enumerate(lengths)]
