"""Every example runs end to end with --quick (as a user would start it)."""
import pytest

from cnnkit.datasets import DatasetNotFoundError, load_fashion_mnist
from tests.helpers import EXAMPLES, run_example


def _fashion_mnist_present() -> bool:
    try:
        load_fashion_mnist()
    except DatasetNotFoundError:
        return False
    return True


def test_every_example_is_covered_here():
    covered = {"digits_cnn.py", "fashion_mnist_cnn.py", "playground_mlp.py", "keras_tutorial.py",
               "image_kernels_demo.py", "explain_demo.py", "transfer_learning.py", "distributed_mpi.py",
               "transfer_resnet.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} <= covered


def test_digits_cnn():
    output = run_example("digits_cnn.py")
    assert "test accuracy" in output and "predictions match" in output


def test_distributed_mpi_runs_as_a_world_of_one():
    pytest.importorskip("mpi4py", reason="the dist extra (mpi4py) is not installed")
    output = run_example("distributed_mpi.py")  # 2 ranks under mpirun: tests/distributed
    assert "1 rank(s)" in output and "test accuracy" in output


def test_playground_mlp_writes_its_plot(tmp_path):
    output = run_example("playground_mlp.py", "--dataset", "xor", "--plot", str(tmp_path / "xor.png"))
    assert "accuracy" in output and (tmp_path / "xor.png").stat().st_size > 1000


def test_keras_tutorial():
    assert "Test accuracy:" in run_example("keras_tutorial.py")


@pytest.mark.skipif(not _fashion_mnist_present(), reason="Fashion-MNIST files are not installed")
def test_fashion_mnist_cnn():
    assert "test accuracy" in run_example("fashion_mnist_cnn.py")


def test_transfer_resnet_freezes_then_fine_tunes():
    output = run_example("transfer_resnet.py")
    assert "48 pictures of 3 classes" in output
    assert "head only (2 epochs)" in output and "layer4 + head (2 epochs, 8,390,147 trainable parameters)" in output
