import numpy as np
import pytest

import cnnkit
from cnnkit.data import ArrayDataset, Dataset
from tests.helpers import tensor


def test_array_dataset_indexes_every_array(device):
    x = np.arange(12.0).reshape(4, 3)
    y = np.array([3, 1, 2, 0])
    ds = ArrayDataset(tensor(x, device), y)
    assert len(ds) == 4
    first, label = ds[2]
    np.testing.assert_array_equal(cnnkit.to_numpy(first), x[2])
    assert label == 2
    assert isinstance(ds, Dataset)


def test_array_dataset_take_gathers_rows_on_each_device(device):
    x = tensor(np.arange(10.0), device)
    ds = ArrayDataset(x, np.arange(10) * 2)
    xs, ys = ds.take(np.array([7, 1, 7]))
    assert type(xs) is type(x.data)
    np.testing.assert_array_equal(ys, [14, 2, 14])


def test_array_dataset_rejects_unequal_lengths_naming_them():
    with pytest.raises(ValueError, match=r"same length.*\[5, 4\]"):
        ArrayDataset(np.zeros((5, 2)), np.zeros(4))


def test_array_dataset_rejects_no_arrays_and_scalars():
    with pytest.raises(ValueError, match="at least one array"):
        ArrayDataset()
    with pytest.raises(ValueError, match="scalar"):
        ArrayDataset(np.float32(3.0))
    with pytest.raises(TypeError, match="ArrayDataset argument 0"):
        ArrayDataset([object(), object()])
