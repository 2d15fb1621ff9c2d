"""Streamed uploads to a GPU, through the fake device layer: pinned buffers reused, a copy stream of
the batch's device, and events ordering it with the compute stream."""
import numpy as np

from cnnkit.data import DataLoader
from tests.cuda.launch_recorder import FakeCudaArray


def test_prefetch_to_a_gpu_streams_through_pinned_buffers(fake_gpu):
    cuda = fake_gpu.cuda
    x = np.arange(14 * 3, dtype=np.float32).reshape(14, 3)
    y = np.arange(14)
    loader = DataLoader((x, y), batch_size=2, shuffle=False, device="cuda:1", prefetch=2)
    batches = [(bx.data, by.data) for bx, by in loader]
    assert len(batches) == 7
    for bx, by in batches:
        assert isinstance(bx, FakeCudaArray) and bx.device.id == 1 and by.device.id == 1
    np.testing.assert_array_equal(np.concatenate([np.asarray(bx) for bx, _ in batches]), x)
    np.testing.assert_array_equal(np.concatenate([np.asarray(by) for _, by in batches]), y)

    copy_streams = [stream for stream in cuda.streams if stream is not cuda.null_stream]
    assert len(copy_streams) == 1 and copy_streams[0].device == 1
    assert {bx.uploaded_on for bx, _ in batches} == {copy_streams[0]}
    uploaded = [event for event in cuda.events if event.recorded_on is copy_streams[0]]
    assert len(uploaded) == 7 and all(event.device == 1 for event in uploaded)
    assert cuda.null_stream.waited_for == uploaded  # each batch waits for its own upload, on the GPU
    assert len(copy_streams[0].waited_for) == 7  # each upload after the compute stream released the last batch
    assert len(cuda.pinned) == 2 * 3  # two fields times prefetch + 1 slots, reused for all seven batches


def test_prefetch_to_the_cpu_and_without_prefetch_give_the_same_batches(fake_gpu):
    x = np.arange(10, dtype=np.float64)
    streamed = [b.numpy() for (b,) in DataLoader(x, batch_size=3, shuffle=False, device="cuda:0", prefetch=1)]
    direct = [b.numpy() for (b,) in DataLoader(x, batch_size=3, shuffle=False, device="cuda:0")]
    on_cpu = [b.numpy() for (b,) in DataLoader(x, batch_size=3, shuffle=False, prefetch=2)]
    for a, b, c in zip(streamed, direct, on_cpu):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert fake_gpu.cuda.pinned == [24, 24]  # two slots for prefetch=1; the direct path stages nothing


def test_batches_of_data_on_the_gpu_are_cut_there_with_the_order_uploaded_once(fake_gpu, monkeypatch):
    from cnnkit import backend
    from tests.fake_gpu import on_device

    x = on_device(np.arange(12.0).reshape(6, 2), 1)
    uploads = []
    to_device = backend.to_device
    monkeypatch.setattr(backend, "to_device", lambda array, device: uploads.append(type(array)) or to_device(array, device))
    batches = [b.data for (b,) in DataLoader(x, batch_size=2, shuffle=True, device="cuda:1")]
    assert uploads[0] is np.ndarray  # the epoch's order, once
    assert all(kind is FakeCudaArray for kind in uploads[1:])  # the batches never leave the device
    assert all(batch.device.id == 1 for batch in batches)
    np.testing.assert_array_equal(np.sort(np.concatenate([np.asarray(b) for b in batches]), axis=0), np.asarray(x))
