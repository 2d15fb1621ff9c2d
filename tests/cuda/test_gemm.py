"""The CUDA GEMM: kernel choice (CPU), the nvcc build of gemm.cu, and the kernels against float64 NumPy (GPU)."""
import itertools
import re
import shutil
import subprocess

import numpy as np
import pytest

import cnnkit
from cnnkit import backend, registry
from cnnkit.cuda import gemm as cuda_gemm
from cnnkit.cuda import launcher
from cnnkit.cuda.gemm import plan_gemm



# ---------------------------------------------------------------- kernel choice (CPU)

def entry_points() -> set[str]:
    source = launcher.read_kernel_source("gemm.cu")
    macro_entries = re.findall(r"^GEMM_(?:SIMT|TF32)_ENTRY\((\w+),", source, re.MULTILINE)
    plain_entries = re.findall(r'^extern "C" __global__ void (\w+)\(', source, re.MULTILINE)
    return set(macro_entries) | set(plain_entries)


def test_every_kernel_the_planner_can_pick_exists_in_gemm_cu():
    names = entry_points()
    assert "gemm_splitk_reduce_f32" in names
    for trans_a, trans_b, vectorized, tf32, sm_count in itertools.product([False, True], [False, True], [False, True],
                                                                         [False, True], [1, 132]):
        plan = plan_gemm(300, 200, 100, trans_a, trans_b, sm_count, vectorized, tf32)
        assert plan.kernel_name in names


def test_large_problems_use_128_tiles_without_split_k():
    plan = plan_gemm(4096, 4096, 4096, False, False, 132, True, False)
    assert (plan.kernel_name, plan.splits) == ("gemm_f32_nn_128x128_vec4", 1)
    assert plan.k_chunk >= 4096


def test_small_problems_use_64_tiles_and_split_k_to_fill_the_sms():
    plan = plan_gemm(128, 128, 3136, False, False, 132, True, False)  # the small CNN's Dense(3136→128)
    assert plan.kernel_name == "gemm_f32_nn_64x64_vec4"
    blocks = 4 * plan.splits
    assert 64 <= blocks <= 2 * 132


@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (5, 6, 300), (130, 70, 1000), (3, 5, 4000), (64, 64, 8),
                                   (128, 128, 100000)])
@pytest.mark.parametrize("tf32", [False, True])
def test_k_slices_are_aligned_and_cover_k_exactly(M, N, K, tf32):
    plan = plan_gemm(M, N, K, False, True, 132, True, tf32)
    assert plan.k_chunk % 32 == 0
    assert (plan.splits - 1) * plan.k_chunk < K <= plan.splits * plan.k_chunk  # no empty slice
    assert 1 <= plan.splits <= 32


