"""Mini-batches of tensors, shuffled every epoch, optionally prepared in a background thread."""
from __future__ import annotations

import queue
import threading
from contextlib import closing
from typing import Any, Callable, Iterator

import numpy as np

from .. import backend
from ..autograd import Tensor
from .dataset import ArrayDataset, Dataset, as_array
from .upload import StreamedUpload

_BATCH, _ERROR, _END = "batch", "error", "end"
_PUT_POLL_SECONDS = 0.05


def _as_dataset(data: Any) -> Dataset:
    if isinstance(data, (Tensor, np.ndarray)) or backend.is_cuda_array(data):
        return ArrayDataset(data)
    if isinstance(data, (tuple, list)):
        return ArrayDataset(*data)
    if isinstance(data, Dataset):
        return data
    raise TypeError(
        "DataLoader: dataset_or_arrays must be a Dataset (with __len__ and __getitem__), an array, "
        f"a Tensor, or a tuple of arrays such as (x, y); got {type(data).__name__}"
    )


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"DataLoader: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"DataLoader: {name} must be True or False, got {value!r}")
    return bool(value)


def _collate(samples: list, indices: Any) -> tuple:
    """Stack per-sample tuples ``(x_i, y_i, ...)`` field by field into batch arrays.

    ``indices`` are the samples' indices in the dataset, to name a sample that does not fit.
    """
    rows = [s if isinstance(s, tuple) else (s,) for s in samples]
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        raise ValueError(f"DataLoader: the dataset's samples must all have the same number of fields, "
                         f"got samples with {sorted(widths)} fields in one batch")
    columns = []
    for j in range(len(rows[0])):
        values = [as_array(row[j], f"field {j} of sample {int(i)}") for row, i in zip(rows, indices)]
        for value, index in zip(values, indices):
            if value.shape != values[0].shape:
                raise ValueError(f"DataLoader: field {j} of sample {int(index)} has shape {tuple(value.shape)}, but "
                                 f"sample {int(indices[0])} of the same batch has {tuple(values[0].shape)}; every "
                                 f"sample's field {j} must have one shape (resize or pad them, e.g. in a transform)")
        xp = backend.get_array_module(*values)
        columns.append(xp.stack([xp.asarray(v) for v in values]))
    return tuple(columns)


