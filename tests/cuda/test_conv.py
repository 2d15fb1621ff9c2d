"""The CUDA convolution: planning and argument checks (CPU), the nvcc build of conv.cu, and
the kernels against the float64 reference (GPU)."""
import importlib
import re
import shutil
import subprocess

import numpy as np
import pytest

import cnnkit
from cnnkit import backend, registry
from cnnkit.cuda import conv as cuda_conv
from cnnkit.cuda import conv_plan, launcher
from cnnkit.cuda.launcher import ceil_div
from cnnkit.cuda.conv_plan import TILES, ConvShape, GemmPlan, gemm_problem, plan_depthwise, plan_gemm
from cnnkit.layers import Conv2D
from cnnkit.window import make_geometry
from tests.cuda.launch_recorder import fake, is_fake, kernel_entries

conv_ops = importlib.import_module("cnnkit.ops.conv")  # the package re-exports a function named conv



def shape_of(x_shape, W_shape, stride=1, padding="valid", dilation=1, groups=1) -> ConvShape:
    geometry = make_geometry(len(W_shape) - 2, W_shape[2:], stride, padding, dilation, x_shape[2:])
    return ConvShape.of(x_shape, W_shape, geometry, groups)


# (x shape, W shape, stride, padding, dilation, groups): the benchmark target shapes (bench/README.md)
ANCHORS = [
    ((256, 1, 28, 28), (32, 1, 3, 3), 1, 1, 1, 1),
    ((256, 32, 14, 14), (64, 32, 3, 3), 1, 1, 1, 1),
    ((64, 128, 28, 28), (128, 128, 3, 3), 1, 1, 1, 1),
    ((64, 256, 14, 14), (256, 256, 3, 3), 1, 1, 1, 1),
]


# ---------------------------------------------------------------- kernel sources (CPU)

def test_every_kernel_the_wrapper_can_launch_exists_in_conv_cu():
    names = kernel_entries("conv.cu")
    assert cuda_conv.kernel_names() <= names
    assert {"conv_splitk_reduce_f32", "conv_depthwise_forward_f32", "conv_depthwise_backward_data_f32",
            "conv_depthwise_backward_filter_f32"} <= names


