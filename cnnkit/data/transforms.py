"""Random data augmentation for whole NCHW batches, on the batch's own device.

Every function works on a NumPy or CuPy batch at once (no Python loop over
samples) and draws an independent random choice for each sample. The random
numbers are Philox draws (:mod:`cnnkit.philox`) made on the batch's device: keyed by
``seed`` when given, else the next draw of cnnkit's global stream, so
:func:`cnnkit.manual_seed` makes augmentation reproducible and the same seed gives
the very same result on the CPU and on a GPU. Inputs are never
modified; a Tensor passed in gives a (non-differentiable) Tensor back.

The classes wrap the functions as callables for ``DataLoader(transform=...)``:
``Compose([RandomShift(2), RandomFlip(), GaussianNoise(0.05)])``.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .. import backend, philox
from ..autograd import Tensor
from .dataset import as_array


def _nchw(x: Any, name: str) -> Any:
    array = as_array(x, f"{name}: x")
    if array.ndim != 4:
        raise ValueError(f"{name}: x must be an NCHW batch (4-D), got shape {array.shape}")
    return array


def _like_input(out: Any, x: Any) -> Any:
    return Tensor(out) if isinstance(x, Tensor) else out


def _pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
    """An int or a (height, width) pair of ints, each at least ``minimum``."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum
                             for v in pair):
        raise ValueError(f"{name} must be an integer >= {minimum} or a (height, width) pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_seed(seed: Any, name: str) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"{name}: seed must be a non-negative integer or None, got {seed!r}")


def _uniform(xp, seed: int | None, shape: tuple, dtype: Any = np.float64) -> Any:
    """Uniform [0, 1) draws on ``xp``'s device: stream 0 of ``seed``, or the global stream's next draw."""
    seed, stream = backend.next_random_stream() if seed is None else (int(seed), 0)
    return philox.uniform(xp, seed, stream, shape, dtype)


def _random_integers(u: Any, low: int, high: int) -> Any:
    """Map uniform [0, 1) draws to integers uniform in [low, high]."""
    xp = backend.get_array_module(u)
    span = high - low + 1
    return xp.minimum(xp.floor(u * span).astype(np.int64), span - 1) + low


def _windows(x: Any, top: Any, left: Any, height: int, width: int) -> Any:
    """``out[n] = x[n, :, top[n]:top[n]+height, left[n]:left[n]+width]`` for every n, as one gather."""
    xp = backend.get_array_module(x)
    N, C = x.shape[:2]
    rows = top[:, None] + xp.arange(height)
    cols = left[:, None] + xp.arange(width)
    n = xp.arange(N)[:, None, None, None]
    c = xp.arange(C)[None, :, None, None]
    return x[n, c, rows[:, None, :, None], cols[:, None, None, :]]


def _pad(x: Any, pad_h: int, pad_w: int, fill: float) -> Any:
    xp = backend.get_array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)), mode="constant", constant_values=fill)


def random_flip(x: Any, horizontal: bool = True, vertical: bool = False, p: float = 0.5,
                seed: int | None = None) -> Any:
    """Mirror each image left-right and/or top-bottom, each with probability ``p``.

    The two flips are decided independently for every sample.

    Args:
        x: batch of images.
        horizontal: allow left-right flips (along W).
        vertical: allow top-bottom flips (along H).
        p: probability of each allowed flip, in [0, 1].
        seed: seed of the random choices; ``None`` draws one from the global generator.

    Shapes:
        x ``(N, C, H, W)`` -> ``(N, C, H, W)``.
    """
    array = _nchw(x, "random_flip")
    if not (horizontal or vertical):
        raise ValueError("random_flip: at least one of horizontal and vertical must be True")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"random_flip: p must be a probability in [0, 1], got {p!r}")
    _check_seed(seed, "random_flip")
    xp = backend.get_array_module(array)
    u = _uniform(xp, seed, (len(array), 2))
    out = array  # xp.where below always makes a new array, as one of the flips is allowed
    if horizontal:
        out = xp.where((u[:, 0] < p)[:, None, None, None], out[..., ::-1], out)
    if vertical:
        out = xp.where((u[:, 1] < p)[:, None, None, None], out[..., ::-1, :], out)
    return _like_input(out, x)


