"""Shared fixtures: every test that takes ``device`` runs on the CPU and, where one is present, on a GPU.

A test that needs a GPU carries ``@pytest.mark.gpu`` and is skipped here without CuPy or a GPU; a test of
what happens without one carries ``@pytest.mark.no_gpu`` and is skipped where a GPU is present.
"""
import numpy as np
import pytest

import cnnkit
from cnnkit import backend
from tests.cuda.launch_recorder import recorded_launches  # noqa: F401  (a fixture for every test)
from tests.fake_gpu import fake_gpu  # noqa: F401  (a fixture for every test)


def pytest_collection_modifyitems(config, items):
    """The one place that decides: ``gpu`` tests skip without CuPy and a GPU, ``no_gpu`` tests with them."""
    if backend.cuda_is_available():
        marker, skip = "no_gpu", pytest.mark.skip(reason="checks the behaviour without a GPU")
    else:
        marker, skip = "gpu", pytest.mark.skip(reason="needs CuPy and an NVIDIA GPU")
    for item in items:
        if item.get_closest_marker(marker) is not None:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
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


