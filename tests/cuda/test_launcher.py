"""The kernel launcher's argument checks, source finder and cache settings (run on the CPU).

The checks look only at array metadata, so stand-in "device arrays" built from NumPy
arrays exercise every message without a GPU.
"""
import re
import subprocess
import sys

import numpy as np
import pytest

import cnnkit
import cnnkit.cuda
from cnnkit import backend
from cnnkit.cuda import emulator, launcher
from cnnkit.cuda.launcher import ROWS, Array, Kernel, Scalar
from tests.cuda.launch_recorder import fake, is_fake


KERNEL = Kernel("gemm.cu", "gemm_f32_nn", [
    Array("A", "float32", ROWS),
    Array("C", "float32"),
    Array("bias", "float32", optional=True),
    Scalar("M", "int32", low=1),
    Scalar("alpha", "float32"),
])


def check(A=None, C=None, bias=None, M=3, alpha=1.0, device=0):
    A = fake(np.zeros((3, 4), np.float32)) if A is None else A
    C = fake(np.zeros((3, 4), np.float32)) if C is None else C
    return KERNEL.check((A, C, bias, M, alpha), device, is_device_array=is_fake)


def test_valid_arguments_pass_and_scalars_get_exact_types():
    A, C = fake(np.zeros((3, 4), np.float32)), fake(np.zeros((3, 4), np.float32))
    checked = check(A, C, None, 3, 0.5)
    assert checked[0] is A and checked[1] is C and checked[2] is None
    assert type(checked[3]) is np.int32 and checked[3] == 3
    assert type(checked[4]) is np.float32 and checked[4] == 0.5


def test_wrong_dtype_names_kernel_argument_expected_and_received():
    with pytest.raises(TypeError) as error:
        check(A=fake(np.zeros((3, 4), np.float64)))
    assert str(error.value) == "gemm_f32_nn: argument 'A' must be a float32 CuPy array on cuda:0, got a float64 CuPy array"


def test_host_array_is_rejected_as_host_memory():
    with pytest.raises(TypeError, match=r"gemm_f32_nn: argument 'C' must be a float32 CuPy array on cuda:0, "
                                        r"got a numpy.ndarray \(host memory\)"):
        check(C=np.zeros((3, 4), np.float32))


def test_non_array_and_missing_required_array_are_rejected():
    with pytest.raises(TypeError, match=r"argument 'A' must be a float32 CuPy array on cuda:0, got \[1, 2\] \(list\)"):
        check(A=[1, 2])
    with pytest.raises(TypeError, match=r"argument 'C' must be .*, got None"):
        KERNEL.check((fake(np.zeros((3, 4), np.float32)), None, None, 3, 1.0), 0, is_device_array=is_fake)


def test_optional_array_accepts_none_but_still_checks_arrays():
    assert check(bias=None)[2] is None
    with pytest.raises(TypeError, match=r"argument 'bias' must be a float32 CuPy array on cuda:0 or None, "
                                        r"got a numpy.ndarray"):
        check(bias=np.zeros(4, np.float32))


def test_array_on_another_device_is_rejected():
    with pytest.raises(ValueError, match=r"argument 'A' must be a float32 CuPy array on cuda:0, "
                                         r"got a float32 CuPy array on cuda:1"):
        check(A=fake(np.zeros((3, 4), np.float32), device=1))


def test_contiguous_parameter_rejects_strided_views():
    strided = fake(np.zeros((3, 8), np.float32)[:, ::2])
    with pytest.raises(ValueError, match=r"argument 'C' must be C-contiguous, got a float32 CuPy array of shape "
                                         r"\(3, 4\) with strides \(32, 8\)"):
        check(C=strided)


@pytest.mark.parametrize("array,ok", [
    (np.zeros((3, 4), np.float32), True),
    (np.zeros((3, 9), np.float32)[:, 2:6], True),        # column slice: rows stay contiguous
    (np.zeros((1, 5), np.float32), True),
    (np.zeros((4, 1), np.float32)[::2], True),           # one column, any row stride
    (np.zeros((4, 3), np.float32).T, False),             # transposed view: unit stride runs down columns
    (np.zeros((3, 8), np.float32)[:, ::2], False),
    (np.zeros((6, 4), np.float32)[::-2], False),          # negative row stride
    (np.zeros(12, np.float32), False),
])
def test_rows_layout(array, ok):
    assert launcher.has_contiguous_rows(array) == ok
    if ok:
        check(A=fake(array))
    else:
        with pytest.raises(ValueError, match=r"argument 'A' must be a 2-D array with contiguous rows"):
            check(A=fake(array))


