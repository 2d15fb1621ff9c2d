import numpy as np
import pytest

import cnnkit
from cnnkit.data import KFold, StratifiedKFold, train_test_split
from tests.helpers import tensor


def test_train_test_split_partitions_rows_in_sklearn_order():
    x, y = np.arange(40).reshape(20, 2), np.arange(20) * 10
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, seed=0)
    assert len(x_test) == 5 and len(x_train) == 15
    np.testing.assert_array_equal(x_train[:, 0] * 5, y_train)
    np.testing.assert_array_equal(x_test[:, 0] * 5, y_test)
    assert sorted(np.concatenate([y_train, y_test])) == list(y)
    assert not np.array_equal(np.sort(y_test), np.arange(15, 20) * 10)  # it was shuffled


def test_train_test_split_rounds_the_test_part_up_and_takes_counts():
    assert len(train_test_split(np.arange(10), test_size=0.21)[1]) == 3
    assert len(train_test_split(np.arange(10), test_size=4)[1]) == 4


def test_train_test_split_without_shuffle_holds_out_the_end():
    train, test = train_test_split(np.arange(10), test_size=3, shuffle=False)
    np.testing.assert_array_equal(train, np.arange(7))
    np.testing.assert_array_equal(test, [7, 8, 9])


def test_train_test_split_is_reproducible_by_seed_and_by_manual_seed():
    a = train_test_split(np.arange(50), seed=3)[1]
    np.testing.assert_array_equal(a, train_test_split(np.arange(50), seed=3)[1])
    cnnkit.manual_seed(9)
    b = train_test_split(np.arange(50))[1]
    cnnkit.manual_seed(9)
    np.testing.assert_array_equal(b, train_test_split(np.arange(50))[1])


def test_stratified_split_keeps_class_proportions():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    y_train, y_test = train_test_split(y, test_size=0.2, stratify=y, seed=1)
    np.testing.assert_array_equal(np.bincount(y_test), [10, 6, 4])
    np.testing.assert_array_equal(np.bincount(y_train), [40, 24, 16])
    uneven = np.repeat([0, 1, 2], [7, 7, 7])
    test = train_test_split(uneven, test_size=5, stratify=uneven, seed=0)[1]
    assert len(test) == 5 and np.bincount(test, minlength=3).max() - np.bincount(test, minlength=3).min() <= 1


def test_split_keeps_devices_and_tensors(device):
    x = tensor(np.arange(12.0).reshape(6, 2), device)
    x_train, x_test = train_test_split(x, test_size=2, seed=0)
    assert isinstance(x_train, cnnkit.Tensor) and x_train.device == device and x_test.shape == (2, 2)


@pytest.mark.parametrize("kwargs,match", [
    ({"test_size": 0.0}, "test_size must be a fraction in"),
    ({"test_size": 1.5}, "test_size must be a fraction in"),
    ({"test_size": 10}, "leaves no training samples"),
    ({"stratify": np.zeros(10), "shuffle": False}, "stratify needs shuffle=True"),
    ({"stratify": np.zeros(9)}, r"one label per sample \(10\), got 9"),
])
def test_train_test_split_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_test_split(np.arange(10), **kwargs)


def test_train_test_split_rejects_unequal_lengths():
    with pytest.raises(ValueError, match=r"lengths \[3, 4\]"):
        train_test_split(np.zeros(3), np.zeros(4))


def _check_partition(folds, n):
    tests = [test for _, test in folds]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(n))
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0 and len(train) + len(test) == n
        assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)


def test_kfold_consecutive_blocks_with_larger_first_folds():
    folds = list(KFold(3).split(np.zeros(11)))
    _check_partition(folds, 11)
    assert [len(t) for _, t in folds] == [4, 4, 3]
    np.testing.assert_array_equal(folds[1][1], [4, 5, 6, 7])


def test_kfold_shuffle_is_seeded():
    folds = list(KFold(4, shuffle=True, seed=2).split(np.zeros(13)))
    _check_partition(folds, 13)
    again = list(KFold(4, shuffle=True, seed=2).split(np.zeros(13)))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    assert not np.array_equal(folds[0][1], np.arange(4))


def test_stratified_kfold_spreads_every_class_evenly():
    y = np.repeat([0, 1, 2], [10, 7, 5])
    for shuffle, seed in ((False, None), (True, 0)):
        folds = list(StratifiedKFold(3, shuffle=shuffle, seed=seed).split(np.zeros(22), y))
        _check_partition(folds, 22)
        counts = np.array([np.bincount(y[test], minlength=3) for _, test in folds])
        assert np.all(counts.max(axis=0) - counts.min(axis=0) <= 1)
        sizes = [len(test) for _, test in folds]
        assert max(sizes) - min(sizes) <= 1


def test_stratified_kfold_accepts_one_hot_labels_and_needs_y():
    y = np.repeat([0, 1], 6)
    folds = list(StratifiedKFold(2).split(np.zeros(12), np.eye(2)[y]))
    assert [np.bincount(y[t]).tolist() for _, t in folds] == [[3, 3], [3, 3]]
    with pytest.raises(ValueError, match="y .*is required"):
        list(StratifiedKFold(2).split(np.zeros(12)))
    with pytest.warns(UserWarning, match="smallest class has 1"):
        list(StratifiedKFold(2).split(np.zeros(5), [0, 0, 0, 0, 1]))


def test_kfold_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2, got 1"):
        KFold(1)
    with pytest.raises(ValueError, match="shuffle=True"):
        KFold(3, seed=0)
    with pytest.raises(ValueError, match="n_splits=5 is more than the 3 samples"):
        list(KFold(5).split(np.zeros(3)))
