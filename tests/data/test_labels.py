import numpy as np
import pytest

import cnnkit
from cnnkit.data import one_hot, to_categorical, to_labels
from tests.helpers import tensor


def test_to_categorical_one_hot_rows(device):
    labels = tensor(np.array([2, 0, 1, 2]), device).data
    out = to_categorical(labels, 4)
    assert type(out) is type(labels) and out.dtype == np.float32
    np.testing.assert_array_equal(cnnkit.to_numpy(out), [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])


def test_to_categorical_infers_classes_keeps_leading_shape_and_dtype():
    out = to_categorical(np.array([[0, 3], [1, 1]]), dtype="float64")
    assert out.shape == (2, 2, 4) and out.dtype == np.float64
    np.testing.assert_array_equal(out[0, 1], [0, 0, 0, 1])
    assert one_hot is to_categorical


def test_to_categorical_accepts_whole_floats_and_tensors():
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 0.0]), 2), [[0, 1], [1, 0]])
    out = to_categorical(cnnkit.Tensor(np.array([1])), 3)
    assert isinstance(out, cnnkit.Tensor)
    np.testing.assert_array_equal(out.numpy(), [[0, 1, 0]])


@pytest.mark.parametrize("labels,num_classes,match", [
    ([0, -1, 2], 3, r"labels must be in \[0, 3\), got label -1"),
    ([0, 3], 3, r"labels must be in \[0, 3\), got label 3"),
    ([0.5, 1.0], 3, "non-integer"),
    ([1, 2], 0, "num_classes must be an integer >= 1"),
])
def test_to_categorical_rejects_bad_labels(labels, num_classes, match):
    with pytest.raises(ValueError, match=match):
        to_categorical(np.array(labels), num_classes)


def test_to_labels_is_argmax_over_the_last_axis(device):
    probs = tensor(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]), device)
    out = to_labels(probs)
    assert isinstance(out, cnnkit.Tensor) and out.dtype == np.int64
    np.testing.assert_array_equal(out.numpy(), [1, 0])
    labels = np.array([4, 0, 2])
    np.testing.assert_array_equal(to_labels(to_categorical(labels, 5)), labels)
    with pytest.raises(ValueError, match="num_classes"):
        to_labels(np.float32(1.0))
