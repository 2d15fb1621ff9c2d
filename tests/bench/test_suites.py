"""One tiny real run of every suite on the CPU (the benchmark's CI run), and failures reported, not raised."""
import math

import pytest

from cnnkit.bench.device import BenchDevice, RunSettings
from cnnkit.bench.suites import conv, gemm, pool, train
from cnnkit.bench.suites.conv import ConvShape


@pytest.fixture
def cpu():
    return BenchDevice("cpu", RunSettings(warmup=1, repeat=3, max_seconds=1.0))


def assert_measured(result):
    assert result["status"] == "ok", result["ours"]["reason"]
    assert result["ours"]["throughput"] > 0 and result["ours"]["timing"]["repeats"] == 3
    assert result["ours"]["timing"]["first_call_ms"] > 0
    for reference in result["references"]:
        assert reference["status"] in ("ok", "absent"), reference["reason"]
        if reference["status"] == "ok":
            assert reference["throughput"] > 0 and reference["ratio"] > 0
        else:
            assert reference["reason"]


def test_gemm(cpu):
    results = [r.to_dict() for r in gemm.run(cpu, [(24, 24, 24), (33, 17, 9)])]
    assert [r["shape"] for r in results] == ["24x24x24", "33x17x9"]
    for result in results:
        assert_measured(result)
        assert result["references"][0]["name"].startswith("NumPy BLAS")
        assert result["check"]["ok"] and result["check"]["rel_error"] < 1e-5
    assert results[1]["work_per_call"] == pytest.approx(2 * 33 * 17 * 9 / 1e9)


def test_gemm_sizes_parse():
    assert gemm.parse_size("64") == (64, 64, 64)
    assert gemm.parse_size("4096x1024x512") == (4096, 1024, 512)
    with pytest.raises(ValueError, match="MxNxK"):
        gemm.parse_size("64x0x3")


def test_conv(cpu):
    results = [r.to_dict() for r in conv.run(cpu, (ConvShape(2, 3, 7, 5, 4),))]
    assert [r["case"] for r in results] == ["conv fwd", "conv fwd+bwd"]
    for result in results:
        assert_measured(result)
    assert results[0]["check"]["ok"]
    assert results[1]["flops"] == pytest.approx(3 * results[0]["flops"])
    assert results[0]["ours"]["implementation"] == {"conv_forward": "reference"}


def test_pool(cpu):
    results = [r.to_dict() for r in pool.run(cpu, ((2, 3, 6, 4),), copy_gbps=10.0)]
    assert [r["case"] for r in results] == ["maxpool2x2 fwd", "maxpool2x2 bwd"]
    for result in results:
        assert_measured(result)
        assert result["unit"] == "GB/s" and result["references"][0]["name"].startswith("copy of the same bytes")
        assert result["peaks"][0]["name"] == "measured copy bandwidth"
    n = 2 * 3 * 6 * 4
    assert results[0]["bytes"] == 4 * n + 4 * n / 4 + n / 4


def test_copy_bandwidth(cpu):
    figure = pool.copy_bandwidth(cpu, 2**20)
    assert figure["gbps"] > 0 and figure["buffer_bytes"] == 2**20


def test_train(cpu):
    (result,) = [r.to_dict() for r in train.run(cpu, (4,))]
    assert_measured(result)
    assert result["unit"] == "images/s" and result["work_per_call"] == 4
    assert result["check"]["ok"] and math.isfinite(result["check"]["last_loss"])


def test_a_failing_case_is_reported_and_the_next_one_runs(cpu, monkeypatch):
    calls = []

    def broken_gemm(a, b):
        calls.append(a.shape)
        if a.shape[0] == 8:
            raise RuntimeError("illegal memory access")
        return a @ b

    monkeypatch.setattr(gemm, "impl", lambda name, a, b: broken_gemm(a, b))
    first, second = [r.to_dict() for r in gemm.run(cpu, [(8, 8, 8), (16, 16, 16)])]
    assert first["status"] == "failed" and "illegal memory access" in first["ours"]["reason"]
    assert first["references"][0]["status"] == "ok"  # the reference still ran
    assert second["status"] == "ok"


def test_a_case_whose_setup_raises_is_reported(cpu, monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(cpu, "random", no_memory)
    result = next(iter(conv.run(cpu, (ConvShape(1, 1, 3, 3, 1),)))).to_dict()
    assert result["status"] == "failed" and result["ours"]["reason"] == "MemoryError: out of memory"
    assert result["shape"] == "b1 1->1 3x3"


def test_a_wrong_result_fails_the_case(cpu, monkeypatch):
    monkeypatch.setattr(gemm, "impl", lambda name, a, b: a @ b + 1)
    (result,) = [r.to_dict() for r in gemm.run(cpu, [(8, 8, 8)])]
    assert result["status"] == "failed" and not result["check"]["ok"]
