"""Data-parallel training on 2 MPI ranks started with mpirun; skipped where no MPI runtime exists."""
import json
import time

import numpy as np
import pytest

from . import workers
from .launch import MPI_MISSING, run_ranks

pytestmark = pytest.mark.skipif(MPI_MISSING is not None, reason=f"needs an MPI runtime: {MPI_MISSING}")


def _succeeded(job) -> None:
    assert job.returncode == 0, f"mpirun failed ({job.returncode}):\n{job.stdout}\n{job.stderr}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One 2-rank job (MPI start-up is the slow part), checked by the tests below."""
    out = tmp_path_factory.mktemp("two_ranks")
    job = run_ranks(2, "train", str(out))
    _succeeded(job)
    return out, job, np.load(out / "result.npz"), json.loads((out / "result.json").read_text())


@pytest.fixture(scope="module")
def single_process():
    """The same model trained in one process on the combined batch (2 ranks x 4 samples)."""
    x, y = workers.dataset()
    model = workers.small_model(workers.SEED)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    return model, history, x, y


def test_collectives_on_numpy_arrays(trained):
    _, _, _, logs = trained
    assert [rank_logs["collectives"] for rank_logs in logs] == [[], []]


def test_weights_are_bit_identical_on_both_ranks(trained):
    _, _, result, _ = trained
    weights = result["weights"]
    assert weights.shape[0] == 2
    np.testing.assert_array_equal(weights[0], weights[1])


def test_training_matches_one_process_on_the_combined_batch(trained, single_process):
    _, _, result, logs = trained
    model, history, _, _ = single_process
    np.testing.assert_allclose(result["weights"][0], workers.flat_weights(model), rtol=1e-5, atol=1e-6)
    for rank_logs in logs:
        np.testing.assert_allclose(rank_logs["history"]["loss"], history.history["loss"], rtol=1e-6)
        assert rank_logs["history"]["accuracy"] == history.history["accuracy"]


def test_batch_norm_keeps_ranks_identical_and_synchronised_matches_one_process(trained):
    _, _, result, _ = trained
    for name in ("local_bn", "sync_bn"):
        np.testing.assert_array_equal(result[name][0], result[name][1])
    x, y = workers.dataset()
    model = workers.small_model(workers.SEED, batch_norm=True)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    expected = workers.flat_weights(model)
    np.testing.assert_allclose(result["sync_bn"][0], expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(result["local_bn"][0], expected, rtol=1e-4, atol=1e-5)  # each rank's own statistics


def test_a_backup_on_rank_zero_resumes_every_rank_exactly(trained):
    _, _, result, _ = trained
    np.testing.assert_array_equal(result["resumed"], result["uninterrupted"])


def test_evaluate_and_predict_report_global_figures(trained, single_process):
    _, _, result, logs = trained
    model, _, x, y = single_process
    expected = model.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)
    for rank_logs in logs:
        assert rank_logs["evaluate"]["accuracy"] == expected["accuracy"]
        assert rank_logs["evaluate"]["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    np.testing.assert_allclose(result["predicted"], model.predict(x, batch_size=5), rtol=1e-5, atol=1e-6)


def test_sampler_shards_cover_every_sample_once_per_epoch(trained):
    _, _, result, _ = trained
    exact = np.concatenate([result["seen_exact_0"], result["seen_exact_1"]])
    assert sorted(exact.tolist()) == list(range(37))
    padded = [result["seen_padded_0"], result["seen_padded_1"]]
    assert len(padded[0]) == len(padded[1]) == 19
    assert set(np.concatenate(padded).tolist()) == set(range(37))
    assert not set(padded[0].tolist()) & set(padded[1][:-1].tolist())  # only the padding sample repeats


def test_only_rank_zero_prints_and_writes_files(trained):
    out, job, _, _ = trained
    assert (out / "rank0" / "log.csv").exists() and (out / "rank0" / "model.safetensors").exists()
    assert not (out / "rank1").exists()
    progress = job.stdout + job.stderr
    assert progress.count("Epoch 1/2") == 1 and progress.count("Epoch 2/2") == 1


def test_a_raising_rank_fails_the_job_quickly_naming_it(tmp_path):
    started = time.perf_counter()
    job = run_ranks(2, "fail", str(tmp_path), timeout=60)
    assert job.returncode != 0
    assert time.perf_counter() - started < 30
    assert "rank 1 of 2" in job.stderr and "breaks on purpose" in job.stderr


def test_models_that_differ_are_refused_before_the_first_step(tmp_path):
    job = run_ranks(2, "mismatch", str(tmp_path))
    assert job.returncode != 0
    assert "the model on rank 1 differs from rank 0's" in job.stderr
    assert "layers.3.kernel" in job.stderr


def test_cli_train_distributed_reports_and_saves_once(tmp_path):
    saved = tmp_path / "small.safetensors"
    job = run_ranks(2, "cli", "train", "--distributed", "--epochs", "1", "--batch-size", "64", "--verbose", "2",
                    "--save", str(saved), timeout=120)
    _succeeded(job)
    assert job.stdout.count("Test accuracy") == 1 and job.stdout.count("Saved the model") == 1
    assert saved.exists()
