"""Weight initializers, by name or object, as in Keras.

Every initializer draws from cnnkit's global generator on the host and the layer moves
the result to its device, so one seed gives the same weights on the CPU and the GPU.

Fans of a weight follow Keras: a dense kernel (in, out) has fan_in = in and
fan_out = out; a convolution kernel (F, C / groups, *k) has fan_in = C/groups · Πk and
fan_out = F · Πk.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

from . import backend, custom_objects


def compute_fans(shape: tuple, layout: str = "dense") -> tuple[float, float]:
    """(fan_in, fan_out) of a weight; ``layout`` is "dense" (in, out) or "conv" (F, C, *k)."""
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if layout == "conv":
        receptive = math.prod(shape[2:])
        return float(shape[1] * receptive), float(shape[0] * receptive)
    return float(shape[0]), float(math.prod(shape[1:]))


class Initializer:
    """Callable ``init(shape, dtype, layout) -> numpy array``; ``layout`` says how to count fans."""

    def __call__(self, shape: tuple, dtype: Any = np.float32, layout: str = "dense") -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Initializer":
        return cls(**config)


class Zeros(Initializer):
    """All zeros (Keras' default for biases)."""

    def __call__(self, shape, dtype=np.float32, layout="dense"):
        return np.zeros(shape, dtype)


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=np.float32, layout="dense"):
        return np.ones(shape, dtype)


class Constant(Initializer):
    """Every entry equal to ``value``."""

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def __call__(self, shape, dtype=np.float32, layout="dense"):
        return np.full(shape, self.value, dtype)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    """Samples from N(mean, stddev²)."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=np.float32, layout="dense"):
        return backend.rng().normal(self.mean, self.stddev, shape).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


class RandomUniform(Initializer):
    """Samples from U(minval, maxval)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05):
        if maxval <= minval:
            raise ValueError(f"RandomUniform: maxval must exceed minval, got minval={minval}, maxval={maxval}")
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype=np.float32, layout="dense"):
        return backend.rng().uniform(self.minval, self.maxval, shape).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval}


class VarianceScaling(Initializer):
    """Variance ``scale / fan`` with fan = fan_in, fan_out or their mean.

    ``distribution="uniform"`` draws from U(-l, l), l = sqrt(3 · scale / fan);
    ``"normal"`` draws from a normal truncated at two standard deviations and rescaled
    (as Keras does) so that the variance is scale / fan.
    """

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal"):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        if distribution not in ("uniform", "truncated_normal", "untruncated_normal"):
            raise ValueError("VarianceScaling: distribution must be 'uniform', 'truncated_normal' or "
                             f"'untruncated_normal', got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, dtype=np.float32, layout="dense"):
        fan_in, fan_out = compute_fans(tuple(shape), layout)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        generator = backend.rng()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return generator.uniform(-limit, limit, shape).astype(dtype)
        if self.distribution == "untruncated_normal":
            return generator.normal(0.0, math.sqrt(variance), shape).astype(dtype)
        # A standard normal truncated to [-2, 2] has standard deviation 0.87962566103423978.
        stddev = math.sqrt(variance) / 0.87962566103423978
        return (_truncated_standard_normal(generator, shape) * stddev).astype(dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


def _truncated_standard_normal(generator: np.random.Generator, shape: tuple) -> np.ndarray:
    """Standard normal samples redrawn until they fall inside [-2, 2]."""
    values = generator.standard_normal(shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = generator.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2
    return values


class GlorotUniform(VarianceScaling):
    """Glorot & Bengio (2010): U(-l, l), l = sqrt(6 / (fan_in + fan_out)). Keras' default kernel init."""

    def __init__(self):
        super().__init__(1.0, "fan_avg", "uniform")

    def get_config(self):
        return {}


class GlorotNormal(VarianceScaling):
    """Glorot & Bengio (2010): truncated normal with variance 2 / (fan_in + fan_out)."""

    def __init__(self):
        super().__init__(1.0, "fan_avg", "truncated_normal")

    def get_config(self):
        return {}


class HeUniform(VarianceScaling):
    """He et al. (2015), for ReLU networks: U(-l, l), l = sqrt(6 / fan_in)."""

    def __init__(self):
        super().__init__(2.0, "fan_in", "uniform")

    def get_config(self):
        return {}


class HeNormal(VarianceScaling):
    """He et al. (2015), for ReLU networks: truncated normal with variance 2 / fan_in."""

    def __init__(self):
        super().__init__(2.0, "fan_in", "truncated_normal")

    def get_config(self):
        return {}


class LecunNormal(VarianceScaling):
    """LeCun et al. (1998): truncated normal with variance 1 / fan_in (for SELU networks)."""

    def __init__(self):
        super().__init__(1.0, "fan_in", "truncated_normal")

    def get_config(self):
        return {}


class LecunUniform(VarianceScaling):
    """LeCun et al. (1998): U(-l, l), l = sqrt(3 / fan_in)."""

    def __init__(self):
        super().__init__(1.0, "fan_in", "uniform")

    def get_config(self):
        return {}


_BY_NAME: dict[str, Callable[[], Initializer]] = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "random_normal": RandomNormal, "random_uniform": RandomUniform, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "xavier_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "xavier_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform,
}


_skipping = 0


@contextmanager
def skip_initialization() -> Iterator[None]:
    """Weights created inside the block are allocated but not filled (as PyTorch's ``skip_init``).

    For models whose weights are loaded from a file right after they are built, and for
    counting the parameters of a large model: drawing 138 million random numbers for a
    VGG16 takes seconds, while unfilled host memory costs nothing until it is written.
    """
    global _skipping
    _skipping += 1
    try:
        yield
    finally:
        _skipping -= 1


def initial_value(initializer: Any, shape: tuple, dtype: Any, layout: str = "dense") -> np.ndarray:
    """``get(initializer)(shape, dtype, layout)``, or an unfilled array inside :func:`skip_initialization`."""
    if _skipping:
        return np.empty(shape, dtype)
    return get(initializer)(shape, dtype, layout)


def get(identifier: Any) -> Initializer:
    """An initializer from a name ("he_normal"), a config dict, or an Initializer (passed through)."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        name, config = identifier.get("class_name"), identifier.get("config", {})
        return _lookup(name).from_config(config)
    if isinstance(identifier, str):
        return _lookup(identifier)()
    raise TypeError(f"initializer must be a name, a config dict or an Initializer, got {identifier!r}")


def _lookup(name: str):
    return custom_objects.lookup(name, _BY_NAME, "initializer")


def serialize(initializer: Initializer) -> dict:
    """Plain data that :func:`get` turns back into an equal initializer."""
    # The first name listed for a class is its canonical one (glorot_uniform, not xavier_uniform).
    name = next((key for key, cls in _BY_NAME.items() if cls is type(initializer)), None)
    if name is None:
        return custom_objects.serialize(initializer, "initializer")
    return {"class_name": name, "config": initializer.get_config()}
