"""Shared fixtures: every test that takes ``device`` runs on the CPU and, where one is present, on a GPU."""
import numpy as np
import pytest

import cnnkit
from cnnkit import backend


def _gpu_param():
    reason = "needs CuPy and an NVIDIA GPU"
    return pytest.param("cuda", marks=[pytest.mark.gpu,
                                      pytest.mark.skipif(not backend.cuda_is_available(), reason=reason)])


@pytest.fixture(params=["cpu", _gpu_param()])
def device(request):
    """The device under test: 'cpu', and 'cuda' when a GPU is available (marked ``gpu``)."""
    return request.param


@pytest.fixture
def rng():
    """A seeded NumPy generator for test inputs."""
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global seed, so failures reproduce."""
    cnnkit.manual_seed(0)
    yield


