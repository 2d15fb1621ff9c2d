"""Inverted dropout (Srivastava et al., 2014).

In training each element is kept with probability 1 − rate and scaled by 1/(1 − rate),
so the expected output equals the input and inference needs no rescaling:

    y = x · mask,  mask = [u ≥ rate] / (1 − rate),  u ~ U[0, 1);   gx = gy · mask
"""
from __future__ import annotations

from .. import backend
from ..autograd import Function, Tensor, as_tensor
from ..registry import impl, register


@register("dropout")
def dropout_reference(x, rate: float, seed: int):
    """Reference inverted dropout.

    Args:
        x: float array of any shape.
        rate: probability of dropping an element, in [0, 1).
        seed: integer seed; the uniforms are ``backend.uniform_on(xp, seed, x.shape, x.dtype)``.

    Returns:
        ``(y, mask)``, both of x's shape and dtype: mask holds 0 or 1/(1 − rate), y = x · mask.
    """
    xp = backend.get_array_module(x)
    uniforms = backend.uniform_on(xp, seed, x.shape, x.dtype)
    kept = uniforms >= rate
    mask = xp.multiply(kept, x.dtype.type(1 / (1 - rate)), out=uniforms)  # reuse the uniforms' memory
    return x * mask, mask


class Dropout(Function):
    """y = x · mask with a mask drawn from ``seed``;  gx = gy · mask.  Saves the mask."""

    def __init__(self, rate: float, seed: int):
        self.rate, self.seed = rate, seed

    def forward(self, x):
        y, self.mask = impl("dropout", x, self.rate, self.seed)
        return y

    def backward(self, gy):
        return gy * self.mask


def dropout(x, rate: float, training: bool = True) -> Tensor:
    """Inverted dropout: in training, zero each element with probability ``rate`` and scale
    the survivors by 1/(1 − rate); the identity in inference or when ``rate`` is 0.

    The mask's seed comes from cnnkit's global generator, so :func:`cnnkit.manual_seed`
    makes it reproducible on every device.

    Args:
        x: float tensor.
        rate: drop probability, in [0, 1).
        training: drop only when True.

    Returns:
        A tensor of x's shape and dtype (``x`` itself when nothing is dropped).
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be a number in [0, 1), got {rate!r}")
    x = as_tensor(x)
    if not training or rate == 0:
        return x
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: x must be a float tensor, got dtype {x.dtype}")
    return Dropout(float(rate), backend.draw_seed())(x)
