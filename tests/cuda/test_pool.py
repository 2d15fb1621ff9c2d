"""The CUDA pooling kernels (kernels/pool.cu): planning and launches on the CPU, values on the GPU.

CPU: the 3-D geometry every rank is mapped to, which kernel runs for which input, that
every launch names a kernel of pool.cu with arguments that pass its declared checks,
and a spill-free sm_90 build. GPU (``@pytest.mark.gpu``): forward and backward against
the NumPy reference on awkward shapes, ties and NaN in max pooling, poisoned outputs,
gradients in float64, and dispatch through the registry.
"""
import numpy as np
import pytest

import cnnkit
from cnnkit import backend, registry
from cnnkit.cuda import pool as cuda_pool
from cnnkit.ops.pool import pool, pool_backward_reference, pool_forward_reference
from cnnkit.window import make_geometry
from cnnkit.testing import gradcheck
from tests.cuda.launch_recorder import fake, is_fake, kernel_entries, nvcc_report
from tests.helpers import randn

MODES = ["max", "avg", "l2"]

# (x shape, pool size, strides, padding): every rank, batch 1, odd sizes, stride 2,
# "same" and uneven padding, overlapping windows, 1 and 130 channels.
CASES = [
    ((2, 3, 9), 2, None, "valid"),
    ((1, 2, 11), 3, 2, "same"),
    ((1, 1, 5), 3, 1, 1),
    ((2, 3, 7, 6), 2, None, "valid"),
    ((1, 5, 13, 11), 3, 2, "same"),
    ((3, 1, 5, 8), (2, 3), (1, 2), ((1, 0), (1, 2))),
    ((1, 130, 9, 9), 3, 1, 1),
    ((1, 1, 33, 47), (5, 4), (3, 2), "valid"),
    ((4, 8, 28, 28), 2, None, "valid"),
    ((2, 3, 14, 6), (2, 3), None, "valid"),
    ((2, 2, 4, 5, 6), 2, None, "same"),
    ((1, 2, 6, 9, 4), (2, 3, 1), None, "valid"),
    ((1, 1, 5, 6, 7), 3, 2, 1),
]


def geometry_of(case):
    shape, size, strides, padding = case
    rank = len(shape) - 2
    return make_geometry(rank, size, size if strides is None else strides, padding, 1, shape[2:])



# ---------------------------------------------------------------- planning (CPU)

def test_lower_ranks_run_as_3d_with_unit_leading_axes():
    geometry = make_geometry(1, 3, 2, ((1, 2),), 1, (11,))
    assert cuda_pool.pool_dims((2, 3, 11), geometry) == (6, 1, 1, 11, 1, 1, 6, 1, 1, 3, 1, 1, 2, 0, 0, 1)
    geometry = make_geometry(2, (2, 3), (1, 2), ((1, 0), (1, 2)), 1, (5, 8))
    assert cuda_pool.pool_dims((3, 1, 5, 8), geometry) == (3, 1, 5, 8, 1, 5, 5, 1, 2, 3, 1, 1, 2, 0, 1, 1)
    geometry = make_geometry(3, 2, 2, "same", 1, (4, 5, 6))
    assert cuda_pool.pool_dims((2, 2, 4, 5, 6), geometry) == (4, 4, 5, 6, 2, 3, 3, 2, 2, 2, 2, 2, 2, 0, 0, 0)
    assert len(cuda_pool.GEOMETRY_NAMES) == 16


def test_which_inputs_run_on_the_kernels():
    geometry = make_geometry(2, 2, 2, "valid", 1, (6, 6))
    assert cuda_pool.runs_on_kernels(np.float32, (2, 3, 6, 6), geometry)
    assert cuda_pool.runs_on_kernels(np.float64, (2, 3, 6, 6), geometry)
    assert not cuda_pool.runs_on_kernels(np.float16, (2, 3, 6, 6), geometry)
    assert not cuda_pool.runs_on_kernels(np.float32, (0, 3, 6, 6), geometry)
    assert not cuda_pool.runs_on_kernels(np.float32, (2**16, 2**10, 6, 6), geometry)  # 2^31 elements or more
    dilated = make_geometry(2, 2, 2, "valid", 2, (6, 6))
    assert not cuda_pool.runs_on_kernels(np.float32, (2, 3, 6, 6), dilated)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
