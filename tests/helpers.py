"""Small helpers shared by the test modules."""
import numpy as np

import cnnkit


def tensor(array, device="cpu", requires_grad=False):
    """A tensor on ``device`` holding ``array`` (its dtype kept)."""
    return cnnkit.Tensor(np.asarray(array), requires_grad=requires_grad, device=device)


def randn(rng, *shape, device="cpu", requires_grad=True):
    """A float64 tensor of standard-normal values, for gradient checks."""
    return tensor(rng.standard_normal(shape), device, requires_grad)
