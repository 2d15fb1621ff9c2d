"""The parts of cnnkit.distributed that need no MPI job: sampler, hooks, buckets, metric merging, errors."""
import numpy as np
import pytest

import cnnkit
from cnnkit import distributed, metrics
from cnnkit.autograd import Parameter
from cnnkit.data import DataLoader
from cnnkit.distributed.reducer import _buckets


@pytest.mark.parametrize("samples", [0, 1, 7, 8, 37])
@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_unpadded_shards_cover_every_sample_exactly_once(samples, replicas):
    shards = [distributed.DistributedSampler(samples, replicas, r, shuffle=True, seed=5, pad=False).indices()
              for r in range(replicas)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(samples))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


@pytest.mark.parametrize("samples,replicas", [(7, 2), (37, 3), (8, 4), (2, 3)])
def test_padded_shards_are_equal_and_repeat_only_the_start_of_the_order(samples, replicas):
    samplers = [distributed.DistributedSampler(samples, replicas, r, shuffle=True, seed=5) for r in range(replicas)]
    shards = [s.indices() for s in samplers]
    per_rank = -(-samples // replicas)
    assert all(len(shard) == len(sampler) == per_rank for shard, sampler in zip(shards, samplers))
    together = np.concatenate(shards)
    assert set(together.tolist()) == set(range(samples))
    order = np.random.default_rng([5, 0]).permutation(samples)
    repeats = per_rank * replicas - samples
    assert sorted(together.tolist()) == sorted(order.tolist() + np.resize(order, repeats).tolist())


def test_drop_last_shards_leave_the_tail_out():
    shards = [distributed.DistributedSampler(7, 2, r, shuffle=False, drop_last=True).indices() for r in range(2)]
    assert [s.tolist() for s in shards] == [[0, 2, 4], [1, 3, 5]]


def test_the_order_changes_with_the_epoch_and_repeats_with_the_seed():
    sampler = distributed.DistributedSampler(20, 2, 0, seed=1)
    first = sampler.indices()
    sampler.set_epoch(1)
    assert not np.array_equal(first, sampler.indices())
    sampler.set_epoch(0)
    np.testing.assert_array_equal(first, sampler.indices())


def test_without_a_seed_the_order_follows_the_global_generator():
    cnnkit.manual_seed(3)
    expected = np.random.default_rng(3).permutation(10)
    shard = distributed.DistributedSampler(10, 2, 1, seed=None).indices()
    np.testing.assert_array_equal(shard, expected[1::2])


def test_sampler_arguments_are_checked():
    with pytest.raises(ValueError, match="rank must be in"):
        distributed.DistributedSampler(10, 2, 2)
    with pytest.raises(ValueError, match="num_replicas"):
        distributed.DistributedSampler(10, 0, 0)


def test_a_loader_takes_its_order_from_a_sampler():
    sampler = distributed.DistributedSampler(9, 2, 1, shuffle=False, pad=False)
    loader = DataLoader(np.arange(9), batch_size=3, shuffle=False, sampler=sampler)
    assert len(loader) == 2
    assert [b[0].numpy().tolist() for b in loader] == [[1, 3, 5], [7]]
    with pytest.raises(ValueError, match="replaces shuffle"):
        DataLoader(np.arange(9), shuffle=True, sampler=sampler)


def test_functions_before_init_say_what_to_do():
    if distributed.is_initialized():
        pytest.skip("this process already joined an MPI world")
    for call in (distributed.rank, distributed.size, distributed.barrier, lambda: distributed.allreduce(np.ones(2))):
        with pytest.raises(RuntimeError, match=r"call cnnkit.distributed.init\(\) first"):
            call()


def test_post_accumulate_hooks_run_once_when_the_gradient_is_complete():
    w = Parameter(np.array([1.0, 2.0], dtype=np.float32))
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.numpy().copy()))
    ((w * w).sum() + (w * 3.0).sum()).backward()  # two uses: the hook waits for both
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [5.0, 7.0])
    handle.remove()
    (w * w).sum().backward()
    assert len(seen) == 1


def test_hooks_of_leaves_a_branch_never_reached_still_run():
    used, unused = Parameter(np.ones(2, np.float32)), Parameter(np.ones(2, np.float32))
    fired = []
    for p in (used, unused):
        p.register_post_accumulate_grad_hook(lambda p: fired.append(p))
    (used * 2.0).sum().backward()
    assert fired == [used]
    fired.clear()
    cut = (unused * 1.0).detach()
    ((used * cut).sum() + (unused * 0.0).sum() * 0.0).backward()
    assert set(map(id, fired)) == {id(used), id(unused)}


def test_buckets_follow_backward_order_and_split_by_size_and_dtype():
    params = [Parameter(np.zeros(n, dtype)) for n, dtype in
              [(100, np.float32), (300_000, np.float32), (10, np.float64), (200_000, np.float32), (5, np.float32)]]
    buckets = _buckets(params, cap_bytes=1 << 20)
    assert [[params.index(p) for p in bucket] for bucket in buckets] == [[4, 3], [2], [1], [0]]


def test_metrics_merge_the_states_of_other_ranks():
    y_true, y_pred = np.array([0, 1, 2, 1]), np.eye(3)[[0, 2, 2, 1]]
    whole = [metrics.get(name) for name in ("accuracy", "f1", "auc", "confusion_matrix")]
    halves = [[metrics.get(name) for name in ("accuracy", "f1", "auc", "confusion_matrix")] for _ in range(2)]
    for metric in whole:
        metric.update_state(y_true, y_pred)
    for part, rows in zip(halves, (slice(0, 2), slice(2, 4))):
        for metric in part:
            metric.update_state(y_true[rows], y_pred[rows])
    for index, metric in enumerate(whole):
        halves[0][index].merge_state([halves[1][index]])
        np.testing.assert_allclose(halves[0][index].result(), metric.result())
    mean, other = metrics.Mean(), metrics.Mean()
    mean.update_state(np.array([1.0, 2.0]))
    other.update_state(np.array([6.0]))
    mean.merge_state([other])
    assert mean.result() == 3.0
