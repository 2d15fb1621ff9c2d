"""What a data loader reads from: anything with a length and indexable samples."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from .. import backend
from ..autograd import Tensor


@runtime_checkable
class Dataset(Protocol):
    """A sized collection of samples: ``len(ds)`` and ``ds[i]`` for ``0 <= i < len(ds)``.

    ``ds[i]`` returns one sample: a tuple of arrays (or numbers), e.g. ``(image, label)``,
    or a single array. :class:`~cnnkit.data.DataLoader` stacks the samples of a batch
    field by field.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


def as_array(data: Any, name: str) -> Any:
    """A NumPy or CuPy array from an array, a :class:`~cnnkit.Tensor` or array-like data."""
    if isinstance(data, Tensor):
        return data.data
    if isinstance(data, np.ndarray) or backend.is_cuda_array(data):
        return data
    try:
        array = np.asarray(data)
    except ValueError:  # NumPy refuses ragged nested lists
        raise ValueError(_ragged(data, name)) from None
    if array.dtype == object:
        raise TypeError(f"{name} must be an array, a Tensor or nested lists of numbers, got {type(data).__name__}")
    return array


def _ragged(data: Any, name: str) -> str:
    """Which entry of ragged nested lists breaks the pattern of the first one."""
    shapes = []
    for index, sample in enumerate(data):
        try:
            shape = np.shape(sample)
        except ValueError:
            return f"{name}[{index}] is itself ragged: its entries have different lengths"
        if shapes and shape != shapes[0]:
            return (f"{name} must hold samples of one shape, but {name}[0] has shape {shapes[0]} and "
                    f"{name}[{index}] has shape {shape}; pad or crop the samples to one shape")
        shapes.append(shape)
    return f"{name} is a ragged nested list; every sample must have one shape"


class ArrayDataset:
    """Samples that are rows of equally long arrays: ``ArrayDataset(x, y)[i] == (x[i], y[i])``.

    The arrays stay where they are (host or GPU); a :class:`~cnnkit.data.DataLoader`
    cuts whole batches from them by fancy indexing, without a Python loop over samples.

    Args:
        *arrays: NumPy arrays, CuPy arrays or Tensors, all with the same first dimension.

    Raises:
        ValueError: no arrays were given, one is 0-dimensional, or their lengths differ.
    """

    def __init__(self, *arrays: Any):
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array, got none")
        self.arrays = tuple(as_array(a, f"ArrayDataset argument {i}") for i, a in enumerate(arrays))
        for i, array in enumerate(self.arrays):
            if array.ndim == 0:
                raise ValueError(f"ArrayDataset argument {i} must have a first (sample) dimension, got a scalar")
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) > 1:
            raise ValueError(f"ArrayDataset arrays must have the same length (first dimension), got lengths {lengths}")
        self._length = lengths[0]

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> tuple:
        return tuple(a[index] for a in self.arrays)

    def take(self, indices: np.ndarray) -> tuple:
        """The rows ``indices`` of every array, gathered on each array's own device."""
        batch = []
        for array in self.arrays:
            xp = backend.get_array_module(array)
            batch.append(array[xp.asarray(indices)])
        return tuple(batch)

    def __repr__(self) -> str:
        shapes = ", ".join(str(a.shape) for a in self.arrays)
        return f"ArrayDataset({shapes})"