def test_every_launch_names_a_kernel_of_pool_cu_with_checked_arguments(recorded_launches, mode, dtype):
    entries = kernel_entries("pool.cu")
    for case in CASES[:3] + CASES[5:6] + CASES[-1:]:
        geometry = geometry_of(case)
        x = fake(np.ones(case[0]), dtype)
        y, saved = cuda_pool.pool_forward(x, mode, geometry)
        gx = cuda_pool.pool_backward(fake(np.ones(y.shape), dtype), saved, x.shape, mode, geometry)
        assert y.dtype == gx.dtype == dtype and gx.shape == x.shape
        assert y.shape == x.shape[:2] + geometry.output_size(x.shape[2:])
        forward, backward = recorded_launches[-2:]
        assert {forward.name, backward.name} <= entries
        assert forward.name == f"pool_{mode}_forward_{'f32' if dtype == np.float32 else 'f64'}"
        dims = dict(zip(cuda_pool.GEOMETRY_NAMES, cuda_pool.pool_dims(x.shape, geometry)))
        assert all(forward.arg(name) == value for name, value in dims.items())
        assert forward.grid[0] * forward.block[0] >= 1 and forward.block == (256, 1, 1)
    assert len(recorded_launches) == 10


def test_exactly_tiled_windows_take_the_one_thread_per_window_backward(recorded_launches):
    for case, tiled in [(CASES[8], True), (CASES[9], True), (CASES[11], True), (CASES[0], False),
                        (CASES[3], False), (CASES[10], False)]:
        geometry = geometry_of(case)
        assert geometry.tiles_exactly(case[0][2:]) == tiled
        y, saved = cuda_pool.pool_forward(fake(np.ones(case[0]), np.float32), "avg", geometry)
        cuda_pool.pool_backward(fake(np.ones(y.shape), np.float32), saved, case[0], "avg", geometry)
        assert recorded_launches[-1].name == ("pool_avg_backward_tiled_f32" if tiled else "pool_avg_backward_f32")


def test_max_pooling_saves_int32_indices_for_its_backward(recorded_launches):
    geometry = geometry_of(CASES[3])
    y, saved = cuda_pool.pool_forward(fake(np.ones(CASES[3][0]), np.float32), "max", geometry)
    assert isinstance(saved, cuda_pool.PoolSaved)
    assert saved.argmax.dtype == np.int32 and saved.argmax.shape == y.shape
    cuda_pool.pool_backward(fake(np.ones(y.shape), np.float32), saved, CASES[3][0], "max", geometry)
    assert recorded_launches[-1].arg("argmax") is saved.argmax


def test_unsupported_dtypes_and_reference_saved_are_left_to_the_reference(recorded_launches, rng):
    case = CASES[4]
    geometry = geometry_of(case)
    x = rng.standard_normal(case[0]).astype(np.float16)
    assert cuda_pool.pool_forward(fake(x), "avg", geometry) is registry.USE_REFERENCE
    want, want_saved = pool_forward_reference(x, "avg", geometry)
    gy = np.ones(want.shape, np.float16)
    with registry.use_cuda_kernels(True):
        y, saved = registry.impl("pool_forward", fake(x), "avg", geometry)
        assert cuda_pool.pool_backward(fake(gy), saved, x.shape, "avg", geometry) is registry.USE_REFERENCE
        gx = registry.impl("pool_backward", fake(gy), saved, x.shape, "avg", geometry)
    np.testing.assert_array_equal(np.asarray(y), want)
    np.testing.assert_array_equal(np.asarray(gx), pool_backward_reference(gy, want_saved, x.shape, "avg", geometry))
    assert recorded_launches == []


def test_bad_mode_names_the_valid_ones(recorded_launches):
    geometry = geometry_of(CASES[0])
    with pytest.raises(ValueError, match=r"pool_forward: mode must be one of 'max', 'avg', 'l2', got 'sum'"):
        cuda_pool.pool_forward(fake(np.ones(CASES[0][0]), np.float32), "sum", geometry)


