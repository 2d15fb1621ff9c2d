"""The data-parallel benchmark's plan: the reference case first, the cores split between ranks."""
import pytest

from cnnkit.bench.distributed import _cases, main


def test_cpu_cases_put_the_reference_first_and_split_the_cores():
    assert _cases([1, 2], "cpu", cores=2) == [(1, 2), (2, 1), (1, 1)]
    assert _cases([1, 2, 4], "cpu", cores=8) == [(1, 8), (2, 4), (4, 2), (1, 1)]
    assert _cases([2], "cpu", cores=1) == [(1, 1), (2, 1)]


def test_gpu_cases_are_one_rank_per_gpu():
    assert _cases([1, 2], "cuda", cores=16) == [(1, 1), (2, 1)]


def test_rank_counts_are_checked():
    with pytest.raises(SystemExit):
        main(["--ranks", "0"])
