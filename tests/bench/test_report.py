"""Derived figures, tables and JSON files on synthetic results (ok, absent reference, failed, skipped)."""
import json

import pytest

from cnnkit.bench import report
from cnnkit.bench.results import CaseResult, Figure, PeakLabel, measured
from cnnkit.bench.timing import Timing


def timing(*times_ms, first=50.0):
    return Timing(list(times_ms), first_call_ms=first, warmup=1, requested_repeat=len(times_ms))


def case(device="cpu", suite="gemm", key="gemm fp32 64", ours=None, references=None, check=None, work=2.0,
         unit="GFLOP/s", shape="64x64x64", peaks=()):
    return CaseResult(suite, "sgemm fp32", device, shape, {"M": 64}, unit, work, key,
                      ours or Figure("cnnkit NumPy", "ok", timing(1.0, 2.0, 3.0)), list(references or []),
                      list(peaks), flops=2e9, bytes=1e6, check=check)


def raising():
    raise RuntimeError("kernel exploded")


@pytest.fixture
def document():
    ok = case(references=[Figure("NumPy BLAS", "ok", timing(1.0, 1.0, 1.0)),
                          Figure.absent("PyTorch CPU", "PyTorch is not installed")],
              peaks=[PeakLabel("FP32 datasheet", 4000.0)], check={"name": "err", "rel_error": 1e-7, "ok": True})
    failed = case(key="gemm fp32 128", shape="128x128x128", ours=measured("cnnkit NumPy", raising),
                  references=[Figure("NumPy BLAS", "ok", timing(4.0))])
    wrong = case(key="gemm fp32 256", shape="256x256x256",
                 check={"name": "relative error", "rel_error": 0.5, "tolerance": 1e-4, "ok": False})
    skipped = case(key="gemm tf32 64", ours=Figure.absent("cnnkit NumPy", "TF32 needs sm_80"))
    gpu = case(device="cuda:0", ours=Figure("cnnkit CUDA kernel", "ok", timing(0.1, 0.1, 0.1)),
               references=[Figure("cuBLAS", "ok", timing(0.05, 0.05, 0.05))])
    results = [r.to_dict() for r in (ok, failed, wrong, skipped, gpu)]
    return {"schema": "cnnkit-bench/1", "date": "2026-11-23T12:00:00+00:00", "git_revision": "abc",
            "hardware": {"cpu": {"model": "AMD EPYC", "usable_cores": 2}, "gpu": {"name": "NVIDIA H100 80GB HBM3"}},
            "devices": {"cpu": {"description": "AMD EPYC, 2 cores",
                                "copy_bandwidth": {"gbps": 20.0, "buffer_bytes": 2**26}},
                        "cuda:0": {"description": "NVIDIA H100 80GB HBM3"}},
            "telemetry": {"cuda:0": {"available": False, "reason": "no driver"}},
            "results": results, "speedups": report.speedups(results)}


def test_throughput_ratio_and_fraction_of_peak(document):
    ok = document["results"][0]
    assert ok["ours"]["throughput"] == pytest.approx(2.0 / 2e-3)  # 2 GFLOP at a 2 ms median
    assert ok["references"][0]["throughput"] == pytest.approx(2000.0)
    assert ok["ratio"] == pytest.approx(0.5)  # ours half as fast as the reference
    assert ok["peaks"][0]["fraction"] == pytest.approx(1000.0 / 4000.0)
    assert ok["ours"]["timing"]["first_call_ms"] == 50.0
    assert ok["references"][1]["status"] == "absent" and ok["references"][1]["ratio"] is None


def test_statuses(document):
    statuses = [r["status"] for r in document["results"]]
    assert statuses == ["ok", "failed", "failed", "skipped", "ok"]
    failed = document["results"][1]
    assert failed["ours"]["reason"] == "RuntimeError: kernel exploded"
    assert "raising" in failed["ours"]["traceback"]
    assert failed["ratio"] is None
    assert report.summarize(document["results"]) == {"cases": 5, "ok": 2, "failed": 2, "skipped": 1,
                                                     "references_failed": 0, "references_absent": 1}
    assert report.something_failed(document)


def test_an_absent_reference_alone_is_not_a_failure(document):
    document["results"] = [document["results"][0]]
    assert not report.something_failed(document)


def test_a_device_that_failed_to_start_is_a_failure(document):
    document["results"] = [document["results"][0]]
    document["devices"]["cuda:0"] = {"description": "cuda:0", "error": "CUDARuntimeError: no kernel image"}
    assert report.something_failed(document)
    assert "FAILED before any case ran: CUDARuntimeError: no kernel image" in report.format_tables(document)


def test_speedups_match_cases_by_key(document):
    (row,) = document["speedups"]
    assert row["key"] == "gemm fp32 64"
    assert row["speedup"] == pytest.approx(20.0)  # 0.1 ms on the GPU against 2 ms on the CPU


def test_table_shows_failures_absences_and_notes(document):
    text = report.format_tables(document)
    assert "GEMM on cpu (AMD EPYC, 2 cores)" in text and "GEMM on cuda:0" in text
    assert "FAILED [" in text and "absent [" in text and "skipped [" in text and "FAIL [" in text
    assert "RuntimeError: kernel exploded" in text
    assert "PyTorch CPU: PyTorch is not installed" in text
    assert "TF32 needs sm_80" in text
    assert "25%" in text  # fraction of peak
    assert "0.50" in text  # ours/ref
    assert "20.0x" in text  # GPU over CPU
    assert "copy bandwidth: 20.0 GB/s" in text
    assert "telemetry: unavailable (no driver)" in text
    assert "5 cases: 2 ok, 2 failed, 1 skipped" in text


def test_markdown_tables(document):
    text = report.format_tables(document, markdown=True)
    assert "### GEMM on cpu" in text
    assert "| case | shape | ours | ms |" in text
    assert "|---|---|" in text


def test_json_to_a_file_and_back(document, tmp_path):
    (path,) = report.write_json(document, tmp_path / "out" / "results.json")
    loaded = report.load_json([path])
    assert loaded["results"] == document["results"]
    assert report.format_tables(loaded) == report.format_tables(document)


def test_json_to_a_folder_writes_one_named_file_per_device(document, tmp_path):
    folder = str(tmp_path / "results") + "/"
    paths = report.write_json(document, folder)
    assert [p.name for p in paths] == ["2026-11-23-amd-epyc-2core-cpu.json",
                                       "2026-11-23-nvidia-h100-80gb-hbm3-gpu.json"]
    cpu = json.loads(paths[0].read_text())
    assert {r["device"] for r in cpu["results"]} == {"cpu"} and "gpu" not in cpu["hardware"]
    assert cpu["summary"]["failed"] == 2
    again = report.write_json(document, folder)
    assert again[0].name == "2026-11-23-amd-epyc-2core-cpu-2.json"  # never overwrites
    document["options"] = {"quick": True}
    assert report.result_file_name(document, "cpu") == "2026-11-23-amd-epyc-2core-cpu-quick.json"
    merged = report.load_json(paths)
    assert len(merged["results"]) == 5 and merged["speedups"][0]["speedup"] == pytest.approx(20.0)


def test_load_json_needs_a_file():
    with pytest.raises(ValueError, match="at least one"):
        report.load_json([])


def test_plot_writes_a_png(document, tmp_path):
    pytest.importorskip("matplotlib")
    from cnnkit.bench.plot import plot_results
    path = plot_results(document, tmp_path / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
