"""The cnnkit command: demo, train, info, kernels (bench has its own tests)."""
import pytest

from cnnkit import backend
from cnnkit.cli import main


def test_demo_trains_and_reports_accuracy_and_a_confusion_matrix(capsys):
    assert main(["demo", "--epochs", "1", "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "Test accuracy:" in out and "images/s" in out and "true\\pred" in out


def test_train_saves_the_model(tmp_path, capsys):
    target = tmp_path / "digits.safetensors"
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--verbose", "0", "--save", str(target)]) == 0
    assert target.exists() and "Saved the model" in capsys.readouterr().out


def test_train_on_a_missing_dataset_explains_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr("cnnkit.datasets.mnist.SYSTEM_DATA_DIR", tmp_path / "none")
    status = main(["train", "--dataset", "mnist", "--data-path", str(tmp_path), "--epochs", "1"])
    err = capsys.readouterr().err
    assert status == 2 and "cnnkit train:" in err and str(tmp_path) in err
    assert err.count("\n") == 1


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``cnnkit argv`` as a user runs it: the exit status, stdout and stderr."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def _user_mistakes(tmp_path) -> list[list[str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    return [
        ["train", "--device", "cdua"], ["demo", "--device", "cuda:x"],
        ["train", "--epochs", "-1"], ["train", "--epochs", "0"], ["demo", "--epochs", "ten"],
        ["train", "--batch-size", "0"], ["train", "--validation-split", "1.5"],
        ["train", "--dataset", "cifar"], ["trian"],
        ["train", "--dataset", "mnist", "--data-path", str(tmp_path / "no-such-folder")],
        ["train", "--data-path", str(tmp_path)],                            # the digits need no path
        ["train", "--save", str(a_file / "model.safetensors")],             # a file where a folder should be
        ["train", "--save", "/proc/model.safetensors"],                     # not writable, even for root
        ["train", "--save", str(tmp_path)],                                 # a folder
        ["train", "--save", str(tmp_path / "model.h5")],                    # a format cnnkit does not write
        ["bench", "--json", "/proc/results.json"], ["bench", "--plot", str(a_file / "plot.png")],
        ["bench", "--load", str(tmp_path / "missing.json")], ["bench", "--device", "gpu0"],
        ["kernels", "--precompiled"],
    ] + ([] if backend.cuda_is_available() else [["train", "--device", "cuda"], ["bench", "--device", "cuda"]])


def test_every_user_mistake_exits_2_with_one_line_and_before_any_training(tmp_path, capsys):
    for argv in _user_mistakes(tmp_path):
        status, out, err = run(argv, capsys)
        assert status == 2, (argv, out, err)
        assert err.count("\n") == 1 and err.startswith("cnnkit") and "error" in err.lower(), (argv, err)
        assert "Traceback" not in err and "Training" not in out and "Measuring" not in out, (argv, out, err)


def test_an_unexpected_internal_error_keeps_its_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("cnnkit.cli._train_and_report", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["train", "--epochs", "1"])


def test_output_folders_that_do_not_exist_yet_are_created(tmp_path, capsys):
    target = tmp_path / "new" / "folder" / "m.safetensors"
    assert run(["train", "--epochs", "1", "--verbose", "0", "--save", str(target)], capsys)[0] == 0
    assert target.is_file()


def test_help_describes_each_command_and_shows_defaults(capsys):
    for command, default in (("train", "(default: 10)"), ("demo", "(default: 15)")):
        status, out, _ = run([command, "--help"], capsys)
        assert status == 0 and default in out and "(default: 0.1)" in out and "(default: cpu)" in out
        assert "validation" in out.split("options:")[0]          # the description, above the options


def test_train_holds_out_a_validation_split_by_default_and_shows_val_metrics(capsys):
    status, out, err = run(["train", "--epochs", "1", "--verbose", "2"], capsys)
    assert status == 0
    assert "for 1 epoch\n" in out and "1 epochs" not in out
    assert "Holding out the last 144 training images (10%) for validation" in out
    assert "val_accuracy" in out + err
    status, out, err = run(["train", "--epochs", "1", "--verbose", "2", "--validation-split", "0"], capsys)
    assert status == 0 and "val_accuracy" not in out + err and "Holding out" not in out


def test_info_lists_versions_devices_and_the_cpu_as_bench_records_it(capsys):
    from cnnkit.bench import hardware
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "NumPy" in out and "CUDA devices:" in out and "Kernel cache:" in out
    cpu, blas = hardware.cpu_info(), hardware.numpy_info()
    assert cpu["model"] in out and f"{cpu['logical_cores']} logical cores" in out
    assert "Memory:" in out and "GiB available" in out
    assert f"BLAS: {blas['blas']['name']}" in out and f"BLAS {blas['blas_threads']}" in out
    assert "Threads:" in out


def test_kernels_shows_a_table_of_what_runs_now_on_each_device_and_why(capsys):
    from cnnkit import registry
    assert main(["kernels"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["op", "device", "runs", "now", "why"] and set(lines[1]) == {"-", " "}
    rows = {line.split()[0]: line for line in lines[2:] if line and not line.startswith(" ")}
    assert "cpu.sharded.pool_forward_sharded" in rows["pool_forward"] and "measured faster" in rows["pool_forward"]
    gpu_row = lines[lines.index(rows["conv_forward"]) + 1]
    assert gpu_row.split()[0] == "cuda"
    expected = "our CUDA kernel (CNNKIT_KERNELS=cuda)" if registry.cuda_kernels_enabled() else "opt-in"
    assert expected in gpu_row


@pytest.mark.no_gpu
def test_precompiling_without_a_gpu_says_why(capsys):
    assert main(["kernels", "--precompile"]) == 2
    assert "cnnkit kernels:" in capsys.readouterr().err