def test_kernel_arguments_are_checked_before_launch():
    x, y = fake(np.zeros((1, 1, 4, 4), np.float32)), fake(np.zeros((1, 1, 2, 2), np.float32))
    dims = cuda_pool.pool_dims((1, 1, 4, 4), make_geometry(2, 2, 2, "valid", 1, (4, 4)))
    kernel = cuda_pool.KERNELS["forward", "max", "f32"]
    assert len(kernel.check((x, y, fake(np.zeros((1, 1, 2, 2), np.int32))) + dims, 0, is_device_array=is_fake)) == 19
    with pytest.raises(TypeError, match=r"pool_max_forward_f32: argument 'argmax' must be a int32 CuPy array on "
                                        r"cuda:0, got a int64 CuPy array"):
        kernel.check((x, y, fake(np.zeros((1, 1, 2, 2), np.int64))) + dims, 0, is_device_array=is_fake)
    bad = dims[:-1] + (-1,)
    with pytest.raises(ValueError, match=r"argument 'PW' must be an int32 in \[0, 2147483647\], got -1"):
        kernel.check((x, y, fake(np.zeros((1, 1, 2, 2), np.int32))) + bad, 0, is_device_array=is_fake)
    with pytest.raises(TypeError, match=r"pool_avg_backward_f64: expected 18 arguments"):
        cuda_pool.KERNELS["backward", "avg", "f64"].check((x,) + dims, 0, is_device_array=is_fake)


def test_pool_cu_compiles_for_sm90_without_spills():
    report = nvcc_report("pool.cu")
    assert report.entries == kernel_entries("pool.cu")
    assert {kernel.name for kernel in cuda_pool.KERNELS.values()} == report.entries
    assert all(spills == (0, 0) for spills in report.spills.values()), report.log


# ---------------------------------------------------------------- the kernels (GPU)

def poison_pool(nbytes):
    """Leave NaN in CuPy's memory pool so an output element the kernel forgets to write shows up."""
    cupy = backend.cupy()
    junk = cupy.full(nbytes // 4 + 4096, np.nan, dtype=np.float32)
    del junk


def forward_and_backward(x_host, gy_host, mode, geometry):
    cupy = backend.cupy()
    poison_pool(x_host.nbytes * 2)
    y, saved = cuda_pool.pool_forward(cupy.asarray(x_host), mode, geometry)
    gx = cuda_pool.pool_backward(cupy.asarray(gy_host), saved, x_host.shape, mode, geometry)
    return backend.to_numpy(y), backend.to_numpy(gx)


def reference(x_host, gy_host, mode, geometry):
    y, saved = pool_forward_reference(x_host.astype(np.float64), mode, geometry)
    return y, pool_backward_reference(gy_host.astype(np.float64), saved, x_host.shape, mode, geometry)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES)