def translate(x: Any, shifts: Any, fill: float = 0.0) -> Any:
    """Move each image by its own whole number of pixels, filling the uncovered border.

    ``out[n, c, i, j] = x[n, c, i - dy[n], j - dx[n]]`` where that pixel exists, else
    ``fill``: positive ``dy`` moves the content down, positive ``dx`` to the right.

    Args:
        x: batch of images.
        shifts: integer ``(dy, dx)`` per sample.
        fill: value of the pixels shifted in from outside.

    Shapes:
        x ``(N, C, H, W)``, shifts ``(N, 2)`` -> ``(N, C, H, W)``.
    """
    array = _nchw(x, "translate")
    xp = backend.get_array_module(array)
    shifts = xp.asarray(as_array(shifts, "translate: shifts"))
    if shifts.shape != (len(array), 2) or shifts.dtype.kind not in "iu":
        raise ValueError(f"translate: shifts must be integers of shape ({len(array)}, 2) (dy, dx per sample), "
                         f"got shape {shifts.shape} and dtype {shifts.dtype}")
    shifts = shifts.astype(np.int64)
    H, W = array.shape[2:]
    # Padding by the largest shift (at most the image size: beyond it only fill is left) keeps every window inside.
    largest = xp.abs(shifts).max(axis=0) if len(shifts) else (0, 0)
    pad_h, pad_w = min(int(largest[0]), H), min(int(largest[1]), W)
    top = pad_h - xp.clip(shifts[:, 0], -pad_h, pad_h)
    left = pad_w - xp.clip(shifts[:, 1], -pad_w, pad_w)
    return _like_input(_windows(_pad(array, pad_h, pad_w, fill), top, left, H, W), x)


def random_shift(x: Any, max_shift: int | tuple[int, int], fill: float = 0.0, seed: int | None = None) -> Any:
    """Translate each image by a random whole number of pixels, at most ``max_shift`` each way.

    ``dy`` and ``dx`` are drawn independently and uniformly from
    ``[-max_shift, max_shift]`` for every sample; the image is padded with ``fill``
    and cropped back to its size (see :func:`translate`).

    Args:
        x: batch of images.
        max_shift: the largest shift, one int or ``(max_dy, max_dx)``.
        fill: value of the pixels shifted in from outside.
        seed: seed of the random choices; ``None`` draws one from the global generator.

    Shapes:
        x ``(N, C, H, W)`` -> ``(N, C, H, W)``.
    """
    array = _nchw(x, "random_shift")
    max_dy, max_dx = _pair(max_shift, "random_shift: max_shift", 0)
    _check_seed(seed, "random_shift")
    xp = backend.get_array_module(array)
    u = _uniform(xp, seed, (len(array), 2))
    shifts = xp.stack([_random_integers(u[:, 0], -max_dy, max_dy), _random_integers(u[:, 1], -max_dx, max_dx)],
                      axis=1)
    return _like_input(translate(array, shifts, fill), x)


def random_crop(x: Any, size: int | tuple[int, int], padding: int | tuple[int, int] = 0, fill: float = 0.0,
                seed: int | None = None) -> Any:
    """Cut a random ``size`` window out of each image, after padding it with ``fill``.

    The window's top-left corner is uniform over all positions inside the padded
    image, chosen independently for every sample. ``random_crop(x, (H, W), padding=4)``
    is the classic CIFAR augmentation.

    Args:
        x: batch of images.
        size: output height and width, one int or ``(height, width)``.
        padding: pixels of ``fill`` added on each side first, one int or ``(pad_h, pad_w)``.
        fill: value of the padding.
        seed: seed of the random choices; ``None`` draws one from the global generator.

    Shapes:
        x ``(N, C, H, W)`` -> ``(N, C, height, width)``.
    """
    array = _nchw(x, "random_crop")
    height, width = _pair(size, "random_crop: size", 1)
    pad_h, pad_w = _pair(padding, "random_crop: padding", 0)
    _check_seed(seed, "random_crop")
    H, W = array.shape[2] + 2 * pad_h, array.shape[3] + 2 * pad_w
    if height > H or width > W:
        raise ValueError(f"random_crop: size ({height}, {width}) is larger than the padded image ({H}, {W})")
    xp = backend.get_array_module(array)
    u = _uniform(xp, seed, (len(array), 2))
    top = _random_integers(u[:, 0], 0, H - height)
    left = _random_integers(u[:, 1], 0, W - width)
    return _like_input(_windows(_pad(array, pad_h, pad_w, fill), top, left, height, width), x)


