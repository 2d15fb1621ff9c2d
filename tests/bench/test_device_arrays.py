"""The benchmark suites on GPU arrays, through the fake device layer: checks run the reference on the
arrays' own device (never a CPU variant), on the device the suite was given, with its events made there."""
import numpy as np

from cnnkit.bench.device import BenchDevice, RunSettings
from cnnkit.bench.suites import conv, pool
from cnnkit.bench.suites.conv import ConvShape
from cnnkit.window import make_geometry
from tests.cuda.launch_recorder import FakeCudaArray

SETTINGS = RunSettings(warmup=0, repeat=1, max_seconds=1.0)


def test_conv_float64_check_runs_the_reference_on_the_device(fake_gpu):
    device = BenchDevice("cuda:1", SETTINGS)
    results = [r.to_dict() for r in conv.run(device, (ConvShape(2, 3, 7, 5, 4),))]
    forward = results[0]
    assert forward["status"] == "ok", forward["ours"].get("reason")
    assert forward["check"]["ok"] and forward["check"]["rel_error"] < 1e-6
    assert forward["ours"]["name"] == "cnnkit reference on CuPy"


def test_pool_check_runs_the_reference_on_the_device(fake_gpu):
    device = BenchDevice("cuda:1", SETTINGS)
    x = device.random((2, 3, 6, 4), seed=1)
    gy = device.random((2, 3, 3, 2), seed=2)
    assert isinstance(x, FakeCudaArray) and x.device.id == 1
    geometry = make_geometry(2, 2, 2, "valid", 1, (6, 4))
    for backward in (False, True):
        checked = pool._check(device, x, gy, geometry, backward)
        assert checked["ok"] and checked["mismatches"] == 0


def test_bench_events_belong_to_the_benchmarked_device(fake_gpu):
    device = BenchDevice("cuda:1", SETTINGS)
    assert fake_gpu.current == 0
    assert [event.device for event in (device.clock.start, device.clock.end)] == [1, 1]
    timing = device.measure(lambda: np.zeros(1))
    assert timing.repeats == 1
