"""The sharded CPU variants compute exactly what the references compute."""
import numpy as np
import pytest

import cnnkit.cpu
from cnnkit import registry
from cnnkit.cpu import sharded
from cnnkit.ops.conv import conv_backward_data_reference, conv_forward_reference
from cnnkit.ops.pool import pool_backward_reference, pool_forward_reference
from cnnkit.window import make_geometry


@pytest.fixture(params=[1, 2, 3])
def threads(request, monkeypatch):
    """Shard over 1, 2 or 3 threads, however small the test's arrays."""
    monkeypatch.setattr(sharded, "MIN_VALUES_PER_SHARD", 1)
    previous = cnnkit.cpu.get_num_threads()
    cnnkit.cpu.set_num_threads(request.param)
    yield request.param
    cnnkit.cpu.set_num_threads(previous)


def test_only_work_worth_a_thread_is_split():
    previous = cnnkit.cpu.get_num_threads()
    cnnkit.cpu.set_num_threads(2)
    try:
        assert len(sharded.batch_slices(256, 32 * 28 * 28)) == 2     # 6.4 M values: two shards
        assert len(sharded.batch_slices(32, 32 * 28 * 28)) == 1      # 0.8 M values: not worth a thread
        assert len(sharded.batch_slices(12, 10**6)) == 1             # too few samples
    finally:
        cnnkit.cpu.set_num_threads(previous)


def test_blas_runs_single_threaded_inside_the_shards_and_is_restored_after(threads):
    from cnnkit.cpu import threads as thread_pool
    before = thread_pool.blas_threads()
    inside = thread_pool.run_all([thread_pool.blas_threads for _ in range(threads)])
    assert inside == [1] * threads if threads > 1 else inside == [before]
    assert thread_pool.blas_threads() == before


def test_batch_slices_cover_the_batch_once(threads):
    for batch in (1, 7, 8, 16, 17, 100):
        slices = sharded.batch_slices(batch)
        covered = np.concatenate([np.arange(batch)[s] for s in slices])
        np.testing.assert_array_equal(covered, np.arange(batch))
        assert len(slices) <= threads and all(s.stop - s.start >= min(batch, 8) for s in slices)


@pytest.mark.parametrize("groups,stride,padding", [(1, 1, "same"), (2, 2, 1), (4, 1, "valid")])
def test_sharded_convolution_input_gradient_matches_the_reference(threads, rng, groups, stride, padding):
    x = rng.standard_normal((33, 4, 7, 6)).astype(np.float32)
    W = rng.standard_normal((8, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    geometry = make_geometry(2, (3, 3), stride, padding, 1, x.shape[2:])
    y, _ = conv_forward_reference(x, W, b, geometry, groups)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(sharded.conv_backward_data_sharded(gy, W, x.shape, geometry, groups),
                                  conv_backward_data_reference(gy, W, x.shape, geometry, groups))


@pytest.mark.parametrize("mode", ["max", "avg", "l2"])
def test_sharded_pooling_matches_the_reference(threads, rng, mode):
    x = rng.standard_normal((29, 3, 8, 9)).astype(np.float32)
    geometry = make_geometry(2, (3, 3), (2, 2), "same", 1, x.shape[2:])
    y, saved = sharded.pool_forward_sharded(x, mode, geometry)
    y_ref, saved_ref = pool_forward_reference(x, mode, geometry)
    np.testing.assert_array_equal(y, y_ref)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(sharded.pool_backward_sharded(gy, saved, x.shape, mode, geometry),
                                  pool_backward_reference(gy, saved_ref, x.shape, mode, geometry))


def test_the_registry_picks_the_sharded_pooling_on_the_cpu():
    assert registry.lookup("pool_forward", on_gpu=False) is sharded.pool_forward_sharded
    assert registry.lookup("pool_backward", on_gpu=False) is sharded.pool_backward_sharded
    assert registry.lookup("relu", on_gpu=False).__name__ == "relu_reference"


def test_thread_count_must_be_positive():
    with pytest.raises(ValueError, match="positive int"):
        cnnkit.cpu.set_num_threads(0)