def test_tf32_needs_aligned_operands():
    assert plan_gemm(300, 300, 300, True, False, 132, True, True).kernel_name == "gemm_f32_tf32_tn"
    assert plan_gemm(300, 300, 300, True, False, 132, False, True).kernel_name == "gemm_f32_tn_64x64_scalar"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_gemm_cu_compiles_for_sm90_without_spills(tmp_path):
    source = launcher.kernel_source_dir() / "gemm.cu"
    result = subprocess.run(["nvcc", "-cubin", "-arch=sm_90", "-Xptxas", "-v", "-o", str(tmp_path / "gemm.cubin"),
                             str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    reports = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", result.stderr)
    assert len(reports) == len(entry_points())
    assert all(stores == loads == "0" for stores, loads in reports), result.stderr


# ---------------------------------------------------------------- the kernels (GPU)

SHAPES = [(1, 1, 1), (1, 300, 40), (300, 1, 40), (17, 33, 65), (127, 129, 131), (1000, 3, 7), (513, 1025, 257),
          (64, 64, 8), (128, 128, 64), (256, 384, 128), (130, 70, 3000)]
LAYOUTS = ["nn", "nt", "tn", "tt"]


def stored(rng, shape, mode="contiguous"):
    """A float32 CuPy array of ``shape`` with the given memory layout, and its host copy.

    contiguous: C-ordered. aligned: rows padded to a multiple of 4 floats (vector path).
    offset: rows start 4 bytes past 16-byte alignment (scalar path). fortran: F-ordered.
    """
    cupy = backend.cupy()
    host = rng.standard_normal(shape).astype(np.float32)
    rows, cols = shape
    if mode == "contiguous":
        return cupy.asarray(host), host
    if mode == "fortran":
        return cupy.asfortranarray(cupy.asarray(host)), host
    padded_cols = -(-cols // 4) * 4 + 4 if mode == "aligned" else cols + 1
    base = cupy.full((rows, padded_cols), np.nan, dtype=np.float32)
    view = base[:, :cols] if mode == "aligned" else base[:, 1:]
    view[...] = cupy.asarray(host)
    return view, host


def operands(rng, M, N, K, layout, mode="contiguous"):
    trans_a, trans_b = layout[0] == "t", layout[1] == "t"
    a, a_host = stored(rng, (K, M) if trans_a else (M, K), mode)
    b, b_host = stored(rng, (N, K) if trans_b else (K, N), mode)
    ref = (a_host.T if trans_a else a_host).astype(np.float64) @ (b_host.T if trans_b else b_host).astype(np.float64)
    return a, b, trans_a, trans_b, ref


def poison_pool(nbytes):
    """Leave NaN in CuPy's pool so an output element the kernel forgets to write shows up."""
    cupy = backend.cupy()
    junk = cupy.full(nbytes // 4 + 4096, np.nan, dtype=np.float32)
    del junk


def assert_fp32_close(c, ref, K):
    """FP32 accumulation of K products of unit-normal values: rtol 1e-4, atol growing as √K."""
    c = backend.to_numpy(c)
    assert c.dtype == np.float32 and c.shape == ref.shape
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-5 * np.sqrt(K))


@pytest.fixture
def kernel_names(monkeypatch):
    """The GEMM kernels launched during the test, in order."""
    names = []
    pick = cuda_gemm._gemm_kernel

    def recording(name):
        names.append(name)
        return pick(name)

    monkeypatch.setattr(cuda_gemm, "_gemm_kernel", recording)
    return names


@pytest.fixture
def tf32_precision():
    cupy = backend.cupy()
    if int(cupy.cuda.Device().compute_capability) < 80:
        pytest.skip("TF32 tensor cores need sm_80 or newer")
    cnnkit.cuda.set_matmul_precision("tf32")
    yield
    cnnkit.cuda.set_matmul_precision("highest")


@pytest.mark.gpu
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_fp32_gemm_matches_float64(rng, M, N, K, layout):
    a, b, trans_a, trans_b, ref = operands(rng, M, N, K, layout)
    poison_pool(M * N * 4)
    c = cuda_gemm.gemm(a, b, transpose_a=trans_a, transpose_b=trans_b)
    assert_fp32_close(c, ref, K)


@pytest.mark.gpu
@pytest.mark.parametrize("mode,access", [("aligned", "vec4"), ("offset", "scalar")])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_row_alignment_picks_the_vector_or_scalar_path(rng, kernel_names, mode, access, layout):
    M, N, K = 131, 67, 45
    a, b, trans_a, trans_b, ref = operands(rng, M, N, K, layout, mode)
    c = cuda_gemm.gemm(a, b, transpose_a=trans_a, transpose_b=trans_b)
    assert_fp32_close(c, ref, K)
    assert kernel_names == [f"gemm_f32_{layout}_64x64_{access}"]


@pytest.mark.gpu
def test_fortran_ordered_operands_are_read_transposed_without_copies(rng, kernel_names):
    M, N, K = 70, 50, 40
    a, b, _, _, ref = operands(rng, M, N, K, "nn", "fortran")
    c = cuda_gemm.gemm(a, b)
    assert_fp32_close(c, ref, K)
    assert kernel_names == ["gemm_f32_tt_64x64_scalar"]  # F-ordered (70, 40) is C-ordered (40, 70) transposed


@pytest.mark.gpu
def test_operands_without_a_unit_stride_are_copied_first(rng, kernel_names):
    cupy = backend.cupy()
    a_host = rng.standard_normal((30, 2 * 24)).astype(np.float32)
    b_host = rng.standard_normal((24, 20)).astype(np.float32)
    c = cuda_gemm.gemm(cupy.asarray(a_host)[:, ::2], cupy.asarray(b_host))
    assert_fp32_close(c, a_host[:, ::2].astype(np.float64) @ b_host.astype(np.float64), 24)
    assert kernel_names == ["gemm_f32_nn_64x64_vec4"]


@pytest.mark.gpu
def test_split_k_and_large_tiles_run(rng, kernel_names, monkeypatch):
    a, b, _, _, ref = operands(rng, 96, 80, 5000, "nn", "aligned")
    assert_fp32_close(cuda_gemm.gemm(a, b), ref, 5000)
    small_gpu = launcher.DeviceProperties(0, "pretend", 1, (9, 0), 227 * 1024)
    monkeypatch.setattr(cuda_gemm, "device_properties", lambda index: small_gpu)
    a, b, _, _, ref = operands(rng, 300, 200, 100, "nt")
    assert_fp32_close(cuda_gemm.gemm(a, b, transpose_b=True), ref, 100)
    assert kernel_names == ["gemm_f32_nn_64x64_vec4", "gemm_f32_nt_128x128_vec4"]


@pytest.mark.gpu
def test_nan_and_inf_propagate(rng):
    cupy = backend.cupy()
    a_host = rng.uniform(0.5, 1.5, (37, 29)).astype(np.float32)
    b_host = rng.uniform(0.5, 1.5, (29, 41)).astype(np.float32)
    a_host[3, 7] = np.nan
    b_host[:, 5] = np.inf
    c = backend.to_numpy(cuda_gemm.gemm(cupy.asarray(a_host), cupy.asarray(b_host)))
    assert np.isnan(c[3]).all()
    others = np.delete(np.arange(37), 3)
    assert np.isposinf(c[others, 5]).all()
    finite = np.delete(c[others], 5, axis=1)
    ref = np.delete(a_host[others].astype(np.float64) @ b_host.astype(np.float64), 5, axis=1)
    np.testing.assert_allclose(finite, ref, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("M,N,K", [(33, 70, 19), (64, 96, 4000)])  # one pass, and split-K with a reduction
@pytest.mark.parametrize("activation", ["none", "relu"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_and_activation_epilogue(rng, M, N, K, activation, with_bias):
    cupy = backend.cupy()
    a, b, _, _, ref = operands(rng, M, N, K, "nn")
    bias_host = rng.standard_normal(N).astype(np.float32) if with_bias else None
    if with_bias:
        ref = ref + bias_host
    if activation == "relu":
        ref = np.maximum(ref, 0)
    poison_pool(M * N * 4)
    c = cuda_gemm.gemm_bias_act(a, b, None if bias_host is None else cupy.asarray(bias_host), activation)
    assert_fp32_close(c, ref, K)


@pytest.mark.gpu
def test_relu_epilogue_keeps_nan(rng):
    cupy = backend.cupy()
    a = cupy.asarray(rng.standard_normal((5, 4)).astype(np.float32))
    a[2, 0] = np.nan
    b = cupy.asarray(rng.standard_normal((4, 6)).astype(np.float32))
    c = backend.to_numpy(cuda_gemm.gemm_bias_act(a, b, cupy.zeros(6, np.float32), "relu"))
    assert np.isnan(c[2]).all() and (np.delete(c, 2, axis=0) >= 0).all()


@pytest.mark.gpu
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (17, 33, 65), (300, 260, 500), (96, 80, 3000)])
def test_tf32_gemm_is_close_but_rounded(rng, tf32_precision, kernel_names, M, N, K, layout):
    a, b, trans_a, trans_b, ref = operands(rng, M, N, K, layout, "aligned")
    poison_pool(M * N * 4)
    c = backend.to_numpy(cuda_gemm.gemm(a, b, transpose_a=trans_a, transpose_b=trans_b))
    assert kernel_names == [f"gemm_f32_tf32_{layout}"]
    np.testing.assert_allclose(c, ref, rtol=1e-2, atol=1e-2 * np.sqrt(K))
    relative = np.linalg.norm(c - ref) / np.linalg.norm(ref)
    assert relative < 5e-3
    if K >= 65:  # proof the inputs really went through TF32 rounding
        assert relative > 1e-5


@pytest.mark.gpu
def test_tf32_with_misaligned_operands_falls_back_to_fp32(rng, tf32_precision, kernel_names):
    a, b, _, _, ref = operands(rng, 40, 30, 20, "nn", "offset")
    assert_fp32_close(cuda_gemm.gemm(a, b), ref, 20)
    assert kernel_names == ["gemm_f32_nn_64x64_scalar"]


@pytest.mark.gpu
def test_float64_and_empty_products_are_left_to_the_reference_on_cupy(rng, kernel_names):
    cupy = backend.cupy()
    a_host, b_host = rng.standard_normal((7, 5)), rng.standard_normal((7, 3))
    a, b = cupy.asarray(a_host), cupy.asarray(b_host)
    assert cuda_gemm.gemm(a, b, transpose_a=True) is registry.USE_REFERENCE
    with registry.use_cuda_kernels(True):
        c = registry.impl("gemm", a, b, transpose_a=True)
        empty = registry.impl("gemm", cupy.zeros((0, 4), np.float32), cupy.zeros((4, 3), np.float32))
        zeros = registry.impl("gemm_bias_act", cupy.zeros((2, 0), np.float32), cupy.zeros((0, 3), np.float32),
                              cupy.ones(3, np.float32), "relu")
    assert c.dtype == np.float64
    np.testing.assert_allclose(backend.to_numpy(c), a_host.T @ b_host, rtol=1e-12)
    assert empty.shape == (0, 3)
    np.testing.assert_array_equal(backend.to_numpy(zeros), np.ones((2, 3), np.float32))
    assert kernel_names == []
    assert kernel_names == []


@pytest.mark.gpu
def test_bad_operands_are_rejected_with_what_was_received():
    cupy = backend.cupy()
    a, b = cupy.zeros((3, 4), np.float32), cupy.zeros((5, 2), np.float32)
    with pytest.raises(ValueError, match=r"gemm: op\(a\) is 3×4 but op\(b\) is 5×2"):
        cuda_gemm.gemm(a, b)
    with pytest.raises(TypeError, match=r"gemm: b must be a CuPy array like the other operands, got a numpy.ndarray"):
        cuda_gemm.gemm(a, np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"gemm_bias_act: bias must have shape \(2,\)"):
        cuda_gemm.gemm_bias_act(a, cupy.zeros((4, 2), np.float32), cupy.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"activation must be one of 'none', 'relu', got 'tanh'"):
        cuda_gemm.gemm_bias_act(a, cupy.zeros((4, 2), np.float32), None, "tanh")


@pytest.mark.gpu
def test_registry_dispatches_cupy_arrays_to_the_kernel(rng, kernel_names):
    with registry.use_cuda_kernels(True):
        _check_dispatch(rng, kernel_names)


def _check_dispatch(rng, kernel_names):
    cupy = backend.cupy()
    assert registry.lookup("gemm", on_gpu=True) is cuda_gemm.gemm
    assert registry.lookup("gemm_bias_act", on_gpu=True) is cuda_gemm.gemm_bias_act
    a, b = rng.standard_normal((9, 8)).astype(np.float32), rng.standard_normal((11, 8)).astype(np.float32)
    c = registry.impl("gemm", cupy.asarray(a), cupy.asarray(b), transpose_b=True)
    assert_fp32_close(c, a.astype(np.float64) @ b.T.astype(np.float64), 8)
    x = cnnkit.Tensor(a, device="cuda")
    W = cnnkit.Tensor(rng.standard_normal((8, 5)).astype(np.float32), device="cuda")
    y = cnnkit.ops.matmul(x, W)
    assert_fp32_close(y.data, a.astype(np.float64) @ W.numpy().astype(np.float64), 8)
    assert kernel_names == ["gemm_f32_nt_64x64_vec4", "gemm_f32_nn_64x64_scalar"]  # W's rows: 5 floats apart