def test_leading_dimension():
    assert launcher.leading_dimension(np.zeros((3, 9), np.float32)[:, 2:6]) == 9
    assert launcher.leading_dimension(np.zeros((5, 7), np.float32)) == 7
    assert launcher.leading_dimension(np.zeros((1, 5), np.float32)) == 8  # one row: never blocks vector loads


@pytest.mark.parametrize("value,error,message", [
    (3.0, TypeError, r"argument 'M' must be an integer \(passed as int32\), got 3.0 \(float\)"),
    (True, TypeError, r"argument 'M' must be an integer \(passed as int32\), got True \(bool\)"),
    ("3", TypeError, r"argument 'M' must be an integer .*, got '3' \(str\)"),
    (0, ValueError, r"argument 'M' must be an int32 in \[1, 2147483647\], got 0"),
    (2**31, ValueError, r"argument 'M' must be an int32 in \[1, 2147483647\], got 2147483648"),
])
def test_integer_scalar_checks(value, error, message):
    with pytest.raises(error, match=r"gemm_f32_nn: " + message):
        check(M=value)


def test_float_scalar_checks():
    assert type(check(alpha=np.float64(2.5))[4]) is np.float32
    assert type(check(alpha=2)[4]) is np.float32
    assert np.isnan(check(alpha=float("nan"))[4])
    assert check(alpha=-np.inf)[4] == -np.inf
    with pytest.raises(ValueError, match=r"argument 'alpha' must fit in a float32 \(\|x\| <= 3.40282e\+38\), got 1e\+39"):
        check(alpha=1e39)
    bounded = Kernel("k.cu", "k", [Scalar("p", "float32", low=0.0, high=1.0)])
    with pytest.raises(ValueError, match=r"k: argument 'p' must be a float32 in \[0.0, 1.0\], got 1.5"):
        bounded.check((1.5,), 0, is_device_array=is_fake)
    with pytest.raises(TypeError, match=r"argument 'alpha' must be a real number \(passed as float32\), got None"):
        check(alpha=None)


def test_wrong_argument_count_lists_the_parameters():
    with pytest.raises(TypeError, match=r"gemm_f32_nn: expected 5 arguments \(A, C, bias, M, alpha\), got 4"):
        KERNEL.check((1, 2, 3, 4), 0, is_device_array=is_fake)


def test_parameter_declarations_are_validated():
    with pytest.raises(ValueError, match="layout must be one of"):
        Array("A", "float32", layout="strided")
    with pytest.raises(ValueError, match="dtype must be one of"):
        Scalar("n", "int8")
    with pytest.raises(ValueError, match="parameter names must be unique"):
        Kernel("gemm.cu", "k", [Scalar("n", "int32"), Scalar("n", "int32")])


def test_launch_shape_is_padded_and_checked():
    assert launcher.check_launch_shape("k", (4,), (256,)) == ((4, 1, 1), (256, 1, 1))
    with pytest.raises(ValueError, match=r"k: grid \(1, 65536, 1\) is outside CUDA's limits"):
        launcher.check_launch_shape("k", (1, 65536), (32,))
    with pytest.raises(ValueError, match=r"k: grid \(0, 1, 1\) is outside"):
        launcher.check_launch_shape("k", (0,), (32,))
    with pytest.raises(ValueError, match=r"k: block \(64, 32, 1\) has 2048 threads; CUDA allows 1024"):
        launcher.check_launch_shape("k", (1,), (64, 32))
    with pytest.raises(ValueError, match="1 to 3 dimensions"):
        launcher.check_launch_shape("k", (1, 1, 1, 1), (32,))


def test_tile_grid():
    assert launcher.tile_grid(129, 64, 128, 64) == (2, 1, 1)
    assert launcher.tile_grid(1, 1, 64, 64, depth=5) == (1, 1, 5)


def test_source_finder_finds_the_gemm_kernels():
    assert (launcher.kernel_source_dir() / "gemm.cu").is_file()
    assert "gemm.cu" in launcher.kernel_files()
    assert 'extern "C" __global__' in launcher.read_kernel_source("gemm.cu")
    with pytest.raises(FileNotFoundError, match=r"kernel source 'nope.cu' not found .*available: .*gemm.cu"):
        launcher.read_kernel_source("nope.cu")


