import threading

import numpy as np
import pytest

import cnnkit
from cnnkit.data import ArrayDataset, DataLoader


def _epoch(loader):
    return [tuple(t.numpy() for t in batch) for batch in loader]


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "cnnkit-prefetch" and t.is_alive()]


class _ListDataset:
    """A dataset that is not an ArrayDataset: samples are read one at a time."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((2, 3), float(i), dtype=np.float32), i % 3


def test_batches_cover_the_data_once_with_a_smaller_last_batch():
    x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    loader = DataLoader((x, y), batch_size=4, shuffle=False)
    batches = _epoch(loader)
    assert len(loader) == 3 == len(batches)
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    assert all(isinstance(t, cnnkit.Tensor) for batch in loader for t in batch)
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == y.dtype


def test_drop_last_leaves_out_the_short_batch():
    loader = DataLoader(np.arange(10), batch_size=4, shuffle=False, drop_last=True)
    batches = _epoch(loader)
    assert len(loader) == 2 == len(batches)
    assert [len(b[0]) for b in batches] == [4, 4]
    assert len(DataLoader(np.arange(3), batch_size=4, drop_last=True)) == 0
    assert _epoch(DataLoader(np.arange(3), batch_size=4, drop_last=True)) == []


def test_shuffle_gives_a_new_permutation_every_epoch_reproducible_under_manual_seed():
    loader = DataLoader(np.arange(20), batch_size=6)
    cnnkit.manual_seed(5)
    first, second = (np.concatenate([b[0] for b in _epoch(loader)]) for _ in range(2))
    assert sorted(first) == list(range(20)) and sorted(second) == list(range(20))
    assert not np.array_equal(first, np.arange(20))
    assert not np.array_equal(first, second)
    cnnkit.manual_seed(5)
    again = [np.concatenate([b[0] for b in _epoch(loader)]) for _ in range(2)]
    np.testing.assert_array_equal(again[0], first)
    np.testing.assert_array_equal(again[1], second)


def test_own_seed_is_independent_of_the_global_generator():
    orders = []
    for global_seed in (1, 2):
        cnnkit.manual_seed(global_seed)
        loader = DataLoader(np.arange(15), batch_size=15, seed=3)
        orders.append([_epoch(loader)[0][0] for _ in range(2)])
    np.testing.assert_array_equal(orders[0][0], orders[1][0])
    np.testing.assert_array_equal(orders[0][1], orders[1][1])
    assert not np.array_equal(orders[0][0], orders[0][1])


def test_rows_stay_paired_after_shuffling():
    x = np.arange(30).reshape(15, 2)
    for xb, yb in DataLoader((x, x[:, 0] * 10), batch_size=4):
        np.testing.assert_array_equal(xb.numpy()[:, 0] * 10, yb.numpy())


def test_batches_are_placed_on_the_device(device):
    loader = DataLoader((np.zeros((5, 2), np.float32), np.arange(5)), batch_size=2, device=device)
    for xb, yb in loader:
        assert xb.device == device and yb.device == device


def test_default_device_is_read_at_each_epoch(device):
    loader = DataLoader(np.zeros((3, 2)), batch_size=2)
    with cnnkit.default_device(device):
        assert all(b[0].device == device for b in loader)


def test_tensor_input_on_device_is_gathered_there(device):
    x = cnnkit.Tensor(np.arange(8.0), device=device)
    loader = DataLoader(x, batch_size=3, shuffle=False, device=device)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in _epoch(loader)]), np.arange(8.0))


def test_transform_applies_to_inputs_only_on_the_batch_device(device):
    seen = []

    def double(batch):
        seen.append(cnnkit.backend.device_of(batch))
        return batch * 2

    loader = DataLoader((np.ones((4, 1)), np.ones(4)), batch_size=2, transform=double, device=device)
    for xb, yb in loader:
        np.testing.assert_array_equal(xb.numpy(), 2.0)
        np.testing.assert_array_equal(yb.numpy(), 1.0)
    assert seen == [cnnkit.Device(device)] * 2


def test_generic_dataset_samples_are_stacked():
    loader = DataLoader(_ListDataset(7), batch_size=3, shuffle=False)
    batches = _epoch(loader)
    assert [b[0].shape for b in batches] == [(3, 2, 3), (3, 2, 3), (1, 2, 3)]
    np.testing.assert_array_equal(batches[1][0][:, 0, 0], [3, 4, 5])
    np.testing.assert_array_equal(batches[1][1], [0, 1, 2])


def test_prefetch_gives_the_same_batches_as_on_demand(device):
    x = np.random.default_rng(0).standard_normal((23, 1, 4, 4)).astype(np.float32)
    y = np.arange(23)
    flip = cnnkit.data.RandomFlip()  # draws from the global generator: must stay in step
    results = []
    for prefetch in (0, 1, 3):
        cnnkit.manual_seed(7)
        loader = DataLoader((x, y), batch_size=5, transform=flip, prefetch=prefetch, device=device)
        results.append(_epoch(loader) + _epoch(loader))
    for other in results[1:]:
        assert len(other) == len(results[0])
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])


def test_prefetch_thread_stops_after_an_early_break():
    loader = DataLoader(_ListDataset(200), batch_size=2, prefetch=2)
    for _ in range(3):
        for i, _batch in enumerate(loader):
            if i == 1:
                break
    assert _prefetch_threads() == []
    assert len(_epoch(loader)) == 100


def test_prefetch_thread_stops_when_the_iterator_is_closed():
    iterator = iter(DataLoader(_ListDataset(100), batch_size=1, prefetch=1))
    next(iterator)
    assert len(_prefetch_threads()) == 1
    iterator.close()
    assert _prefetch_threads() == []


class _Broken(_ListDataset):
    def __getitem__(self, i):
        if i == 5:
            raise KeyError("sample 5 is unreadable")
        return super().__getitem__(i)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_errors_while_loading_reach_the_consumer(prefetch):
    loader = DataLoader(_Broken(10), batch_size=2, shuffle=False, prefetch=prefetch)
    with pytest.raises(KeyError, match="sample 5 is unreadable"):
        _epoch(loader)
    assert _prefetch_threads() == []


@pytest.mark.parametrize("kwargs,match", [
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
    ({"batch_size": True}, "batch_size"),
    ({"prefetch": -1}, "prefetch must be an integer >= 0, got -1"),
    ({"seed": -3}, "seed must be an integer >= 0"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataLoader(np.zeros(4), **kwargs)


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="transform must be callable"):
        DataLoader(np.zeros(4), transform="flip")
    with pytest.raises(TypeError, match="shuffle must be True or False"):
        DataLoader(np.zeros(4), shuffle="yes")
    with pytest.raises(TypeError, match="dataset_or_arrays must be a Dataset"):
        DataLoader(42)
    with pytest.raises(ValueError, match=r"lengths \[4, 3\]"):
        DataLoader((np.zeros(4), np.zeros(3)))


def test_accepts_an_array_dataset_directly():
    ds = ArrayDataset(np.arange(5), np.arange(5))
    assert len(DataLoader(ds, batch_size=2)) == 3


def test_prefetch_runs_ahead_but_no_further_than_the_queue_allows():
    class Counting(_ListDataset):
        reads = 0

        def __getitem__(self, i):
            Counting.reads += 1
            return super().__getitem__(i)

    iterator = iter(DataLoader(Counting(100), batch_size=2, shuffle=False, prefetch=2))
    next(iterator)
    for _ in range(200):  # wait up to 2 s for the thread to fill the queue and block
        previous = Counting.reads
        threading.Event().wait(0.01)
        if Counting.reads == previous and Counting.reads >= 6:
            break
    # one batch handed out, two queued, one more made and waiting to be queued
    assert 6 <= Counting.reads <= 8
    iterator.close()
