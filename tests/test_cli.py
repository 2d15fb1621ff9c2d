"""The cnnkit command: demo, train, info, kernels (bench has its own tests)."""
import pytest

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


def test_info_lists_versions_and_devices(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "NumPy" in out and "CUDA devices:" in out and "Kernel cache:" in out


def test_kernels_lists_each_op_with_its_implementations(capsys):
    assert main(["kernels"]) == 0
    out = capsys.readouterr().out
    assert "conv_forward" in out and "reference" in out and "cuda" in out


@pytest.mark.no_gpu
def test_precompiling_without_a_gpu_says_why(capsys):
    assert main(["kernels", "--precompile"]) == 2
    assert "cnnkit kernels:" in capsys.readouterr().err