class DataLoader:
    """Iterate over a dataset in mini-batches of :class:`~cnnkit.Tensor` on a device.

    Each epoch (each ``for batch in loader``) visits every sample once, in a fresh
    random order when ``shuffle``. The order is a permutation drawn from cnnkit's
    global generator, so :func:`cnnkit.manual_seed` makes every epoch reproducible;
    with ``seed`` the loader draws from its own generator instead, independent of
    everything else. Batches of an :class:`ArrayDataset` are cut by fancy indexing
    the whole arrays; other datasets are read sample by sample and stacked.

    Args:
        dataset_or_arrays: a :class:`Dataset`, an array or Tensor, or a tuple of
            equally long arrays such as ``(x, y)`` (wrapped in an :class:`ArrayDataset`).
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: visit the samples in a new random order every epoch.
        drop_last: leave out the last batch when it is smaller than ``batch_size``.
        device: where the batches are placed; ``None`` means the default device at
            the start of each epoch (see :func:`cnnkit.set_default_device`).
        transform: a callable applied to the first array of each batch (the inputs),
            already on ``device``, e.g. augmentation from :mod:`cnnkit.data.transforms`.
        prefetch: gather and move up to this many batches ahead in a background
            thread while the current one is used; 0 prepares each batch on demand.
            To a GPU, host batches then travel through pinned buffers on a copy
            stream of their own, overlapping the computation (see
            :mod:`cnnkit.data.upload`). The results are the same either way: the
            transform, which draws from the global stream, always runs in the
            iterating thread.
        seed: seed of the loader's own shuffling generator; ``None`` uses the global one.
        sampler: where the order comes from instead of ``shuffle``: an object with
            ``__len__`` whose iteration yields the sample indices of one epoch, such as
            :class:`cnnkit.distributed.DistributedSampler` (as in PyTorch).

    Yields:
        A tuple of Tensors per batch, one per array of the dataset, with the
        arrays' dtypes kept: ``for x, y in DataLoader((x, y), batch_size=64): ...``.
    """

    def __init__(self, dataset_or_arrays: Any, batch_size: int = 32, shuffle: bool = True,
                 drop_last: bool = False, device: Any = None, transform: Callable | None = None,
                 prefetch: int = 0, seed: int | None = None, sampler: Any = None):
        self.dataset = _as_dataset(dataset_or_arrays)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.shuffle = _check_bool("shuffle", shuffle)
        self.drop_last = _check_bool("drop_last", drop_last)
        self.device = None if device is None else backend.as_device(device)
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable (array -> array) or None, got {transform!r}")
        self.transform = transform
        self.prefetch = _check_int("prefetch", prefetch, 0)
        if seed is not None:
            seed = _check_int("seed", seed, 0)
        self.seed = seed
        self._generator = None if seed is None else np.random.default_rng(seed)
        if sampler is not None and (shuffle or not hasattr(sampler, "__len__") or not hasattr(sampler, "__iter__")):
            raise ValueError(f"DataLoader: sampler must be an iterable of indices with a length, and it replaces "
                             f"shuffle (pass shuffle=False); got sampler={sampler!r}, shuffle={shuffle!r}")
        self.sampler = sampler

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple]:
        device = backend.as_device(self.device)
        order = self._epoch_order()
        if self._resident_on(device):  # one upload of the epoch's order, none per batch
            order = backend.to_device(order, device)
        starts = range(0, len(self) * self.batch_size, self.batch_size)
        if not self.prefetch:
            batches = (self._load(order[start:start + self.batch_size], device) for start in starts)
            yield from (self._finish(arrays) for arrays in batches)
            return
        # Host data bound for a GPU goes through pinned buffers on a copy stream, overlapping compute.
        upload = StreamedUpload(device, self.prefetch + 1) if device.is_cuda else None
        batches = _prefetched((self._load(order[start:start + self.batch_size], device, upload) for start in starts),
                              self.prefetch, device)
        with closing(batches):
            for arrays in batches:
                yield self._finish(upload.ready(arrays) if upload else arrays)

    def _epoch_order(self) -> np.ndarray:
        if self.sampler is not None:
            return np.fromiter(self.sampler, dtype=np.int64, count=len(self.sampler))
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        generator = backend.rng() if self._generator is None else self._generator
        return generator.permutation(n)

    def _resident_on(self, device: backend.Device) -> bool:
        """Whether the batches are cut from arrays that already live on the GPU ``device``."""
        return (device.is_cuda and isinstance(self.dataset, ArrayDataset)
                and all(backend.device_of(array) == device for array in self.dataset.arrays))

    def _load(self, indices: np.ndarray, device: backend.Device, upload: StreamedUpload | None = None):
        if isinstance(self.dataset, ArrayDataset):
            arrays = self.dataset.take(indices)
        else:
            arrays = _collate([self.dataset[int(i)] for i in indices], indices)
        if upload is not None:
            return upload.upload(arrays)
        return tuple(backend.to_device(a, device) for a in arrays)

    def _finish(self, arrays: tuple) -> tuple:
        if self.transform is not None:
            arrays = (self.transform(arrays[0]),) + arrays[1:]
        return tuple(Tensor(a) for a in arrays)

    def __repr__(self) -> str:
        return (f"DataLoader({len(self.dataset)} samples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, prefetch={self.prefetch})")


def _prefetched(batches: Iterator, depth: int, device: backend.Device) -> Iterator:
    """Run ``batches`` in a daemon thread, at most ``depth`` items ahead of the consumer.

    An exception in the thread is re-raised here; closing this generator (an early
    ``break``) tells the thread to stop and waits for it.
    """
    pending: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, item: Any) -> bool:
        # A timed put, so a consumer that has gone away cannot leave the thread blocked.
        while not stop.is_set():
            try:
                pending.put((kind, item), timeout=_PUT_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            with device.activate():
                for batch in batches:
                    if not put(_BATCH, batch):
                        return
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(_ERROR, error)
            return
        put(_END, None)

    thread = threading.Thread(target=produce, name="cnnkit-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = pending.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
