"""Hardware facts on this machine, the peak table, and NVML telemetry (faked where no GPU is present)."""
import json
import re

import pytest

from cnnkit.bench import hardware, peaks, telemetry



def test_collect_describes_this_machine():
    info = hardware.collect()
    assert info["cpu"]["model"] and info["cpu"]["logical_cores"] >= 1 and info["cpu"]["usable_cores"] >= 1
    assert re.match(r"\d+\.\d+", info["numpy"]["version"])
    assert info["torch"]["available"] in (True, False)
    if not info["torch"]["available"]:
        assert "PyTorch is not installed" in info["torch"]["reason"]
    json.dumps(info)  # plain data


def test_date_and_git_revision():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", hardware.iso_date())
    revision = hardware.git_revision()
    assert revision is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", revision)


@pytest.mark.no_gpu
def test_gpu_status_gives_the_reason_without_a_gpu():
    available, reason = hardware.gpu_status()
    assert not available and ("CuPy" in reason or "GPU" in reason)


def test_load_monitor_measures_other_processes():
    with hardware.LoadMonitor() as monitor:
        sum(i * i for i in range(2_000_000))
    result = monitor.result
    assert result["seconds"] > 0 and result["logical_cores"] >= 1
    if result.get("other_cpu_fraction") is not None:
        assert 0.0 <= result["other_cpu_fraction"] <= 1.0


@pytest.mark.parametrize("name, model", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM5 80GB"),
    ("NVIDIA H100 PCIe", "H100 PCIe 80GB"),
    ("NVIDIA H100 NVL", "H100 NVL 94GB"),
    ("NVIDIA H200", "H200 SXM 141GB"),
    ("NVIDIA A100-SXM4-80GB", "A100 SXM4 80GB"),
    ("NVIDIA A100-PCIE-40GB", "A100 PCIe 40GB"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", "L40S"),
    ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"),
    ("NVIDIA GeForce RTX 3090", "GeForce RTX 3090"),
    ("Tesla V100-SXM2-16GB", "V100 SXM2"),
    ("Tesla T4", "T4"),
])
def test_peak_lookup_by_driver_name(name, model):
    assert peaks.lookup_peak(name).model == model


def test_unknown_gpu_has_no_peak():
    assert peaks.lookup_peak("NVIDIA Imaginary 9000") is None and peaks.lookup_peak(None) is None
    assert peaks.lookup_peak("NVIDIA H100 80GB HBM3").to_dict()["source"] == "datasheet"


@pytest.mark.no_gpu
def test_nvml_says_why_it_is_unavailable():
    with pytest.raises(telemetry.NvmlUnavailable, match="NVML|nvidia-ml-py"):
        telemetry.Nvml(0)


def test_sampler_tags_phases_and_survives_failing_readings():
    readings = iter([{"power_w": 100.0, "sm_clock_mhz": 1980}, {"power_w": 300.0, "sm_clock_mhz": 1755},
                     RuntimeError("driver hiccup"), {"power_w": 200.0, "sm_clock_mhz": 1800}])

    def sample():
        reading = next(readings, {"power_w": 250.0, "sm_clock_mhz": 1900})
        if isinstance(reading, Exception):
            raise reading
        return reading

    clock = iter(range(100))
    sampler = telemetry.TelemetrySampler(sample, interval_s=3600, now=lambda: float(next(clock)))
    with sampler:  # one sample on entry, none from the thread (interval of an hour), one on exit
        sampler.set_phase("gemm")
        sampler.set_phase("conv")
    phases = [s["phase"] for s in sampler.samples]
    assert phases == ["start", "gemm", "conv"] and sampler.errors == 1
    summary = telemetry.summarize(sampler.samples)
    assert summary["samples"] == 3
    assert summary["overall"]["power_w"] == {"min": 100.0, "median": 200.0, "max": 300.0}
    assert summary["phases"]["gemm"]["sm_clock_mhz"]["max"] == 1755


def test_clock_event_reasons_are_decoded():
    summary = telemetry.summarize([{"phase": "a", "clocks_event_reasons": 0x4},
                                   {"phase": "a", "clocks_event_reasons": 0x40}])
    mask = summary["overall"]["clocks_event_reasons_any"]
    assert telemetry.describe_clock_event_reasons(mask) == ["software power cap", "hardware thermal slowdown"]
