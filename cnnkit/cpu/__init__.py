"""The CPU backend: references run over batch shards on every core.

NumPy runs element-wise work and copies on one core, while the machines cnnkit
trains on have several. Ops whose samples are independent and whose time goes to
such work (pooling, the convolution input gradient) are registered here as "the
reference, run on slices of the batch in a thread pool": NumPy releases the GIL
inside its loops, so the slices run in parallel. Stride-1 convolutions are lowered
to one large matrix product per pass instead (:mod:`cnnkit.cpu.conv`). The
references stay the specification every variant is tested against.

``CNNKIT_NUM_THREADS`` (default: the number of cores) or :func:`set_num_threads`
sets the number of shards; 1 turns sharding off.
"""
from __future__ import annotations


from . import conv, sharded  # noqa: F401  (importing them registers the CPU variants)
from .threads import blas_threads, get_num_threads, set_num_threads

__all__ = ["blas_threads", "get_num_threads", "set_num_threads"]
