"""Differentiable functions on tensors (the Chainer ``functions`` / PyTorch ``functional``).

Each family module holds its :class:`~cnnkit.autograd.Function` classes, the plain
functions users call, and the NumPy references registered for the heavy ops.
"""
from .activation import elu, erf, gelu, leaky_relu, log_softmax, maxout, relu, sigmoid, silu, softmax, swish, tanh
from .conv import conv, conv1d, conv2d, conv3d
from .dropout import dropout
from .loss import sigmoid_binary_cross_entropy, softmax_cross_entropy
from .math import abs, add, cast, clip, div, exp, log, maximum, mul, neg, power, sqrt, sub, sum_to_shape, to_device
from .matmul import linear, matmul
from .norm import batch_norm
from .pool import avg_pool, global_avg_pool, global_max_pool, l2_pool, max_pool, pool
from .reduce import max, mean, min, sum
from .shape import broadcast_to, concatenate, flatten, get_item, pad, reshape, transpose