def gaussian_noise(x: Any, stddev: float, seed: int | None = None) -> Any:
    """Add independent zero-mean Gaussian noise to every element: ``x + stddev * z``, ``z ~ N(0, 1)``.

    The normal draws are made from uniform ones by the Box-Muller transform
    (``z = sqrt(-2 ln u1) cos(2 pi u2)``), so they are produced on the batch's device.

    Args:
        x: floating-point array of any shape.
        stddev: standard deviation of the noise, >= 0.
        seed: seed of the noise; ``None`` draws one from the global generator.

    Shapes:
        x ``(...)`` -> ``(...)``, same dtype.
    """
    array = as_array(x, "gaussian_noise: x")
    if array.dtype.kind != "f":
        raise ValueError(f"gaussian_noise: x must be floating-point, got dtype {array.dtype}")
    if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.number)) or not stddev >= 0:
        raise ValueError(f"gaussian_noise: stddev must be a number >= 0, got {stddev!r}")
    _check_seed(seed, "gaussian_noise")
    xp = backend.get_array_module(array)
    u = _uniform(xp, seed, (2,) + array.shape, array.dtype)
    z = xp.sqrt(-2.0 * xp.log(1.0 - u[0])) * xp.cos((2.0 * np.pi) * u[1])
    return _like_input((array + stddev * z).astype(array.dtype, copy=False), x)


class _RandomTransform:
    """A transform object that takes its seeds from its own generator when given ``seed``."""

    def __init__(self, seed: int | None):
        _check_seed(seed, type(self).__name__)
        self.seed = seed
        self._generator = None if seed is None else np.random.default_rng(seed)

    def _next_seed(self) -> int | None:
        return None if self._generator is None else int(self._generator.integers(0, 2**63 - 1))


class RandomFlip(_RandomTransform):
    """Callable form of :func:`random_flip`. ``seed`` seeds a generator of its own, whose
    draws differ from call to call; ``None`` uses cnnkit's global generator."""

    def __init__(self, horizontal: bool = True, vertical: bool = False, p: float = 0.5, seed: int | None = None):
        super().__init__(seed)
        if not (horizontal or vertical):
            raise ValueError("RandomFlip: at least one of horizontal and vertical must be True")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomFlip: p must be a probability in [0, 1], got {p!r}")
        self.horizontal, self.vertical, self.p = horizontal, vertical, p

    def __call__(self, x: Any) -> Any:
        return random_flip(x, self.horizontal, self.vertical, self.p, seed=self._next_seed())

    def __repr__(self) -> str:
        return f"RandomFlip(horizontal={self.horizontal}, vertical={self.vertical}, p={self.p})"


class RandomShift(_RandomTransform):
    """Callable form of :func:`random_shift`; ``seed`` as for :class:`RandomFlip`."""

    def __init__(self, max_shift: int | tuple[int, int], fill: float = 0.0, seed: int | None = None):
        super().__init__(seed)
        self.max_shift = _pair(max_shift, "RandomShift: max_shift", 0)
        self.fill = fill

    def __call__(self, x: Any) -> Any:
        return random_shift(x, self.max_shift, self.fill, seed=self._next_seed())

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift}, fill={self.fill})"


class RandomCrop(_RandomTransform):
    """Callable form of :func:`random_crop`; ``seed`` as for :class:`RandomFlip`."""

    def __init__(self, size: int | tuple[int, int], padding: int | tuple[int, int] = 0, fill: float = 0.0,
                 seed: int | None = None):
        super().__init__(seed)
        self.size = _pair(size, "RandomCrop: size", 1)
        self.padding = _pair(padding, "RandomCrop: padding", 0)
        self.fill = fill

    def __call__(self, x: Any) -> Any:
        return random_crop(x, self.size, self.padding, self.fill, seed=self._next_seed())

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding}, fill={self.fill})"


class GaussianNoise(_RandomTransform):
    """Callable form of :func:`gaussian_noise`; ``seed`` as for :class:`RandomFlip`."""

    def __init__(self, stddev: float, seed: int | None = None):
        super().__init__(seed)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.number)) or not stddev >= 0:
            raise ValueError(f"GaussianNoise: stddev must be a number >= 0, got {stddev!r}")
        self.stddev = stddev

    def __call__(self, x: Any) -> Any:
        return gaussian_noise(x, self.stddev, seed=self._next_seed())

    def __repr__(self) -> str:
        return f"GaussianNoise(stddev={self.stddev})"


class Compose:
    """Apply several transforms in order: ``Compose([RandomShift(2), RandomFlip()])(x)``."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)
        for i, transform in enumerate(self.transforms):
            if not callable(transform):
                raise TypeError(f"Compose: transforms[{i}] must be callable, got {transform!r}")

    def __call__(self, x: Any) -> Any:
        for transform in self.transforms:
            x = transform(x)
        return x

    def __repr__(self) -> str:
        return f"Compose([{', '.join(repr(t) for t in self.transforms)}])"
