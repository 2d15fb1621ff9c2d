import numpy as np
import pytest

import cnnkit
from cnnkit.datasets import make_circles, make_gaussians, make_spirals, make_xor
from cnnkit.datasets.synthetic import SPIRAL_MIN_RADIUS, SPIRAL_TURNS, gaussian_centers

GENERATORS = [make_xor, make_circles, make_gaussians, make_spirals]


@pytest.mark.parametrize("make", GENERATORS)
def test_shapes_dtypes_labels_and_seeding(make):
    x, y = make(101, noise=0.1, seed=0)
    assert x.shape == (101, 2) and x.dtype == np.float32
    assert y.shape == (101,) and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1}
    x2, y2 = make(101, noise=0.1, seed=0)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, make(101, noise=0.1, seed=1)[0])
    cnnkit.manual_seed(4)
    first = make(20)[0]
    cnnkit.manual_seed(4)
    np.testing.assert_array_equal(make(20)[0], first)


@pytest.mark.parametrize("make", GENERATORS)
def test_noise_moves_points_by_about_its_standard_deviation(make):
    clean, _ = make(2000, seed=3)
    noisy, _ = make(2000, noise=0.2, seed=3)
    assert np.abs(noisy).max() > 1.0 >= np.abs(clean).max()
    assert not np.array_equal(clean, noisy)


def test_xor_is_the_xor_of_the_signs():
    x, y = make_xor(500, seed=0)
    np.testing.assert_array_equal(y, (x[:, 0] > 0) != (x[:, 1] > 0))
    assert np.abs(x).min() >= 0.05


def test_circles_are_separated_by_radius():
    x, y = make_circles(501, seed=0)
    radius = np.hypot(x[:, 0], x[:, 1])
    assert radius[y == 0].max() <= 0.5 and radius[y == 1].min() >= 0.7
    assert np.bincount(y).tolist() == [251, 250]


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_gaussians_are_separated_by_the_nearest_centre(n_classes):
    x, y = make_gaussians(600, seed=0, n_classes=n_classes)
    centers = gaussian_centers(n_classes)
    distances = np.linalg.norm(x[:, None, :] - centers[None], axis=2)
    np.testing.assert_array_equal(distances.argmin(axis=1), y)
    assert np.bincount(y).tolist() == [600 // n_classes] * n_classes
    for k in range(n_classes):
        assert np.linalg.norm(x[y == k].mean(axis=0) - centers[k]) < 0.05


def test_spirals_are_separated_by_their_phase():
    x, y = make_spirals(400, seed=0)
    radius = np.hypot(x[:, 0], x[:, 1])
    expected_angle = 2 * np.pi * SPIRAL_TURNS * (radius - SPIRAL_MIN_RADIUS) / (1 - SPIRAL_MIN_RADIUS)
    phase = np.mod(np.arctan2(x[:, 1], x[:, 0]) - expected_angle, 2 * np.pi)
    distance_to_pi = np.abs(phase - np.pi)
    predicted = (distance_to_pi < np.pi / 2).astype(np.int64)
    np.testing.assert_array_equal(predicted, y)
    assert distance_to_pi[y == 1].max() < 1e-3 and distance_to_pi[y == 0].min() > np.pi - 1e-3


@pytest.mark.parametrize("kwargs,match", [
    ({"n_samples": 0}, "n_samples must be an integer >= 1, got 0"),
    ({"n_samples": 10, "noise": -0.1}, "noise must be a finite number >= 0"),
    ({"n_samples": 10, "noise": float("nan")}, "noise must be a finite number >= 0"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_circles(**kwargs)
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2, got 1"):
        make_gaussians(10, n_classes=1)