def test_tiles_match_the_kernel_entries():
    source = launcher.read_kernel_source("conv.cu")
    entries = re.findall(r"^CONV_(FORWARD|BACKWARD_DATA|BACKWARD_FILTER)_ENTRY\(conv_\w+_f32_(\w+), (\d+), (\d+), "
                         r"(\d+), (\d+), (\d+)\)", source, re.MULTILINE)
    for pass_entry in ("FORWARD", "BACKWARD_DATA", "BACKWARD_FILTER"):
        declared = {name: (int(bm), int(bn), 32 * (int(bm) // int(wm)) * (int(bn) // int(wn)), int(blocks))
                    for entry, name, bm, bn, wm, wn, blocks in entries if entry == pass_entry}
        assert declared == {t.name: (t.rows, t.cols, t.threads, t.blocks_per_sm) for t in TILES}, pass_entry


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_conv_cu_compiles_for_sm90_without_spills(tmp_path):  # .ci/compile_kernels.sh also builds sm_80
    source = launcher.kernel_source_dir() / "conv.cu"
    result = subprocess.run(["nvcc", "-cubin", "-arch=sm_90", "-Xptxas", "-v", "-o", str(tmp_path / "conv.cubin"),
                             str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    reports = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", result.stderr)
    assert len(reports) == len(kernel_entries("conv.cu"))
    assert all(stores == loads == "0" for stores, loads in reports), result.stderr


# ---------------------------------------------------------------- planning (CPU)

def test_every_rank_becomes_3d():
    one = shape_of((2, 3, 11), (4, 3, 3), stride=2, padding=((1, 2),), dilation=2)
    assert one.args() == (2, 3, 1, 1, 11, 4, 1, 1, 3, 1, 1, 5, 1, 1, 2, 0, 0, 1, 1, 1, 2, 1)
    two = shape_of((1, 4, 7, 6), (6, 2, 3, 2), stride=(2, 1), padding="same", groups=2)
    assert (two.D, two.H, two.W, two.OD, two.OH, two.OW, two.padding) == (1, 7, 6, 1, 4, 6, (0, 1, 0))
    three = shape_of((1, 2, 5, 4, 6), (2, 2, 3, 2, 3), stride=(1, 2, 2), padding=1)
    assert (three.KD, three.OD, three.OH, three.OW) == (3, 5, 3, 3)


def test_int32_limit_sends_huge_problems_to_the_reference():
    assert shape_of((64, 256, 56, 56), (256, 256, 3, 3), padding=1).fits_int32()
    assert not shape_of((1024, 512, 64, 64), (512, 512, 3, 3), padding=1).fits_int32()


@pytest.mark.parametrize("case", ANCHORS + [((1, 256, 14, 14), (256, 256, 3, 3), 1, 1, 1, 1),
                                            ((7, 5, 13, 11), (9, 5, 3, 3), 2, "same", 2, 1),
                                            ((2, 64, 9, 9), (64, 8, 4, 4), 3, 0, 1, 8)])
@pytest.mark.parametrize("pass_name", conv_plan.PASSES)
def test_gemm_plans_cover_k_and_stay_in_grid_limits(case, pass_name):
    x_shape, W_shape, stride, padding, dilation, groups = case
    shape = shape_of(x_shape, W_shape, stride, padding, dilation, groups)
    plan = plan_gemm(pass_name, shape, sm_count=132)
    M, N, K, batches = gemm_problem(pass_name, shape)
    assert plan.kernel_name == f"conv_{pass_name}_f32_{plan.tile.name}"
    assert plan.k_chunk % 8 == 0
    assert (plan.slices - 1) * plan.k_chunk < K <= plan.slices * plan.k_chunk  # no empty slice
    assert plan.grid == (-(-M // plan.tile.rows), -(-N // plan.tile.cols), batches * plan.slices)
    assert plan.grid[1] <= 65535 and plan.grid[2] <= 65535


def test_tiles_follow_the_number_of_output_channels():
    first, second, third, fourth = (shape_of(*case) for case in ANCHORS)
    assert plan_gemm("forward", first, 132).tile.name == "128x32"  # F = 32: no padded columns
    assert plan_gemm("forward", second, 132).tile.cols == 64
    assert plan_gemm("forward", third, 132).tile.name == "128x128"
    assert plan_gemm("forward", fourth, 132).tile.name == "128x128"
    assert plan_gemm("backward_data", first, 132).tile.cols == 16  # C = 1: the narrowest tile


@pytest.mark.parametrize("case", ANCHORS + [((1, 256, 14, 14), (256, 256, 3, 3), 1, 1, 1, 1),
                                            ((8, 512, 7, 7), (512, 512, 3, 3), 1, 1, 1, 1)])
def test_small_problems_are_split_to_fill_the_sms(case):
    shape = shape_of(*case)
    for pass_name in conv_plan.PASSES:
        plan = plan_gemm(pass_name, shape, 132)
        assert plan.grid[0] * plan.grid[1] * plan.grid[2] >= 132, (pass_name, plan)


def test_backward_data_visits_each_stride_class():
    shape = shape_of((2, 3, 9, 10), (5, 3, 3, 4), stride=(2, 3), padding="same", dilation=(1, 2))
    M, N, K, batches = gemm_problem("backward_data", shape)
    assert batches == 6  # stride 2 × 3 residue classes
    assert M == 2 * 5 * 4  # ceil(9 / 2) × ceil(10 / 3) positions per class
    assert K == 5 * 2 * 2  # per class at most ceil(3 / 2) × ceil(4 / (3 / gcd(3, 2))) taps


@pytest.mark.parametrize("pass_name", conv_plan.PASSES)
@pytest.mark.parametrize("x_shape,W_shape,stride,dilation", [
    ((64, 32, 112, 112), (32, 1, 3, 3), 1, 1),
    ((8, 16, 7, 7), (48, 1, 5, 5), 2, 1),
    ((2, 3, 4000), (3, 1, 9), 1, 3),
    ((2, 4, 6, 20, 20), (8, 1, 3, 3, 3), 2, 2),
])
def test_depthwise_plans_fit_their_shared_memory_and_threads(pass_name, x_shape, W_shape, stride, dilation):
    shape = shape_of(x_shape, W_shape, stride, "same", dilation, groups=x_shape[1])
    plan = plan_depthwise(pass_name, shape)
    assert plan.kernel_name == f"conv_depthwise_{pass_name}_f32"
    assert plan.shared_memory <= conv_plan.DEFAULT_SHARED_LIMIT
    assert plan.shared_memory == 4 * conv_plan.depthwise_shared_floats(pass_name, shape, plan.tile_h, plan.tile_w,
                                                                       plan.threads)
    assert plan.threads % 32 == 0 and plan.threads <= 256
    assert plan.threads * conv_plan.DEPTHWISE_POSITIONS >= plan.tile_h * plan.tile_w
    planes, rows, cols = ((shape.D, shape.H, shape.W) if pass_name == "backward_data" else (shape.OD, shape.OH, shape.OW))
    assert plan.grid == (planes * -(-rows // plan.tile_h) * -(-cols // plan.tile_w), shape.C, shape.N)


def test_depthwise_plan_refuses_what_it_cannot_hold():
    huge_window = shape_of((1, 2, 300, 300), (2, 1, 99, 99), padding="same", groups=2)
    assert plan_depthwise("forward", huge_window) is None
    single_channel = shape_of((4, 1, 28, 28), (32, 1, 3, 3), padding=1)  # groups = C = 1: a normal conv
    assert not single_channel.is_depthwise and plan_depthwise("forward", single_channel) is None
    with pytest.raises(ValueError, match="pass must be one of forward, backward_data, backward_filter, got 'fwd'"):
        plan_depthwise("fwd", single_channel)


# ---------------------------------------------------------------- argument checks (CPU)

def zeros(shape, dtype=np.float32, device=0):
    return fake(np.zeros(shape, dtype), device=device)


def forward_args(x=None, weight=None, bias=None, y=None, pad_h=1):
    shape = shape_of((2, 3, 8, 8), (4, 3, 3, 3), padding=1)
    args = list(shape.args())
    args[SHAPE_INDEX["pad_h"]] = pad_h
    return (x if x is not None else zeros((2, 3, 8, 8)), weight if weight is not None else zeros((4, 3, 3, 3)),
            bias, y if y is not None else zeros((2, 4, 8, 8)), *args, 32)


SHAPE_INDEX = {name: i for i, name in enumerate(cuda_conv.SHAPE_NAMES)}
FORWARD = cuda_conv.GEMM_KERNELS[("forward", "128x32")]


def test_kernel_declarations_accept_valid_arguments():
    checked = FORWARD.check(forward_args(), 0, is_device_array=is_fake)
    assert checked[2] is None and all(type(v) is np.int32 for v in checked[4:])
    for kernel in list(cuda_conv.GEMM_KERNELS.values()) + list(cuda_conv.DEPTHWISE_KERNELS.values()):
        names = [p.name for p in kernel.params]
        start = names.index("N")
        assert kernel.file_name == "conv.cu" and names[start:start + 22] == list(cuda_conv.SHAPE_NAMES)


def test_kernel_rejects_wrong_dtype_host_memory_and_other_devices():
    with pytest.raises(TypeError, match=r"^conv_forward_f32_128x32: argument 'x' must be a float32 CuPy array on cuda:0, "
                                        r"got a float64 CuPy array$"):
        FORWARD.check(forward_args(x=zeros((2, 3, 8, 8), np.float64)), 0, is_device_array=is_fake)
    with pytest.raises(TypeError, match=r"argument 'weight' must be a float32 CuPy array on cuda:0, "
                                        r"got a numpy.ndarray \(host memory\)"):
        FORWARD.check(forward_args(weight=np.zeros((4, 3, 3, 3), np.float32)), 0, is_device_array=is_fake)
    with pytest.raises(ValueError, match=r"argument 'y' must be a float32 CuPy array on cuda:0, "
                                         r"got a float32 CuPy array on cuda:1"):
        FORWARD.check(forward_args(y=zeros((2, 4, 8, 8), device=1)), 0, is_device_array=is_fake)
    with pytest.raises(TypeError, match=r"argument 'bias' must be a float32 CuPy array on cuda:0, got a float64"):
        FORWARD.check(forward_args(bias=zeros(4, np.float64)), 0, is_device_array=is_fake)
    with pytest.raises(ValueError, match=r"argument 'pad_h' must be an int32 in \[0, 2147483647\], got -1"):
        FORWARD.check(forward_args(pad_h=-1), 0, is_device_array=is_fake)
    strided = fake(np.zeros((2, 3, 8, 16), np.float32)[..., ::2])
    with pytest.raises(ValueError, match=r"argument 'x' must be C-contiguous"):
        FORWARD.check(forward_args(x=strided), 0, is_device_array=is_fake)


def test_operands_must_be_device_arrays_on_one_device():
    operands = {"x": zeros((2, 3, 8, 8)), "W": zeros((4, 3, 3, 3)), "b": None}
    assert cuda_conv.check_operands("conv_forward", operands, is_device_array=is_fake) == 0
    with pytest.raises(TypeError, match=r"^conv_forward: W must be a CuPy array, got a numpy.ndarray \(host memory\)$"):
        cuda_conv.check_operands("conv_forward", {**operands, "W": np.zeros((4, 3, 3, 3), np.float32)},
                                 is_device_array=is_fake)
    with pytest.raises(ValueError, match=r"^conv_forward: b is on cuda:1 but x is on cuda:0; all operands must be "
                                         r"on one device$"):
        cuda_conv.check_operands("conv_forward", {**operands, "b": zeros(4, device=1)}, is_device_array=is_fake)


def test_gradient_shape_is_checked():
    geometry = make_geometry(2, (3, 3), 1, "same", 1, (8, 8))
    cuda_conv.check_gradient_shape("conv_backward_data", (2, 4, 8, 8), (2, 3, 8, 8), (4, 3, 3, 3), geometry)
    with pytest.raises(ValueError, match=r"conv_backward_data: gy must have shape \(2, 4, 8, 8\) \(N, F, \*out\) "
                                         r"for input \(2, 3, 8, 8\) and weight \(4, 3, 3, 3\), got \(2, 4, 7, 8\)"):
        cuda_conv.check_gradient_shape("conv_backward_data", (2, 4, 7, 8), (2, 3, 8, 8), (4, 3, 3, 3), geometry)


# ---------------------------------------------------------------- the kernels (GPU)

def poison_pool(nbytes):
    """Leave NaN in CuPy's pool so an output element the kernel forgets to write shows up."""
    cupy = backend.cupy()
    junk = cupy.full(nbytes // 4 + 4096, np.nan, dtype=np.float32)
    del junk


def assert_fp32_close(got, want, K, what):
    """FP32 sums of K products of unit-normal values: rtol 1e-4, atol growing as √K (denormals flush to zero)."""
    got = backend.to_numpy(got)
    assert got.dtype == np.float32 and got.shape == want.shape, (what, got.dtype, got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.sqrt(K), err_msg=what)


@pytest.fixture
def launched(monkeypatch):
    """The names of the conv kernels launched during the test, in order."""
    names = []
    launch = launcher.Kernel.launch

    def recording(self, *args, **kwargs):
        names.append(self.name)
        return launch(self, *args, **kwargs)

    monkeypatch.setattr(launcher.Kernel, "launch", recording)
    return names


def check_all_passes(rng, x_shape, W_shape, stride=1, padding="valid", dilation=1, groups=1, bias=True):
    """Run the three kernels on fresh random inputs and compare each with the reference in float64 (on the GPU)."""
    cupy = backend.cupy()
    geometry = make_geometry(len(W_shape) - 2, W_shape[2:], stride, padding, dilation, x_shape[2:])
    x = cupy.asarray(rng.standard_normal(x_shape, dtype=np.float32))
    W = cupy.asarray(rng.standard_normal(W_shape, dtype=np.float32))
    b = cupy.asarray(rng.standard_normal(W_shape[0], dtype=np.float32)) if bias else None
    y_ref, cols = conv_ops.conv_forward_reference(x.astype(np.float64), W.astype(np.float64),
                                                  None if b is None else b.astype(np.float64), geometry, groups)
    gy = cupy.asarray(rng.standard_normal(y_ref.shape, dtype=np.float32))
    gx_ref = conv_ops.conv_backward_data_reference(gy.astype(np.float64), W.astype(np.float64), x_shape, geometry,
                                                   groups)
    gW_ref = conv_ops.conv_backward_filter_reference(gy.astype(np.float64), x.astype(np.float64), cols, W_shape,
                                                     geometry, groups)
    del cols
    poison_pool(4 * max(y_ref.size, x.size) * 3)
    y, saved = cuda_conv.conv_forward(x, W, b, geometry, groups)
    assert saved is None
    poison_pool(4 * x.size * 3)
    gx = cuda_conv.conv_backward_data(gy, W, x_shape, geometry, groups)
    poison_pool(4 * max(W.size * 64, y_ref.size))
    gW = cuda_conv.conv_backward_filter(gy, x, saved, W_shape, geometry, groups)
    Fg, taps = W_shape[0] // groups, int(np.prod(W_shape[2:]))
    assert_fp32_close(y, backend.to_numpy(y_ref), W_shape[1] * taps, "y")
    assert_fp32_close(gx, backend.to_numpy(gx_ref), Fg * taps, "gx")
    assert_fp32_close(gW, backend.to_numpy(gW_ref), gy.size // gy.shape[1], "gW")


SHAPES = [
    # (x shape, W shape, stride, padding, dilation, groups)
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, "same", 1, 1),
    ((1, 1, 5, 5), (1, 1, 3, 3), 1, "valid", 1, 1),                  # batch 1, C = F = 1
    ((3, 1, 28, 28), (32, 1, 3, 3), 1, 1, 1, 1),                     # a first layer: K = 9
    ((2, 3, 17, 19), (70, 3, 3, 3), 1, 1, 1, 1),                     # sizes not multiples of any tile
    ((1, 2, 8, 9), (3, 2, 3, 2), 2, 1, 1, 1),                        # stride 2, a 3×2 window
    ((2, 4, 9, 7), (6, 2, 3, 3), (2, 1), ((1, 0), (2, 1)), 1, 2),     # asymmetric padding, groups 2
    ((2, 5, 8, 10), (3, 5, 4, 2), 1, "same", 1, 1),                  # "same" with even kernels
    ((2, 6, 10, 9), (4, 3, 4, 4), 3, "same", 1, 2),                  # stride 3: classes without taps
    ((3, 5, 11, 10), (7, 5, 3, 3), 2, "same", 2, 1),                 # stride and dilation 2
    ((1, 3, 12, 13), (5, 3, 1, 1), 1, "valid", 1, 1),                # 1×1
    ((2, 4, 8, 8), (8, 4, 2, 2), 2, "valid", 1, 1),                  # 2×2 stride 2
    ((2, 64, 9, 11), (130, 32, 3, 3), 2, "same", 1, 2),              # many channels, several column tiles
    ((1, 300, 5, 5), (20, 300, 3, 3), 1, 1, 1, 1),                   # long K
    ((2, 3, 7), (4, 3, 3), 1, "valid", 1, 1),                        # 1-D
    ((2, 8, 301), (16, 8, 5), 2, "same", 3, 1),                      # 1-D, long, stride and dilation
    ((1, 2, 5, 4, 6), (2, 2, 3, 2, 3), (1, 2, 2), 1, 1, 1),          # 3-D
    ((2, 4, 6, 7, 5), (6, 2, 3, 3, 3), 2, "same", (1, 2, 1), 2),     # 3-D, groups, stride, dilation
    ((1, 3, 9, 9), (3, 1, 3, 3), 1, "same", 2, 3),                   # depthwise, dilated
    ((2, 2, 6, 5), (6, 1, 2, 2), 2, "same", 1, 2),                   # depthwise, multiplier 3, even kernel
    ((2, 16, 33, 30), (48, 1, 3, 3), 1, "same", 1, 16),              # depthwise, multiplier 3
    ((2, 4, 9, 8), (4, 1, 5, 3), 2, ((2, 3), (0, 1)), (2, 1), 4),    # depthwise, asymmetric, strided, dilated
    ((1, 2, 9), (4, 1, 4), 2, "same", 1, 2),                         # depthwise 1-D
    ((1, 3, 7, 5, 6), (3, 1, 3, 3, 3), 2, "same", (1, 2, 1), 3),     # depthwise 3-D
]


@pytest.mark.gpu
@pytest.mark.parametrize("case", SHAPES)
def test_kernels_match_float64(rng, case):
    check_all_passes(rng, *case)


@pytest.mark.gpu
def test_forward_without_bias(rng):
    check_all_passes(rng, (2, 3, 7, 6), (4, 3, 3, 3), 1, "same", 1, 1, bias=False)


@pytest.mark.gpu
@pytest.mark.slow  # minutes each in kernel emulation
@pytest.mark.parametrize("case", ANCHORS)
def test_anchor_shapes_match_float64(rng, case):
    check_all_passes(rng, *case)


@pytest.mark.gpu
@pytest.mark.parametrize("tile", TILES, ids=[t.name for t in TILES])
@pytest.mark.parametrize("slices", [1, 3])
def test_every_tile_with_and_without_split_k(rng, monkeypatch, launched, tile, slices):
    def forced(pass_name, shape, sm_count):
        M, N, K, batches = gemm_problem(pass_name, shape)
        k_chunk = ceil_div(ceil_div(K, slices), 8) * 8
        count = ceil_div(K, k_chunk)
        grid = (ceil_div(M, tile.rows), ceil_div(N, tile.cols), batches * count)
        return GemmPlan(f"conv_{pass_name}_f32_{tile.name}", tile, count, k_chunk, grid, 0.0)

    monkeypatch.setattr(cuda_conv, "plan_gemm", forced)
    monkeypatch.setattr(cuda_conv, "plan_depthwise", lambda *args: None)  # depthwise through the implicit GEMM too
    for case in [((2, 3, 17, 19), (70, 3, 3, 3), 1, 1, 1, 1), ((2, 40, 9, 11), (130, 20, 3, 3), 2, "same", 1, 2),
                 ((2, 6, 10, 9), (4, 3, 4, 4), 3, "same", 1, 2), ((2, 4, 9, 8), (12, 1, 5, 3), 2, 1, (2, 1), 4)]:
        check_all_passes(rng, *case)
    assert f"conv_forward_f32_{tile.name}" in launched
    assert ("conv_splitk_reduce_f32" in launched) == (slices > 1)


@pytest.mark.gpu
def test_depthwise_runs_the_direct_kernels(rng, launched):
    check_all_passes(rng, (2, 6, 11, 12), (18, 1, 3, 3), 1, "same", 1, 6)
    assert launched == ["conv_depthwise_forward_f32", "conv_depthwise_backward_data_f32", "conv_depthwise_backward_filter_f32",
                        "conv_splitk_reduce_f32"]


@pytest.mark.gpu
def test_results_are_deterministic(rng):
    cupy = backend.cupy()
    geometry = make_geometry(2, (3, 3), 1, 1, 1, (14, 14))
    x = cupy.asarray(rng.standard_normal((8, 32, 14, 14), dtype=np.float32))
    gy = cupy.asarray(rng.standard_normal((8, 64, 14, 14), dtype=np.float32))
    first = cuda_conv.conv_backward_filter(gy, x, None, (64, 32, 3, 3), geometry, 1)
    second = cuda_conv.conv_backward_filter(gy, x, None, (64, 32, 3, 3), geometry, 1)
    assert cupy.array_equal(first, second)  # split-K, summed in a fixed order


@pytest.mark.gpu
def test_float64_runs_the_reference_under_cupy(rng, launched):
    cupy = backend.cupy()
    geometry = make_geometry(2, (3, 3), 2, "same", 1, (7, 6))
    x, W = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 3))
    assert cuda_conv.conv_forward(cupy.asarray(x), cupy.asarray(W), None, geometry, 1) is registry.USE_REFERENCE
    with registry.use_cuda_kernels(True):
        y, saved = registry.impl("conv_forward", cupy.asarray(x), cupy.asarray(W), None, geometry, 1)
        expected, _ = conv_ops.conv_forward_reference(x, W, None, geometry, 1)
        assert y.dtype == np.float64 and saved is not None
        np.testing.assert_allclose(backend.to_numpy(y), expected, rtol=1e-12)
        gW = registry.impl("conv_backward_filter", cupy.asarray(rng.standard_normal(y.shape)), cupy.asarray(x), None,
                           W.shape, geometry, 1)  # the reference rebuilds the im2col matrix it needs
    assert gW.shape == W.shape and launched == []


@pytest.mark.gpu
def test_bad_operands_are_rejected_before_any_launch(launched):
    cupy = backend.cupy()
    geometry = make_geometry(2, (3, 3), 1, 0, 1, (5, 5))
    x, W = cupy.zeros((1, 2, 5, 5), np.float32), cupy.zeros((3, 2, 3, 3), np.float32)
    with pytest.raises(TypeError, match=r"conv_forward: W must be a CuPy array, got a numpy.ndarray \(host memory\)"):
        cuda_conv.conv_forward(x, np.zeros((3, 2, 3, 3), np.float32), None, geometry, 1)
    with pytest.raises(ValueError, match=r"conv_forward: input has 2 channels but the weight expects 4"):
        cuda_conv.conv_forward(x, cupy.zeros((3, 4, 3, 3), np.float32), None, geometry, 1)
    with pytest.raises(ValueError, match=r"conv_backward_filter: gy must have shape \(1, 3, 3, 3\)"):
        cuda_conv.conv_backward_filter(cupy.zeros((1, 3, 4, 4), np.float32), x, None, W.shape, geometry, 1)
    assert launched == []


@pytest.mark.gpu
def test_registry_dispatches_to_the_kernels(rng, launched):
    with registry.use_cuda_kernels(True):
        assert registry.lookup("conv_forward", on_gpu=True) is cuda_conv.conv_forward
        assert registry.lookup("conv_backward_data", on_gpu=True) is cuda_conv.conv_backward_data
        assert registry.lookup("conv_backward_filter", on_gpu=True) is cuda_conv.conv_backward_filter
        x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
        W = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
        y = conv_ops.conv2d(cnnkit.Tensor(x, device="cuda"), cnnkit.Tensor(W, device="cuda"), padding="same")
        expected = conv_ops.conv2d(cnnkit.Tensor(x), cnnkit.Tensor(W), padding="same")
        np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
    assert launched and all(name.startswith("conv_") for name in launched)


@pytest.mark.gpu
def test_conv2d_layer_forward_and_backward_on_gpu_match_cpu(rng):
    x = rng.standard_normal((4, 3, 13, 12)).astype(np.float32)
    g = rng.standard_normal((4, 8, 7, 6)).astype(np.float32)
    layer = Conv2D(8, 3, strides=2, padding="same")
    results = {}
    for device in ("cpu", "cuda"):
        layer.to(device)
        with registry.use_cuda_kernels(device == "cuda"):
            x_t = cnnkit.Tensor(x, device=device, requires_grad=True)
            y = layer(x_t)
            (y * cnnkit.Tensor(g, device=device)).sum().backward()
        results[device] = [y.numpy(), x_t.grad.numpy(), layer.kernel.grad.numpy(), layer.bias.grad.numpy()]
    for cpu, gpu in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-4)
