"""Pooling and the convolution input gradient run as their references on slices of the batch.

Each op's samples are independent, so the batch splits into contiguous slices, the
reference runs on each slice in the thread pool, and the results are concatenated
along the batch axis. What a forward saves for its backward is kept per slice.

Only ops that measured faster this way are here (figures in bench/README.md, "Why
the CPU backend looks as it does"): pooling (its element-wise work runs on one core
otherwise) and the convolution input gradient (its col2im scatter), which
:mod:`cnnkit.cpu.conv` uses for the convolutions it does not lower to wide rows. The
convolution forward and filter gradient are bound by their products, which BLAS
already spreads over every core: sharding them gained nothing and the join cost a copy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..registry import CPU, USE_REFERENCE, reference, register
from .threads import get_num_threads, run_all

# Below this many samples per slice the threads cost more than they save.
MIN_SAMPLES_PER_SHARD = 8
# Nor is a slice of fewer values worth a thread: handing work to another thread costs
# microseconds on a quiet machine but a scheduler time slice (milliseconds) when another
# process holds a core, and `cnnkit bench` on a loaded 2-core machine measured 2x2 max
# pooling of 32 x 32 x 28 x 28 values at 0.7 ms whole and ~10 ms split in two
# (bench/results/2026-12-05-threads-*.json). Slices of 2^20 values or more (a few ms of
# work) keep the gain sharding measured on a quiet machine for the large batches.
MIN_VALUES_PER_SHARD = 2**20


def batch_slices(batch: int, sample_size: int = MIN_VALUES_PER_SHARD) -> list[slice]:
    """Up to one contiguous slice per thread, each with at least MIN_SAMPLES_PER_SHARD samples and
    MIN_VALUES_PER_SHARD values (``sample_size`` values per sample)."""
    count = max(1, min(get_num_threads(), batch // MIN_SAMPLES_PER_SHARD,
                       batch * sample_size // MIN_VALUES_PER_SHARD))
    bounds = [batch * i // count for i in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]


@dataclass
class PerShard:
    """What a sharded forward saved: one reference ``saved`` per batch slice."""

    slices: list
    pieces: list


def _join(parts: list):
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def _sliced_shape(shape: tuple, piece: slice) -> tuple:
    return (piece.stop - piece.start,) + tuple(shape[1:])


def conv_backward_data_sharded(gy, W, input_shape, geometry, groups):
    slices = batch_slices(gy.shape[0], math.prod(input_shape[1:]))
    return _join(run_all([partial(reference("conv_backward_data"), gy[s], W, _sliced_shape(input_shape, s),
                                  geometry, groups) for s in slices]))


@register("pool_forward", CPU)
def pool_forward_sharded(x, mode, geometry):
    slices = batch_slices(x.shape[0], math.prod(x.shape[1:]))
    results = run_all([partial(reference("pool_forward"), x[s], mode, geometry) for s in slices])
    return _join([y for y, _ in results]), PerShard(slices, [saved for _, saved in results])


@register("pool_backward", CPU)
def pool_backward_sharded(gy, saved, input_shape, mode, geometry):
    if not isinstance(saved, PerShard):  # the forward ran elsewhere
        return USE_REFERENCE
    return _join(run_all([partial(reference("pool_backward"), gy[s], piece, _sliced_shape(input_shape, s), mode,
                                  geometry) for s, piece in zip(saved.slices, saved.pieces)]))
