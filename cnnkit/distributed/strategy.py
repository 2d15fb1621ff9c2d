"""How ``fit``, ``evaluate`` and ``predict`` run: in this process alone, or data-parallel over MPI ranks.

The training loop calls a strategy at a few points (placing the model, cutting
the data, before the first step, after backward, when it reports); the local
strategy does nothing at any of them, :class:`DataParallel` makes every rank
train one model together:

* the model and optimizer state are broadcast from rank 0 before the first step
  (after a ``BackupAndRestore`` on rank 0 has loaded its backup), after checking
  that every rank built the same parameters;
* each rank trains on its own shard of every epoch (:class:`DistributedSampler`);
  ``batch_size`` is per rank, so a step sees ``batch_size * size()`` samples;
* gradients are averaged over ranks in buckets (:class:`GradientReducer`);
* losses and metrics are combined over ranks, so every rank logs the global figures,
  and callbacks that print or write files run on rank 0 only.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Tensor
from ..layers.norm import BatchNormalization
from . import comm
from .reducer import GradientReducer
from .sampler import DistributedSampler


class LocalStrategy:
    """Training in this process only: every hook leaves things as they are."""

    is_main_process = True

    def place(self, model, device: Any) -> None:
        if device is not None:
            model.to(device)

    def shard(self, batches, training: bool):
        return batches

    def callbacks(self, callbacks: list) -> list:
        return callbacks

    def begin(self, model) -> None:
        pass

    def reduce_gradients(self, params: list) -> None:
        pass

    def global_losses(self, loss: Tensor, parts: dict) -> tuple[Tensor, dict]:
        return loss, parts

    def agree(self, flag: bool) -> bool:
        return flag

    def combined(self, groups: list) -> list:
        return groups

    def gather_predictions(self, outputs: Any, batches) -> Any:
        return outputs

    def end(self) -> None:
        pass


LOCAL = LocalStrategy()


class DataParallel(LocalStrategy):
    """Data-parallel training over the ranks of an MPI job, as PyTorch's DistributedDataParallel.

    ``model.fit(..., distributed=True)`` uses one with the defaults; pass an instance
    to choose. Start the script with ``mpirun -n N python train.py``; on GPUs, one
    rank per GPU, each using ``cuda:(local_rank mod GPUs)``.

    Batch normalisation uses each rank's own batch statistics in training, as PyTorch
    does by default, and rank 0's moving statistics are copied to every rank after each
    step (PyTorch's ``broadcast_buffers``), so all ranks hold the same model.

    Args:
        bucket_cap_mb: gradients are all-reduced in buckets of about this many
            megabytes (the first bucket at most 1 MB, so reduction starts early).
        sync_batch_norm: normalise with the statistics of the whole step, over every
            rank (PyTorch's ``SyncBatchNorm``): two small all-reduces per layer forward
            and one in backward; worth it when the per-rank batch is small.
    """

    def __init__(self, bucket_cap_mb: float = 25.0, sync_batch_norm: bool = False):
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
            raise ValueError(f"DataParallel: bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
        self.bucket_cap_mb = float(bucket_cap_mb)
        self.sync_batch_norm = bool(sync_batch_norm)
        comm.init()
        self.rank = comm.rank()
        self.size = comm.size()
        self._reducer: GradientReducer | None = None
        self._batch_norms: list = []

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    def place(self, model, device: Any) -> None:
        """Move the model to ``device``; a CUDA device means this rank's own GPU."""
        if device is not None:
            model.to(device)
        if model.device.is_cuda:
            model.to(comm.local_device())

    def shard(self, batches, training: bool):
        """``batches`` over this rank's shard: padded to equal shards for training, exact for evaluation."""
        loader = copy.copy(batches.loader)
        loader.sampler = DistributedSampler(len(loader.dataset), self.size, self.rank, shuffle=loader.shuffle,
                                            seed=None, pad=training)
        loader.shuffle = False
        sharded = copy.copy(batches)
        sharded.loader = loader
        return sharded

    def callbacks(self, callbacks: list) -> list:
        """The callbacks this rank runs: those marked ``main_process_only`` (printing, files) only on rank 0."""
        return [c for c in callbacks if self.is_main_process or not getattr(c, "main_process_only", False)]

    def begin(self, model) -> None:
        """Check that every rank has the same model, then copy rank 0's training state everywhere."""
        check_same_parameters(model)
        for weight in model.weights:
            comm.broadcast(weight.data, root=0)
        optimizer = model.optimizer
        optimizer.build(model.trainable_weights)
        state = comm.broadcast_object(optimizer.state_dict() if self.is_main_process else None)
        if not self.is_main_process:
            optimizer.load_state_dict(state)
        # Same random stream everywhere: dropout and shuffles stay in step, and rank 0's backup holds all ranks' state.
        backend.set_rng_state(comm.broadcast_object(backend.get_rng_state()))
        model.initial_epoch, model.epoch = comm.broadcast_object((model.initial_epoch, model.epoch))
        self._reducer = GradientReducer(model.trainable_weights, self.bucket_cap_mb)
        self._batch_norms = [layer for layer in model.walk() if isinstance(layer, BatchNormalization)]
        for layer in self._batch_norms:
            layer.synchronized = self.sync_batch_norm

    def reduce_gradients(self, params: list) -> None:
        if self._reducer is None:
            raise RuntimeError("DataParallel: begin(model) must run before the first step")
        if self._reducer.params != list(params):  # a layer was frozen or unfrozen between epochs
            self._reducer.remove()
            self._reducer = GradientReducer(list(params), self.bucket_cap_mb)
        self._reducer.finish()
        if not self.sync_batch_norm:  # synchronised statistics are the same everywhere already
            self._broadcast_moving_statistics()

    def _broadcast_moving_statistics(self) -> None:
        statistics = [p for layer in self._batch_norms if layer.built
                      for p in (layer.moving_mean, layer.moving_variance)]
        if not statistics:
            return
        xp = statistics[0].xp
        packed = comm.broadcast(xp.concatenate([p.data.ravel() for p in statistics]), root=0)
        offset = 0
        for p in statistics:
            p.data[...] = packed[offset:offset + p.size].reshape(p.shape)
            offset += p.size

    def global_losses(self, loss: Tensor, parts: dict) -> tuple[Tensor, dict]:
        """The mean over ranks of this step's losses (equal shards make it the loss of the whole step)."""
        values = [loss, *parts.values()]
        xp = loss.xp
        stacked = xp.stack([xp.asarray(v.data, dtype=xp.float64).reshape(()) for v in values])
        comm.allreduce(stacked, op="mean")
        reduced = [Tensor(stacked[i].astype(v.dtype)) for i, v in enumerate(values)]
        return reduced[0], dict(zip(parts, reduced[1:]))

    def agree(self, flag: bool) -> bool:
        """True on every rank when it is true on any (so all ranks report at the same steps)."""
        return comm.any_rank(flag)

    def combined(self, groups: list) -> list:
        """Copies of ``groups`` (lists of metrics) holding every rank's state; each rank keeps its own going."""
        try:
            gathered = comm.allgather_object(groups)
        except Exception as error:  # pickling: a lambda metric function cannot travel
            raise TypeError(f"DataParallel: the metrics cannot be sent between ranks ({error}); use metric "
                            f"objects and module-level functions") from None
        merged = copy.deepcopy(groups)
        for g, group in enumerate(merged):
            for i, metric in enumerate(group):
                metric.merge_state([theirs[g][i] for r, theirs in enumerate(gathered)
                                    if r != self.rank and i < len(theirs[g])])
        return merged

    def gather_predictions(self, outputs: Any, batches) -> Any:
        """Every rank's predictions, put back in the order of the samples."""
        sampler = batches.loader.sampler
        owners = [DistributedSampler(sampler.dataset_size, self.size, r, shuffle=False, pad=False).indices()
                  for r in range(self.size)]
        order = np.concatenate(owners)

        def regather(array: np.ndarray) -> np.ndarray:
            parts = comm.allgather(np.ascontiguousarray(array))
            result = np.empty((len(order),) + array.shape[1:], dtype=array.dtype)
            result[order] = np.concatenate(parts)
            return result

        return [regather(a) for a in outputs] if isinstance(outputs, list) else regather(outputs)

    def end(self) -> None:
        for layer in self._batch_norms:
            layer.synchronized = False
        self._batch_norms = []
        if self._reducer is not None:
            self._reducer.remove()
            self._reducer = None


def check_same_parameters(model) -> None:
    """Raise on every rank, naming the ranks, when the models differ in parameter names, shapes or dtypes."""
    from ..models.saving import named_weights
    mine = [(name, tuple(p.shape), str(p.dtype)) for name, p in named_weights(model).items()]
    everyone = comm.allgather_object(mine)
    for other_rank, theirs in enumerate(everyone):
        if theirs != everyone[0]:
            difference = _first_difference(everyone[0], theirs)
            raise ValueError(f"DataParallel: the model on rank {other_rank} differs from rank 0's: {difference}; "
                             f"every rank must build the same model before fit")


def _first_difference(reference: list, other: list) -> str:
    if len(reference) != len(other):
        return f"{len(other)} parameters against {len(reference)}"
    for (name_a, shape_a, dtype_a), (name_b, shape_b, dtype_b) in zip(reference, other):
        if (name_a, shape_a, dtype_a) != (name_b, shape_b, dtype_b):
            return f"{name_b!r} {shape_b} {dtype_b} where rank 0 has {name_a!r} {shape_a} {dtype_a}"
    return "unknown"


def resolve(distributed: Any) -> LocalStrategy:
    """The strategy for ``fit(distributed=...)``: False → local, True → DataParallel(), or a strategy object."""
    if distributed is False or distributed is None:
        return LOCAL
    if distributed is True:
        return DataParallel()
    if isinstance(distributed, LocalStrategy):
        return distributed
    raise TypeError(f"distributed must be True, False or a cnnkit.distributed.DataParallel, got {distributed!r}")
