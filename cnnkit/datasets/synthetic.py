"""Two-dimensional toy problems in the spirit of the TensorFlow Playground.

Every generator returns ``x`` float32 of shape ``(n_samples, 2)`` and ``y`` int64 of
shape ``(n_samples,)``, in random order, with the points inside about [-1, 1]^2.
Labels are decided on the clean points; then ``noise`` is added: independent
Gaussian noise of standard deviation ``noise`` on each coordinate, in the same
units as the data (so ``noise=0.1`` is a tenth of the domain's half-width). With
``noise=0`` each problem is exactly separable, by the rule its docstring states.
"""
from __future__ import annotations

import numpy as np

from .. import backend


def _start(name: str, n_samples: int, noise: float, seed: int | None) -> np.random.Generator:
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"{name}: n_samples must be an integer >= 1, got {n_samples!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.number)) or not 0 <= noise < np.inf:
        raise ValueError(f"{name}: noise must be a finite number >= 0, got {noise!r}")
    return backend.rng() if seed is None else np.random.default_rng(seed)


def _balanced_labels(n_samples: int, n_classes: int, generator: np.random.Generator) -> np.ndarray:
    """Labels with the classes as equal in size as ``n_samples`` allows, in random order."""
    return generator.permutation(np.arange(n_samples) % n_classes).astype(np.int64)


def _finish(points: np.ndarray, labels: np.ndarray, noise: float, generator: np.random.Generator) -> tuple:
    if noise > 0:
        points = points + noise * generator.standard_normal(points.shape)
    return points.astype(np.float32), labels.astype(np.int64)


def make_xor(n_samples: int, noise: float = 0.0, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points in the four quadrants; ``y = 1`` where the two coordinates have opposite signs.

    Each coordinate is uniform in [-1, -0.05] or [0.05, 1], leaving a margin along
    the axes, so the XOR of the signs separates the classes when ``noise=0``.

    Args:
        n_samples: number of points.
        noise: standard deviation of the Gaussian noise added to each coordinate.
        seed: seed of the draws; ``None`` draws from cnnkit's global generator.

    Returns:
        ``(x, y)``: x float32 ``(n_samples, 2)``, y int64 ``(n_samples,)`` in {0, 1}.
    """
    generator = _start("make_xor", n_samples, noise, seed)
    magnitude = generator.uniform(0.05, 1.0, (n_samples, 2))
    points = magnitude * generator.choice([-1.0, 1.0], size=(n_samples, 2))
    labels = (points[:, 0] > 0) != (points[:, 1] > 0)
    return _finish(points, labels, noise, generator)


def make_circles(n_samples: int, noise: float = 0.0, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A disc inside a ring: ``y = 0`` for radius in [0, 0.5], ``y = 1`` for radius in [0.7, 1].

    Radii are uniform in their range and angles uniform; with ``noise=0`` the
    radius 0.6 separates the classes. The classes are equal in size (within one).

    Args:
        n_samples: number of points.
        noise: standard deviation of the Gaussian noise added to each coordinate.
        seed: seed of the draws; ``None`` draws from cnnkit's global generator.

    Returns:
        ``(x, y)``: x float32 ``(n_samples, 2)``, y int64 ``(n_samples,)`` in {0, 1}.
    """
    generator = _start("make_circles", n_samples, noise, seed)
    labels = _balanced_labels(n_samples, 2, generator)
    radius = np.where(labels == 0, generator.uniform(0.0, 0.5, n_samples), generator.uniform(0.7, 1.0, n_samples))
    angle = generator.uniform(0.0, 2 * np.pi, n_samples)
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return _finish(points, labels, noise, generator)


def gaussian_centers(n_classes: int) -> np.ndarray:
    """The cluster centres of :func:`make_gaussians`: evenly spaced on the circle of radius 0.6."""
    angle = np.pi / 4 + 2 * np.pi * np.arange(n_classes) / n_classes
    return 0.6 * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def make_gaussians(n_samples: int, noise: float = 0.0, seed: int | None = None,
                   n_classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """One round Gaussian cluster per class, around :func:`gaussian_centers`.

    Adjacent centres are ``2h`` apart (``h = 0.6 sin(pi / n_classes)``). Each
    cluster is an isotropic Gaussian of standard deviation ``h / 3`` truncated at
    radius ``0.95 h``, so with ``noise=0`` every point is nearer its own centre than
    any other: the nearest centre separates the classes. Two classes sit on the
    diagonal, at (0.42, 0.42) and (-0.42, -0.42), as in the Playground.

    Args:
        n_samples: number of points.
        noise: standard deviation of the Gaussian noise added to each coordinate.
        seed: seed of the draws; ``None`` draws from cnnkit's global generator.
        n_classes: number of clusters, at least 2.

    Returns:
        ``(x, y)``: x float32 ``(n_samples, 2)``, y int64 ``(n_samples,)`` in [0, n_classes).
    """
    generator = _start("make_gaussians", n_samples, noise, seed)
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ValueError(f"make_gaussians: n_classes must be an integer >= 2, got {n_classes!r}")
    labels = _balanced_labels(n_samples, n_classes, generator)
    half_gap = 0.6 * np.sin(np.pi / n_classes)
    sigma, r_max = half_gap / 3, 0.95 * half_gap
    # The distance of a 2-D Gaussian point from its mean is Rayleigh-distributed; inverting its
    # CDF restricted to [0, r_max] draws the truncated distance exactly, without rejection.
    tail = 1.0 - np.exp(-(r_max**2) / (2 * sigma**2))
    radius = sigma * np.sqrt(-2.0 * np.log1p(-generator.uniform(0.0, 1.0, n_samples) * tail))
    angle = generator.uniform(0.0, 2 * np.pi, n_samples)
    offsets = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return _finish(gaussian_centers(n_classes)[labels] + offsets, labels, noise, generator)


SPIRAL_TURNS = 1.75
SPIRAL_MIN_RADIUS = 0.1


def make_spirals(n_samples: int, noise: float = 0.0, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals, one per class, each winding 1.75 turns outwards.

    A point at fraction ``t`` (uniform in [0, 1]) along its spiral has radius
    ``r = 0.1 + 0.9 t`` and angle ``2 pi * 1.75 t + pi * y``: spiral 1 is spiral 0
    turned half a turn. So with ``noise=0`` a point's angle minus
    ``2 pi * 1.75 (r - 0.1) / 0.9`` is 0 (mod 2 pi) for class 0 and pi for class 1.

    Args:
        n_samples: number of points.
        noise: standard deviation of the Gaussian noise added to each coordinate.
        seed: seed of the draws; ``None`` draws from cnnkit's global generator.

    Returns:
        ``(x, y)``: x float32 ``(n_samples, 2)``, y int64 ``(n_samples,)`` in {0, 1}.
    """
    generator = _start("make_spirals", n_samples, noise, seed)
    labels = _balanced_labels(n_samples, 2, generator)
    t = generator.uniform(0.0, 1.0, n_samples)
    radius = SPIRAL_MIN_RADIUS + (1.0 - SPIRAL_MIN_RADIUS) * t
    angle = 2 * np.pi * SPIRAL_TURNS * t + np.pi * labels
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return _finish(points, labels, noise, generator)
