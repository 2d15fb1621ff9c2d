import numpy as np

import cnnkit
from cnnkit.datasets import load_digits


def test_shapes_dtypes_and_range():
    (x_train, y_train), (x_test, y_test) = load_digits()
    assert x_train.shape == (1437, 1, 8, 8) and x_test.shape == (360, 1, 8, 8)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))


def test_unnormalised_pixels_are_0_to_16():
    (x_train, _), (x_test, _) = load_digits(normalize=False)
    assert x_train.dtype == np.float32 and x_train.max() == 16.0
    assert np.all(x_test == np.round(x_test))


def test_split_is_stratified_and_disjoint():
    (x_train, y_train), (x_test, y_test) = load_digits(test_size=0.25)
    everything = np.concatenate([y_train, y_test])
    share = np.bincount(everything) / len(everything)
    np.testing.assert_allclose(np.bincount(y_test) / len(y_test), share, atol=0.01)
    np.testing.assert_allclose(np.bincount(y_train) / len(y_train), share, atol=0.01)
    rows = {row.tobytes() for row in x_test}
    assert sum(row.tobytes() in rows for row in x_train) < 10  # only the dataset's own duplicate images


def test_reproducible_for_a_seed_and_different_across_seeds():
    (a, ya), _ = load_digits(seed=0)
    cnnkit.manual_seed(123)
    (b, yb), _ = load_digits(seed=0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    (c, _), _ = load_digits(seed=1)
    assert not np.array_equal(a, c)


def test_results_do_not_share_the_cached_table():
    (x_train, y_train), _ = load_digits()
    x_train[:] = -1
    y_train[:] = -1
    (again, labels), _ = load_digits()
    assert again.min() == 0.0 and labels.min() == 0