def test_kernel_headers_are_inlined_so_that_the_cache_key_covers_them():
    headers = {"common.cuh": "#define ANSWER 42\n"}
    source = '#include <cuda_fp16.h>\n  #include "common.cuh"\nextern "C" __global__ void k() {}\n'
    expanded = launcher.expand_includes("ok.cu", source, headers)
    assert "#define ANSWER 42" in expanded and '#include "common.cuh"' not in expanded
    assert '#line 3 "ok.cu"\nextern' in expanded and "#include <cuda_fp16.h>" in expanded
    with pytest.raises(ValueError, match=r"bad.cu: includes 'other.h', which is not a header in kernels/"):
        launcher.expand_includes("bad.cu", '#include "other.h"\n', headers)
    for file_name in launcher.kernel_files():
        source = launcher.read_kernel_source(file_name)
        assert "struct FastDiv" in source and not re.search(r'^\s*#\s*include\s*"', source, re.MULTILINE), file_name


def test_kernel_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNKIT_KERNEL_CACHE", str(tmp_path / "cache"))
    assert cnnkit.cuda.kernel_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("CNNKIT_KERNEL_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cnnkit.cuda.kernel_cache_dir() == tmp_path / ".cache" / "cnnkit" / "kernels"


def test_matmul_precision_setting():
    assert cnnkit.cuda.get_matmul_precision() == "highest"
    try:
        cnnkit.cuda.set_matmul_precision("tf32")
        assert cnnkit.cuda.get_matmul_precision() == "tf32"
        with pytest.raises(ValueError, match=r"matmul precision must be one of 'highest', 'tf32', got 'fp16'"):
            cnnkit.cuda.set_matmul_precision("fp16")
    finally:
        cnnkit.cuda.set_matmul_precision("highest")


def test_availability_matches_the_backend():
    assert cnnkit.cuda.device_count() == backend.cuda_device_count()
    assert cnnkit.cuda.is_available() == (cnnkit.cuda.device_count() > 0)
    if backend._import_cupy() is None and not emulator.is_active():
        assert not cnnkit.cuda.is_available()


@pytest.mark.no_gpu
def test_gpu_queries_without_a_gpu_raise_the_reason():
    with pytest.raises(backend.CudaUnavailableError):
        cnnkit.cuda.synchronize()
    with pytest.raises(backend.CudaUnavailableError):
        cnnkit.cuda.memory_info()


def test_importing_cnnkit_cuda_does_not_import_cupy():
    code = "import sys, cnnkit.cuda, cnnkit.cuda.ops; assert 'cupy' not in sys.modules, 'cupy was imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(emulator.is_active(), reason="checks NVRTC and the GPU itself, not the emulator")
def test_compile_errors_name_the_file_and_carry_nvrtc_log(monkeypatch, tmp_path):
    (tmp_path / "broken.cu").write_text('extern "C" __global__ void broken(float* x) { x[0] = undefined_name; }\n')
    monkeypatch.setattr(launcher, "kernel_source_dir", lambda: tmp_path)
    monkeypatch.setenv("CNNKIT_KERNEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(launcher.KernelCompileError, match=r"(?s)broken.cu: NVRTC could not compile.*undefined_name"):
        launcher.KernelModule.load("broken.cu")
    results = launcher.precompile_all()
    assert [(r.file_name, r.ok) for r in results] == [("broken.cu", False)]
    assert "undefined_name" in results[0].message


@pytest.mark.gpu
@pytest.mark.skipif(emulator.is_active(), reason="checks NVRTC and the GPU itself, not the emulator")
def test_gpu_device_queries_and_precompile():
    cupy = backend.cupy()
    info = cnnkit.cuda.memory_info()
    assert 0 < info.free <= info.total and 0 <= info.pool_used <= info.pool_total
    assert cnnkit.cuda.device_name(0)
    cnnkit.cuda.synchronize()
    results = {r.file_name: r for r in launcher.precompile_all()}
    assert results["gemm.cu"].ok, results["gemm.cu"].message
    assert list(cnnkit.cuda.kernel_cache_dir().iterdir())  # compiled binaries landed in our cache
    with pytest.raises(LookupError, match="gemm.cu has no kernel named 'missing'"):
        launcher.KernelModule.load("gemm.cu", cupy.cuda.runtime.getDevice()).function("missing")
