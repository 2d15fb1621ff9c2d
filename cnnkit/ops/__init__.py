"""Differentiable functions on tensors (the Chainer ``functions`` / PyTorch ``functional``).

Each family module holds its :class:`~cnnkit.autograd.Function` classes, the plain
functions users call, and the NumPy references registered for the heavy ops.
"""
from .math import abs, add, cast, clip, div, exp, log, maximum, mul, neg, power, sqrt, sub, sum_to_shape, to_device
from .matmul import linear, matmul
from .reduce import max, mean, min, sum
from .shape import broadcast_to, concatenate, flatten, get_item, pad, reshape, transpose
