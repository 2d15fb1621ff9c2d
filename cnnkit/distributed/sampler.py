"""Which samples each rank visits in an epoch: disjoint shards of one shared order."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from .. import backend


class DistributedSampler:
    """The sample indices of one rank's shard, as PyTorch's ``DistributedSampler``.

    Every rank draws the same permutation and takes every ``num_replicas``-th
    entry starting at its rank, so the shards are disjoint and together cover the
    epoch. The permutation comes from ``seed`` and the epoch (call :meth:`set_epoch`
    at the start of each, as in PyTorch), or with ``seed=None`` from cnnkit's global
    generator, which must then be in the same state on every rank (``fit`` makes it
    so): one draw per epoch, like a shuffling :class:`~cnnkit.data.DataLoader`, so a
    resumed run that restores the generator repeats the orders.

    When the sample count does not divide evenly, ``pad=True`` (training; PyTorch's
    ``drop_last=False``) repeats samples from the start of the order until every
    rank has ``ceil(n / num_replicas)``: all ranks then take the same number of
    equally sized steps, which data-parallel gradient averaging needs, at the
    price of a few samples counted twice per epoch. ``pad=False`` (evaluation,
    prediction) visits every sample exactly once; shards then differ by at most one.
    ``drop_last=True`` instead leaves out the tail so every rank has ``n // num_replicas``.

    Args:
        num_samples: the size of the dataset.
        num_replicas: the number of ranks; default the world size.
        rank: this rank; default :func:`cnnkit.distributed.rank`.
        shuffle: a fresh order every epoch; otherwise ``0, 1, 2, ...``.
        seed: the shared seed of the shuffle (equal on every rank), or None for the global generator.
        drop_last: drop the tail instead of padding (training only).
        pad: repeat samples to even the shards (ignored with ``drop_last``).
    """

    def __init__(self, num_samples: int, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int | None = 0, drop_last: bool = False, pad: bool = True):
        from . import comm
        if num_replicas is None:
            num_replicas = comm.size()
        if rank is None:
            rank = comm.rank()
        checked = [("num_samples", num_samples, 0), ("num_replicas", num_replicas, 1)]
        for name, value, minimum in checked + ([] if seed is None else [("seed", seed, 0)]):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"DistributedSampler: {name} must be an integer >= {minimum}, got {value!r}")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas}), got {rank!r}")
        self.dataset_size = int(num_samples)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = bool(shuffle)
        self.seed = None if seed is None else int(seed)
        self.drop_last = bool(drop_last)
        self.pad = bool(pad) and not self.drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order to draw (``fit`` calls it at the start of every epoch)."""
        self.epoch = int(epoch)

    def _shared_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.dataset_size)
        if self.seed is None:
            return backend.rng().permutation(self.dataset_size)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.dataset_size)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch."""
        order = self._shared_order()
        replicas = self.num_replicas
        if self.drop_last:
            order = order[:self.dataset_size // replicas * replicas]
        elif self.pad and self.dataset_size:
            total = -(-self.dataset_size // replicas) * replicas
            order = np.resize(order, total)  # np.resize repeats the order from its start
        return order[self.rank::replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        n, replicas = self.dataset_size, self.num_replicas
        if self.drop_last:
            return n // replicas
        if self.pad:
            return -(-n // replicas)
        return len(range(self.rank, n, replicas))

    def __repr__(self) -> str:
        return (f"DistributedSampler({self.dataset_size} samples, rank {self.rank} of {self.num_replicas}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, pad={self.pad})")
