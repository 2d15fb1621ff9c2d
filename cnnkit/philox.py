"""Philox4x32-10, the counter-based generator behind dropout and augmentation on every device.

Philox (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) turns
a 128-bit counter and a 64-bit key into four random 32-bit words by ten rounds of
multiply-and-xor. Nothing is carried from one draw to the next, so a draw is a pure
function of (key, counter): the NumPy code here and the CUDA dropout kernel
(``kernels/elementwise.cu``) give the same bits for the same arguments, and no
generator object is made per call.

cnnkit's convention, shared with the kernel: a draw is keyed by the seed, and its
``stream`` (the call counter of :func:`cnnkit.backend.next_random_stream`) fills the
upper 64 bits of the counter; word ``i`` of the draw is word ``i % 4`` of the block
whose lower 64 counter bits are ``i // 4``. The code is written against ``xp`` and
runs unchanged on CuPy arrays.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

ROUNDS = 10
_MULTIPLIERS = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_KEY_STEPS = (0x9E3779B9, 0xBB67AE85)  # the golden ratio and sqrt(3) - 1, as 32-bit fractions
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


def philox4x32_10(c0, c1, c2, c3, key: tuple[int, int]) -> tuple:
    """The ten Philox rounds on four arrays of 32-bit counter words (held in uint64 arrays).

    Args:
        c0, c1, c2, c3: the counter words, low to high, as uint64 arrays of one shape.
        key: the two 32-bit key words (low, high).

    Returns:
        The four output words, uint64 arrays with values below 2^32.
    """
    k0, k1 = key
    for round_index in range(ROUNDS):
        if round_index > 0:  # the key is bumped between rounds (the Weyl sequence)
            k0 = (k0 + _KEY_STEPS[0]) & 0xFFFFFFFF
            k1 = (k1 + _KEY_STEPS[1]) & 0xFFFFFFFF
        product0 = c0 * _MULTIPLIERS[0]  # both factors < 2^32: exact in 64 bits
        product1 = c2 * _MULTIPLIERS[1]
        c0, c1, c2, c3 = ((product1 >> _SHIFT32) ^ c1 ^ np.uint64(k0), product1 & _LOW32,
                          (product0 >> _SHIFT32) ^ c3 ^ np.uint64(k1), product0 & _LOW32)
    return c0, c1, c2, c3


def random_words(xp, seed: int, stream: int, count: int) -> Any:
    """``count`` random uint32 words of draw ``stream`` under ``seed``, made with ``xp`` (NumPy or CuPy).

    Args:
        seed: the 64-bit key (taken modulo 2^64).
        stream: the draw's 64-bit counter (modulo 2^64): different streams never overlap.
        count: how many words.
    """
    seed, stream = int(seed) % 2**64, int(stream) % 2**64
    blocks = xp.arange(-(-count // 4), dtype=np.uint64)
    high = xp.full(blocks.shape, stream, dtype=np.uint64)
    words = philox4x32_10(blocks & _LOW32, blocks >> _SHIFT32, high & _LOW32, high >> _SHIFT32,
                          (seed & 0xFFFFFFFF, seed >> 32))
    return xp.stack(words, axis=1).ravel()[:count].astype(np.uint32)


def uniform(xp, seed: int, stream: int, shape: tuple, dtype: Any = np.float64) -> Any:
    """Uniform [0, 1) values of ``shape`` from draw ``stream`` under ``seed``, made with ``xp``.

    float32 values take the top 24 bits of one word (k · 2^-24); float64 values 53
    bits from two consecutive words (NumPy's construction): every value is exactly
    representable and the grid is even.
    """
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    if dtype == np.float32:
        words = random_words(xp, seed, stream, count)
        return ((words >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)).reshape(shape)
    if dtype == np.float64:
        words = random_words(xp, seed, stream, 2 * count).reshape(count, 2).astype(np.uint64)
        bits = ((words[:, 0] >> np.uint64(5)) << np.uint64(26)) | (words[:, 1] >> np.uint64(6))
        return (bits.astype(np.float64) * 2.0**-53).reshape(shape)
    raise ValueError(f"uniform: dtype must be float32 or float64, got {dtype}")


def dropout_threshold(rate: float) -> int:
    """The uint32 a random word must reach to keep its element: ceil(rate · 2^32), at most 2^32 − 1.

    A word is below it with probability rate (to within 2^-32). Dropout keeps element i
    of a draw when word i reaches it, on the CPU and in the CUDA kernel alike.
    """
    return min(math.ceil(rate * 2**32), 2**32 - 1)
