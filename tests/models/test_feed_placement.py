"""Where fit's data lives on a GPU (fake device layer): moved there whole when it fits, else streamed."""
import io

import numpy as np

from cnnkit import backend, cuda
from cnnkit.callbacks import ProgressBar
from cnnkit.models.feed import STREAMED_PREFETCH, place_on_device
from tests.cuda.launch_recorder import FakeCudaArray


def _free_memory(monkeypatch, free):
    monkeypatch.setattr(cuda, "memory_info", lambda device=None: cuda.MemoryInfo(free, 2 * free, 0, 0))


def test_data_that_fits_is_moved_to_the_gpu_once(fake_gpu, monkeypatch):
    _free_memory(monkeypatch, 10_000)
    x, y = np.zeros((50, 4, 5), np.float32), np.zeros(50, np.int64)  # 4000 + 400 bytes
    fields, prefetch, placement = place_on_device((x, y), backend.Device("cuda:1"))
    assert all(isinstance(field, FakeCudaArray) and field.device.id == 1 for field in fields)
    assert prefetch == 0 and placement == "Data: 50 samples kept on cuda:1 (4.30 KB)"


def test_data_that_does_not_fit_is_streamed(fake_gpu, monkeypatch):
    _free_memory(monkeypatch, 7_000)
    x = np.zeros((50, 4, 5), np.float32)
    fields, prefetch, placement = place_on_device((x,), backend.Device("cuda:0"))
    assert fields[0] is x and prefetch == STREAMED_PREFETCH
    assert placement == ("Data: 50 samples (3.91 KB, more than 50% of the 6.84 KB free on cuda:0) "
                         "streamed from host memory through pinned buffers")


def test_the_cpu_keeps_the_data_as_it_is():
    x = np.zeros((3, 2))
    assert place_on_device((x,), backend.CPU) == ((x,), 0, None)


def test_progress_output_states_the_placement():
    stream = io.StringIO()
    bar = ProgressBar(verbose=2, stream=stream)
    bar.set_params({"epochs": 1, "steps": 1, "data_placement": "Data: 5 samples kept on cuda:0 (20 B)"})
    bar.on_train_begin()
    assert stream.getvalue() == "Data: 5 samples kept on cuda:0 (20 B)\n"