def test_forward_and_backward_match_the_reference(rng, case, mode, dtype):
    geometry = geometry_of(case)
    x = rng.standard_normal(case[0]).astype(dtype)
    gy = rng.standard_normal(x.shape[:2] + geometry.output_size(x.shape[2:])).astype(dtype)
    y, gx = forward_and_backward(x, gy, mode, geometry)
    want_y, want_gx = reference(x, gy, mode, geometry)
    assert y.dtype == gx.dtype == dtype
    tolerance = {"rtol": 1e-6, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(y, want_y, **tolerance)
    np.testing.assert_allclose(gx, want_gx, **tolerance)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
def test_misaligned_inputs_take_the_scalar_path(rng, mode):
    cupy = backend.cupy()
    x = rng.standard_normal((2, 3, 6, 8))
    flat = cupy.empty(x.size + 1)
    x_view = flat[1:].reshape(x.shape)  # contiguous, 8 bytes past 16-byte alignment
    x_view[...] = cupy.asarray(x)
    geometry = make_geometry(2, 3, 1, 1, 1, (6, 8))
    gy = rng.standard_normal(x.shape)
    y, saved = cuda_pool.pool_forward(x_view, mode, geometry)
    gx = cuda_pool.pool_backward(cupy.asarray(gy), saved, x.shape, mode, geometry)
    want_y, want_gx = reference(x, gy, mode, geometry)
    np.testing.assert_allclose(backend.to_numpy(y), want_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(gx), want_gx, rtol=1e-12, atol=1e-12)


@pytest.mark.gpu
def test_max_pool_ties_send_the_gradient_to_the_first_maximum(rng):
    x = rng.integers(0, 3, (2, 3, 8, 10)).astype(np.float32)  # many ties
    for geometry in (make_geometry(2, 3, 2, "same", 1, (8, 10)), make_geometry(2, 2, 2, "valid", 1, (8, 10))):
        gy = rng.standard_normal(x.shape[:2] + geometry.output_size((8, 10))).astype(np.float32)
        y, gx = forward_and_backward(x, gy, "max", geometry)
        want_y, want_gx = reference(x, gy, "max", geometry)
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_allclose(gx, want_gx, rtol=1e-6, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("size,strides,padding,nan_outputs", [(3, 2, 1, 7), (2, 2, "valid", 3)])
def test_max_pool_propagates_nan_and_routes_the_gradient_as_the_reference(rng, size, strides, padding, nan_outputs):
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    x[0, 0, 1, 1] = x[0, 1, 4, 3] = x[0, 1, 6, 6] = x[0, 1, 6, 7] = np.nan
    x[0, 1, 0, :] = -np.inf
    geometry = make_geometry(2, size, strides, padding, 1, (8, 8))
    gy = rng.standard_normal((1, 2) + geometry.output_size((8, 8))).astype(np.float32)
    y, gx = forward_and_backward(x, gy, "max", geometry)
    want_y, want_gx = reference(x, gy, "max", geometry)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want_y))
    assert np.isnan(y).sum() == nan_outputs
    np.testing.assert_allclose(y, want_y)
    np.testing.assert_allclose(gx, want_gx, rtol=1e-6, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
def test_float64_gradients_through_the_kernels(rng, mode):
    x = randn(rng, 2, 3, 5, 7, device="cuda")
    with registry.use_cuda_kernels(True):
        gradcheck(lambda t: pool(t, mode, 3, 2, "same"), [x])


@pytest.mark.gpu
def test_registry_dispatches_pooling_to_the_kernels(rng):
    x_host = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    with registry.use_cuda_kernels(True):
        assert registry.lookup("pool_forward", on_gpu=True) is cuda_pool.pool_forward
        assert registry.lookup("pool_backward", on_gpu=True) is cuda_pool.pool_backward
        results = {}
        for device in ("cpu", "cuda"):
            x = cnnkit.Tensor(x_host, device=device, requires_grad=True)
            y = cnnkit.ops.max_pool(x, 3, 2, "same") + cnnkit.ops.avg_pool(x, 2)[:, :, :1, :1]
            (y * y).sum().backward()
            results[device] = (y.numpy(), x.grad.numpy())
    np.testing.assert_allclose(results["cuda"][0], results["cpu"][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(results["cuda"][1], results["cpu"][1], rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("shape, size, stride, column", [((1, 2, 3, 7), 2, 2, 6), ((1, 1, 2, 8), (1, 2), (1, 3), 5)])
def test_l2_backward_gives_zero_to_elements_no_window_covers(shape, size, stride, column):
    # W = 7 with window 2, stride 2 leaves column 6 uncovered; W = 8 with window 2, stride 3
    # columns 2 and 5. There x = inf or NaN must get 0, as in the reference, not inf · 0 = NaN.
    x = np.ones(shape, np.float32)
    x[..., column] = np.inf
    x[..., 0, column] = np.nan
    geometry = make_geometry(2, size, stride, "valid", 1, shape[2:])
    cupy = backend.cupy()
    y, saved = cuda_pool.pool_forward(cupy.asarray(x), "l2", geometry)
    gy = np.ones(y.shape, np.float32)
    gx = backend.to_numpy(cuda_pool.pool_backward(cupy.asarray(gy), saved, shape, "l2", geometry))
    _, reference_saved = pool_forward_reference(x, "l2", geometry)
    want = pool_backward_reference(gy, reference_saved, shape, "l2", geometry)
    assert not np.isnan(want[..., column]).any()
    np.testing.assert_array_equal(gx, want)
