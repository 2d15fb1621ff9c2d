"""Inverted dropout (Srivastava et al., 2014).

In training each element is kept with probability 1 − rate and scaled by 1/(1 − rate),
so the expected output equals the input and inference needs no rescaling:

    y = x · mask,  mask = [r ≥ ⌈rate · 2^32⌉] / (1 − rate);   gx = gy · mask

with r the element's 32-bit Philox word (see :mod:`cnnkit.philox`): element i of a draw
takes word i, so the reference and the CUDA kernel make the very same mask.
"""
from __future__ import annotations

from .. import backend, philox
from ..autograd import Function, Tensor, as_tensor
from ..registry import impl, register


@register("dropout")
def dropout_reference(x, rate: float, seed: int, stream: int):
    """Reference inverted dropout.

    Args:
        x: float array of any shape.
        rate: probability of dropping an element, in [0, 1).
        seed, stream: the Philox draw (see :func:`cnnkit.backend.next_random_stream`);
            element i (in C order) is kept when word i of the draw reaches
            :func:`cnnkit.philox.dropout_threshold`.

    Returns:
        ``(y, mask)``, both of x's shape and dtype: mask holds 0 or 1/(1 − rate), y = x · mask.
    """
    xp = backend.get_array_module(x)
    words = philox.random_words(xp, seed, stream, x.size).reshape(x.shape)
    mask = xp.multiply(words >= philox.dropout_threshold(rate), x.dtype.type(1 / (1 - rate)), dtype=x.dtype)
    return x * mask, mask


class Dropout(Function):
    """y = x · mask with the mask of Philox draw (seed, stream);  gx = gy · mask.  Saves the mask."""

    def __init__(self, rate: float, seed: int, stream: int):
        self.rate, self.seed, self.stream = rate, seed, stream

    def forward(self, x):
        y, self.mask = impl("dropout", x, self.rate, self.seed, self.stream)
        return y

    def backward(self, gy):
        return gy * self.mask


def dropout(x, rate: float, training: bool = True) -> Tensor:
    """Inverted dropout: in training, zero each element with probability ``rate`` and scale
    the survivors by 1/(1 − rate); the identity in inference or when ``rate`` is 0.

    The mask is the next draw of cnnkit's Philox stream, so :func:`cnnkit.manual_seed`
    makes it reproducible, and the same on the CPU and on a GPU.

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
    return Dropout(float(rate), *backend.next_random_stream())(x)
