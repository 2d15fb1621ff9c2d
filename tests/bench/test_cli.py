"""``cnnkit bench``: argument parsing, the no-GPU message, and a tiny real CPU run end to end."""
import json

import pytest

from cnnkit.bench.cli import SUITES, options_from_args
from cnnkit.cli import build_parser, main


def parse(*argv):
    return build_parser().parse_args(["bench", *argv])


def test_defaults():
    options = options_from_args(parse())
    assert options.suites == SUITES and options.device == "all" and not options.quick
    assert options.gemm_sizes is None and options.kernels == "cuda" and options.tf32
    cpu, gpu = options.plan("cpu"), options.plan("cuda")
    assert cpu.gemm_sizes == ((512,) * 3, (1024,) * 3, (2048,) * 3)
    assert gpu.gemm_sizes[-1] == (8192, 8192, 8192) and gpu.settings.warmup >= 10 and gpu.settings.repeat >= 50
    assert cpu.batch_sizes == (128, 512) and [s.batch for s in cpu.conv_shapes] == [256, 256, 64, 64]


def test_options_and_overrides():
    args = parse("gemm", "train", "--device", "cpu", "--sizes", "64,32x16x8", "--batch-sizes", "8,16",
                 "--repeat", "7", "--warmup", "0", "--quick", "--no-tf32", "--kernels", "reference")
    options = options_from_args(args)
    assert options.suites == ("gemm", "train") and options.device == "cpu" and options.quick
    assert options.gemm_sizes == ((64, 64, 64), (32, 16, 8)) and options.batch_sizes == (8, 16)
    plan = options.plan("cpu")
    assert (plan.settings.repeat, plan.settings.warmup) == (7, 0)
    assert plan.gemm_sizes == ((64, 64, 64), (32, 16, 8)) and plan.batch_sizes == (8, 16)
    assert not options.tf32 and options.kernels == "reference"


def test_quick_is_smaller():
    quick = options_from_args(parse("--quick"))
    assert quick.plan("cpu").batch_sizes == (128,) and quick.plan("cpu").conv_shapes[0].batch == 32
    assert quick.plan("cuda").settings.repeat < options_from_args(parse()).plan("cuda").settings.repeat


@pytest.mark.parametrize("argv", [["--sizes", "12x"], ["--batch-sizes", "0"], ["--device", "tpu"]])
def test_bad_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2


def test_unknown_suite_names_the_choices(capsys):
    assert main(["bench", "gemmm"]) == 2
    assert "unknown suite 'gemmm'; choose from gemm, conv, pool, train or all" in capsys.readouterr().err


@pytest.mark.no_gpu
def test_asking_for_cuda_without_a_gpu_says_why(capsys):
    assert main(["bench", "--device", "cuda"]) == 2
    assert "no GPU found (" in capsys.readouterr().err


@pytest.mark.no_gpu
def test_tiny_cpu_run_end_to_end(tmp_path, capsys):
    """The CI run of the benchmark: every path a real ``cnnkit bench --quick`` takes, on tiny sizes."""
    folder = tmp_path / "results"
    folder.mkdir()
    status = main(["bench", "gemm", "train", "--sizes", "32,48x16x8", "--batch-sizes", "4", "--repeat", "3",
                   "--warmup", "1", "--json", str(folder), "--plot", str(tmp_path / "bench.png")])
    output = capsys.readouterr().out
    assert status == 0, output
    assert "No GPU found, measuring the CPU (" in output and "asked for" not in output
    assert "== GEMM on cpu" in output and "== Small CNN training on cpu" in output
    assert "copy bandwidth:" in output and "machine load:" in output
    (path,) = folder.iterdir()
    assert path.name.endswith("-cpu.json")
    document = json.loads(path.read_text())
    assert {"cnnkit_version", "date", "git_revision", "hardware", "telemetry", "options", "results"} <= set(document)
    assert [r["suite"] for r in document["results"]] == ["gemm", "gemm", "train"]
    assert document["gpu_status"]["available"] is False and document["gpu_status"]["reason"]
    assert document["devices"]["cpu"]["load"]["seconds"] > 0
    assert (tmp_path / "bench.png").stat().st_size > 10_000

    assert main(["bench", "--load", str(path), "--markdown"]) == 0
    assert "### GEMM on cpu" in capsys.readouterr().out


def test_failures_set_the_exit_status(tmp_path, monkeypatch, capsys):
    from cnnkit.bench.suites import gemm
    monkeypatch.setattr(gemm, "impl", lambda name, a, b: a @ b + 1)
    assert main(["bench", "gemm", "--device", "cpu", "--sizes", "16", "--repeat", "3", "--warmup", "0"]) == 1
    assert "FAIL [" in capsys.readouterr().out
