"""Data-parallel training through NCCL on GPUs: one rank against the CPU, and two GPUs together."""
import json

import numpy as np
import pytest

from cnnkit import backend

from . import workers
from .launch import MPI_MISSING, run_ranks

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(MPI_MISSING is not None, reason=f"needs an MPI runtime: {MPI_MISSING}")]


def _needs_gpus(count: int) -> None:
    if backend.cuda_device_count() < count:
        pytest.skip(f"needs {count} GPU(s) with CuPy, found {backend.cuda_device_count()}")


def _train(tmp_path, ranks: int, device: str):
    job = run_ranks(ranks, "train", str(tmp_path), device, timeout=300)
    assert job.returncode == 0, f"mpirun failed ({job.returncode}):\n{job.stdout}\n{job.stderr}"
    return np.load(tmp_path / "result.npz"), json.loads((tmp_path / "result.json").read_text())


def test_one_rank_on_nccl_matches_the_cpu(tmp_path):
    _needs_gpus(1)
    gpu, gpu_logs = _train(tmp_path / "gpu", 1, "cuda")
    cpu, cpu_logs = _train(tmp_path / "cpu", 1, "cpu")
    assert gpu_logs[0]["device"].startswith("cuda") and gpu_logs[0]["collectives"] == []
    np.testing.assert_allclose(gpu["weights"][0], cpu["weights"][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gpu_logs[0]["history"]["loss"], cpu_logs[0]["history"]["loss"], rtol=1e-4)


def test_two_gpus_train_one_model(tmp_path):
    _needs_gpus(2)
    result, logs = _train(tmp_path, 2, "cuda")
    assert [entry["device"] for entry in logs] == ["cuda:0", "cuda:1"]
    assert [entry["collectives"] for entry in logs] == [[], []]
    np.testing.assert_array_equal(result["weights"][0], result["weights"][1])
    x, y = workers.dataset()
    reference = workers.small_model(workers.SEED)
    reference.fit(x, y, batch_size=8, epochs=2, verbose=0)
    np.testing.assert_allclose(result["weights"][0], workers.flat_weights(reference), rtol=1e-4, atol=1e-5)
