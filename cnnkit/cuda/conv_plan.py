"""How a convolution is cut up for the kernels in ``kernels/conv.cu`` (pure Python, tested on the CPU).

:class:`ConvShape` is a problem in the kernels' 3-D form. The planners pick, for each
pass, either the depthwise direct kernel (:func:`plan_depthwise`) or an implicit-GEMM
tile and split-K (:func:`plan_gemm`), from a small cost model of an H100-class GPU:

- compute: the busiest SM runs ``ceil(blocks / SMs)`` blocks, in rounds of at most
  ``blocks_per_sm`` at once; a tile's FMAs (padded K steps and partial tiles included) run at 128 per
  cycle times the tile's efficiency (its share of FFMA among the instructions of the
  inner loop), and times sqrt(warps / 16) when fewer than 16 warps are resident to hide
  latency;
- memory: the bytes the pass must move at ~1.7 KB per cycle (3 TB/s at 1.75 GHz);
- split-K: each extra slice writes, and the reduction reads, a full copy of the output.

The estimate only ranks the candidates; the GPU measurements decide the constants.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..window import WindowGeometry
from .launcher import ceil_div

_INT_LIMIT = 2**31 - 2**20  # 32-bit offsets in the kernels, with room for tile overhang
_GRID_YZ_LIMIT = 65535
_BK = 8  # K step of every implicit-GEMM kernel (CONV_BK)
_FMA_PER_SM_CYCLE = 128
_BYTES_PER_CYCLE = 1700
_WARPS_TO_HIDE_LATENCY = 16
_MIN_K_PER_SLICE = 64
_MAX_SLICES = 1024
DEPTHWISE_POSITIONS = 4  # per thread (DEPTHWISE_POSITIONS in conv.cu)
DEPTHWISE_MAX_THREADS = 256
DEFAULT_SHARED_LIMIT = 48 * 1024


@dataclass(frozen=True)
class ConvShape:
    """A convolution in the kernels' 3-D form: a 2-D problem has D = 1, a 1-D one D = H = 1.

    ``padding`` holds the padding before each axis only: the padding after is already in
    the output size.
    """

    N: int
    C: int
    D: int
    H: int
    W: int
    F: int
    KD: int
    KH: int
    KW: int
    OD: int
    OH: int
    OW: int
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int

    @classmethod
    def of(cls, x_shape: tuple, W_shape: tuple, geometry: WindowGeometry, groups: int) -> "ConvShape":
        """The 3-D form of x (N, C, *spatial) convolved with W (F, C / groups, *window)."""
        lead = 3 - geometry.rank
        spatial = (1,) * lead + tuple(x_shape[2:])
        window = (1,) * lead + tuple(geometry.window)
        out = (1,) * lead + tuple(geometry.output_size(x_shape[2:]))
        return cls(x_shape[0], x_shape[1], *spatial, W_shape[0], *window, *out,
                   stride=(1,) * lead + tuple(geometry.stride),
                   padding=(0,) * lead + tuple(before for before, _ in geometry.padding),
                   dilation=(1,) * lead + tuple(geometry.dilation), groups=groups)

    def args(self) -> tuple:
        """The 22 ints of CONV_SHAPE_PARAMS, in order."""
        return (self.N, self.C, self.D, self.H, self.W, self.F, self.KD, self.KH, self.KW, self.OD, self.OH, self.OW,
                *self.stride, *self.padding, *self.dilation, self.groups)

    @property
    def Cg(self) -> int:
        return self.C // self.groups

    @property
    def Fg(self) -> int:
        return self.F // self.groups

    @property
    def taps(self) -> int:
        return self.KD * self.KH * self.KW

    @property
    def in_positions(self) -> int:
        return self.D * self.H * self.W

    @property
    def out_positions(self) -> int:
        return self.OD * self.OH * self.OW

    @property
    def classes(self) -> int:
        """Stride residue classes visited by backward-data."""
        return math.prod(self.stride)

    @property
    def is_depthwise(self) -> bool:
        return self.groups == self.C and self.C > 1

    def fits_int32(self) -> bool:
        """Whether every offset the kernels form stays below 2^31 (else the reference runs).

        Bounds x and y, the padded input, and the output positions backward-data reaches
        from the input (up to (I + P) / S + 1 per axis, with dilated taps subtracted).
        """
        sizes = (self.D, self.H, self.W)
        windows = (self.KD, self.KH, self.KW)
        outs = (self.OD, self.OH, self.OW)
        extent = math.prod(i + 2 * p + (k - 1) * d + 1 + o for i, p, k, d, o in
                           zip(sizes, self.padding, windows, self.dilation, outs))
        largest = self.N * max(self.C, self.F) * extent
        return max(largest, self.F * self.Cg * self.taps) < _INT_LIMIT


# ---------------------------------------------------------------- implicit GEMM

@dataclass(frozen=True)
class Tile:
    """One implicit-GEMM block tile of conv.cu (CONV_IGEMM_ENTRIES)."""

    name: str
    rows: int
    cols: int
    threads: int
    blocks_per_sm: int  # __launch_bounds__ minimum, i.e. at most 128 registers
    efficiency: float  # estimated FFMA share of the inner loop (outputs per thread)


TILES = (
    Tile("128x128", 128, 128, 256, 2, 0.80),
    Tile("128x64", 128, 64, 128, 4, 0.78),
    Tile("64x64", 64, 64, 128, 4, 0.66),
    Tile("128x32", 128, 32, 128, 4, 0.66),
    Tile("128x16", 128, 16, 128, 4, 0.5),
    Tile("32x32", 32, 32, 64, 8, 0.5),
    Tile("32x16", 32, 16, 32, 16, 0.5),
)
PASSES = ("forward", "backward_data", "backward_filter")


@dataclass(frozen=True)
class GemmPlan:
    """Which implicit-GEMM kernel runs a pass and how it is cut up."""

    kernel_name: str
    tile: Tile
    slices: int  # K slices (split-K); more than one needs conv_splitk_reduce_f32
    k_chunk: int  # K elements per slice, a multiple of 8
    grid: tuple
    cycles: float  # the cost model's estimate, for comparisons only


def gemm_problem(pass_name: str, shape: ConvShape) -> tuple[int, int, int, int]:
    """(M, N, K, batches) of a pass's matrix product; batches = grid z without slices.

    Backward-data runs one product per stride residue class: M and K are the largest
    over the classes (ceil(I / S) positions and ceil(k / tap step) taps per axis).
    """
    if pass_name == "forward":
        return shape.N * shape.out_positions, shape.Fg, shape.Cg * shape.taps, shape.groups
    if pass_name == "backward_data":
        rows, taps = shape.N, 1
        for size, k, s, d in zip((shape.D, shape.H, shape.W), (shape.KD, shape.KH, shape.KW), shape.stride,
                                 shape.dilation):
            rows *= ceil_div(size, s)
            taps *= ceil_div(k, s // math.gcd(s, d))
        return rows, shape.Cg, shape.Fg * taps, shape.groups * shape.classes
    if pass_name == "backward_filter":
        return shape.Fg, shape.Cg * shape.taps, shape.N * shape.out_positions, shape.groups
    raise ValueError(f"pass must be one of {', '.join(PASSES)}, got {pass_name!r}")


def modeled_cycles(tile: Tile, M: int, N: int, K: int, batches: int, slices: int, sm_count: int,
                   io_bytes: int, out_elements: int) -> float:
    """The cost model of the module docstring, in GPU cycles."""
    blocks = ceil_div(M, tile.rows) * ceil_div(N, tile.cols) * batches * slices
    k_slice = max(ceil_div(ceil_div(K, slices), _BK) * _BK, _BK)
    per_sm = ceil_div(blocks, sm_count)
    block_fmas = tile.rows * tile.cols * k_slice

    def round_cycles(resident: int) -> float:  # `resident` blocks sharing one SM from start to end
        warps = resident * tile.threads // 32
        rate = _FMA_PER_SM_CYCLE * tile.efficiency * min(1.0, math.sqrt(warps / _WARPS_TO_HIDE_LATENCY))
        return resident * block_fmas / rate

    full_rounds, rest = divmod(per_sm, tile.blocks_per_sm)
    compute = full_rounds * round_cycles(tile.blocks_per_sm) + (round_cycles(rest) if rest else 0.0)
    memory = io_bytes / _BYTES_PER_CYCLE
    reduction = (2 * slices + 1) * out_elements * 4 / _BYTES_PER_CYCLE if slices > 1 else 0.0
    return max(compute, memory) + reduction


def _slice_counts(K: int, batches: int) -> list[int]:
    most = max(1, min(_MAX_SLICES, K // _MIN_K_PER_SLICE, _GRID_YZ_LIMIT // batches))
    counts, s = [], 1
    while s <= most:
        counts.append(s)
        s *= 2
    if counts[-1] != most:
        counts.append(most)
    return counts


def plan_gemm(pass_name: str, shape: ConvShape, sm_count: int, tiles: tuple = TILES) -> GemmPlan | None:
    """The cheapest (tile, split-K) for a pass by :func:`modeled_cycles`.

    Returns None when the grid cannot be launched (more than 65535 groups × residue
    classes, or too many column tiles); the caller then runs the reference.
    """
    M, N, K, batches = gemm_problem(pass_name, shape)
    if batches > _GRID_YZ_LIMIT:
        return None
    in_elements = shape.N * shape.C * shape.in_positions
    out_elements = shape.N * shape.F * shape.out_positions
    weight_elements = shape.F * shape.Cg * shape.taps
    io_bytes = 4 * (in_elements + out_elements + weight_elements)
    result_elements = {"forward": out_elements, "backward_data": in_elements, "backward_filter": weight_elements}[pass_name]
    best = None
    for tile in tiles:
        if ceil_div(N, tile.cols) > _GRID_YZ_LIMIT:
            continue
        for wanted in _slice_counts(K, batches):
            k_chunk = ceil_div(ceil_div(K, wanted), _BK) * _BK
            slices = ceil_div(K, k_chunk)  # no empty slice
            cycles = modeled_cycles(tile, M, N, K, batches, slices, sm_count, io_bytes, result_elements)
            if best is None or cycles < best.cycles:
                grid = (ceil_div(M, tile.rows), ceil_div(N, tile.cols), batches * slices)
                best = GemmPlan(f"conv_{pass_name}_f32_{tile.name}", tile, slices, k_chunk, grid, cycles)
    return best


# ---------------------------------------------------------------- depthwise

@dataclass(frozen=True)
class DepthwisePlan:
    """Tile, block and shared memory of a depthwise kernel launch (see conv.cu)."""

    kernel_name: str
    tile_h: int
    tile_w: int
    threads: int
    shared_memory: int  # bytes of dynamic shared memory
    grid: tuple

    @property
    def slices(self) -> int:
        """Partial results backward-filter leaves for conv_splitk_reduce_f32: one per block of a channel."""
        return self.grid[0] * self.grid[2]


def _halo(tile: int, stride: int, taps: int, dilation: int) -> int:
    return (tile - 1) * stride + (taps - 1) * dilation + 1


def _reach(tile: int, stride: int, taps: int, dilation: int) -> int:
    return ((tile - 1) + (taps - 1) * dilation) // stride + 1


def depthwise_shared_floats(pass_name: str, shape: ConvShape, tile_h: int, tile_w: int, threads: int) -> int:
    """Dynamic shared memory of a depthwise kernel, in 4-byte words (as each kernel checks it)."""
    mult, taps = shape.F // shape.C, shape.taps
    (sd, sh, sw), (dd, dh, dw) = shape.stride, shape.dilation
    if pass_name == "backward_data":
        reach = (_reach(1, sd, shape.KD, dd) * _reach(tile_h, sh, shape.KH, dh) * _reach(tile_w, sw, shape.KW, dw))
        return mult * reach + mult * taps
    halo = shape.KD * _halo(tile_h, sh, shape.KH, dh) * _halo(tile_w, sw, shape.KW, dw)
    if pass_name == "forward":
        return halo + mult * taps
    positions = tile_h * tile_w
    return halo + mult * positions + positions + max(mult * taps, threads)


def plan_depthwise(pass_name: str, shape: ConvShape, shared_limit: int = DEFAULT_SHARED_LIMIT) -> DepthwisePlan | None:
    """Tile for a depthwise pass, or None when its shared memory or grid does not fit.

    The tile spans whole rows where it can (up to 1024 positions of one plane: coalesced
    rows, and few halo columns), and is halved until its shared memory fits.
    """
    if pass_name not in PASSES:
        raise ValueError(f"pass must be one of {', '.join(PASSES)}, got {pass_name!r}")
    if not shape.is_depthwise or shape.C > _GRID_YZ_LIMIT or shape.N > _GRID_YZ_LIMIT:
        return None
    planes, rows, cols = ((shape.D, shape.H, shape.W) if pass_name == "backward_data"
                          else (shape.OD, shape.OH, shape.OW))
    tile_w = min(cols, 1024)
    tile_h = min(rows, max(1, 1024 // tile_w))
    while True:
        threads = min(DEPTHWISE_MAX_THREADS, ceil_div(ceil_div(tile_h * tile_w, DEPTHWISE_POSITIONS), 32) * 32)
        shared = 4 * depthwise_shared_floats(pass_name, shape, tile_h, tile_w, threads)
        if shared <= shared_limit:
            break
        if tile_h > 1:
            tile_h = ceil_div(tile_h, 2)
        elif tile_w > 1:
            tile_w = ceil_div(tile_w, 2)
        else:
            return None
    grid = (planes * ceil_div(rows, tile_h) * ceil_div(cols, tile_w), shape.C, shape.N)
    return DepthwisePlan(f"conv_depthwise_{pass_name}_f32", tile_h, tile_w, threads, shared, grid)
