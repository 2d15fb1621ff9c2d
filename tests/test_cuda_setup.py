"""What a GPU machine needs, checked without one: the CUDA libraries CuPy loads lazily, and the
one switch for the precision of float32 products (cuBLAS's compute type included)."""
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import cnnkit
from cnnkit import backend, cli
from cnnkit.bench.device import BenchDevice, RunSettings
from cnnkit.bench.suites.common import ours
from tests.fake_gpu import FakeCupy


class CompileException(Exception):
    pass


def _fail(error):
    def probe(*args, **kwargs):
        raise error

    return probe


def _with_libraries(cupy: FakeCupy, cublas=True, curand=True, nvrtc=True) -> FakeCupy:
    missing = OSError("libcublas.so.12: cannot open shared object file: No such file or directory")
    cupy.cuda.device = SimpleNamespace(get_cublas_handle=(lambda: 1) if cublas else _fail(missing))
    cupy.cuda.curand = SimpleNamespace(getVersion=(lambda: 10305) if curand else _fail(
        OSError("libcurand.so.10: cannot open shared object file")))

    def kernel(*args):
        if not nvrtc:
            raise CompileException("catastrophic error: cannot open source file \"cuda_fp16.h\"")
        return lambda x: x + 1

    cupy.ElementwiseKernel = kernel
    return cupy


@pytest.fixture
def probed(monkeypatch, fake_gpu):
    """The fake GPU with the library probe not yet run."""
    monkeypatch.setattr(backend, "_library_problems", None)
    return fake_gpu


def test_all_libraries_loading_means_available(probed):
    _with_libraries(probed)
    assert backend.cuda_library_problems() == [] and backend.cuda_is_available()


def test_a_missing_library_is_named_with_how_to_install_it(probed, capsys):
    _with_libraries(probed, cublas=False, nvrtc=False)
    problems = backend.cuda_library_problems()
    assert [problem.split(" (")[0] for problem in problems] == ["cuBLAS", "NVRTC"]
    assert "cuBLAS (for matrix products) does not load (OSError: libcublas.so.12: cannot open" in problems[0]
    assert "cuda-toolkit[cublas]" in problems[0] and "cuda-toolkit[nvrtc,cudart]" in problems[1]
    assert "cuda_fp16.h" in problems[1]
    assert not backend.cuda_is_available()
    with pytest.raises(cnnkit.CudaUnavailableError, match=r"CuPy cannot use it: cuBLAS \(for matrix products\)"
                                                         r".* To install every library: .*cnnkit\[gpu-cuda13\]"):
        cnnkit.Device("cuda")
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "CUDA library missing: cuBLAS (for matrix products)" in out and "CUDA library missing: NVRTC" in out
    assert "pip install 'cnnkit[gpu]'" in out


def test_cupy_import_pins_fp32_whatever_cupy_tf32_says(monkeypatch):
    cupy = FakeCupy()  # its compute type starts as TF32, as CUPY_TF32=1 makes it
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(backend, "_cupy_module", None)
    monkeypatch.setattr(backend, "_cupy_import_error", None)
    assert backend._import_cupy() is cupy
    assert cupy._core._routines_linalg.float32_name == "COMPUTE_TYPE_DEFAULT"


def test_cupy_without_compute_types_is_refused_with_the_reason(monkeypatch):
    cupy = FakeCupy()
    cupy._core = SimpleNamespace()
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(backend, "_cupy_module", None)
    monkeypatch.setattr(backend, "_cupy_import_error", None)
    assert backend._import_cupy() is None
    with pytest.raises(cnnkit.CudaUnavailableError, match="CuPy cannot be imported"):
        backend.cupy()


def test_matmul_precision_sets_cublas_and_the_bench_reports_it(fake_gpu):
    linalg = fake_gpu._core._routines_linalg
    device = BenchDevice("cuda:0", RunSettings(warmup=0, repeat=1, max_seconds=1.0))
    assert cnnkit.cuda.get_matmul_precision() == "highest"
    try:
        cnnkit.cuda.set_matmul_precision("tf32")
        assert linalg.float32_name == "COMPUTE_TYPE_TF32"
        assert ours(("conv_forward",), device)[1]["matmul_precision"] == {"setting": "tf32", "cublas": "tf32"}
    finally:
        cnnkit.cuda.set_matmul_precision("highest")
    assert linalg.float32_name == "COMPUTE_TYPE_DEFAULT"
    assert cnnkit.cuda.matmul_precision_in_use() == {"setting": "highest", "cublas": "fp32"}
    assert "matmul_precision" not in ours(("conv_forward",), BenchDevice("cpu", device.settings))[1]
    with pytest.raises(ValueError, match="matmul precision must be one of 'highest', 'tf32', got 'fp16'"):
        cnnkit.cuda.set_matmul_precision("fp16")
