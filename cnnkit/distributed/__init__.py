"""Data-parallel training over processes, hosts and GPUs: MPI between processes, NCCL between GPUs.

    mpirun -n 4 python train.py

    import cnnkit
    from cnnkit import distributed

    distributed.init()
    model.fit(x, y, batch_size=64, epochs=10, distributed=True)   # 64 per rank
    if distributed.is_main_process():
        print("done")

Needs mpi4py and an MPI runtime (``pip install 'cnnkit[dist]'``); importing this
package does not, only :func:`init` does.
"""
from .comm import (allgather, allgather_object, allreduce, barrier, broadcast, broadcast_object, init,
                   is_available, is_initialized, is_main_process, local_device, local_rank, rank, size)
from .sampler import DistributedSampler
from .strategy import DataParallel

__all__ = ["init", "is_available", "is_initialized", "rank", "size", "local_rank", "local_device",
           "is_main_process", "barrier", "broadcast", "allreduce", "allgather", "broadcast_object",
           "allgather_object", "DistributedSampler", "DataParallel"]
