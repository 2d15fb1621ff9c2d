"""The kernel emulator itself (cnnkit/cuda/emulator.py, kernels/emulate): faults it must catch and
the mma.sync it emulates, on the deliberately broken kernels of tests/cuda/kernels/emulator_selftest.cu.

These run in every test run (they turn emulation on for themselves) wherever a C++ compiler
is installed.
"""
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnkit import backend, registry
from cnnkit.cuda import emulated_cupy, emulator, launcher
from cnnkit.cuda.launcher import Array, Kernel, Scalar

pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None or sys.platform != "linux" or os.uname().machine != "x86_64",
    reason="the kernel emulator needs g++ on x86-64 Linux")

SELFTEST = "emulator_selftest.cu"
F32 = "float32"


@pytest.fixture
def cupy(monkeypatch):
    """Emulation on, with the self-test kernels findable; the emulated CuPy module."""
    selftest_source = (Path(__file__).parent / "kernels" / SELFTEST).read_text()
    read = launcher.read_kernel_source
    monkeypatch.setattr(emulator, "read_kernel_source", lambda name: selftest_source if name == SELFTEST else read(name))
    monkeypatch.setattr(backend, "_cupy_stand_in", emulated_cupy)
    monkeypatch.setattr(registry, "_cuda_kernels_enabled", True)
    return emulated_cupy


def selftest(name: str, *params) -> Kernel:
    return Kernel(SELFTEST, name, list(params))


def test_a_barrier_some_threads_never_reach_is_caught(cupy):
    out = cupy.zeros(64, np.float32)
    with pytest.raises(emulator.KernelFault, match=r"kernel divergent_barrier, block \(0, 0, 0\), thread \(0, 0, 0\)"
                                                   r".*never reached by thread\(s\) 32, 33"):
        selftest("divergent_barrier", Array("out", F32)).launch((1,), (64,), (out,))
    assert not out.any()  # nothing is copied back from a faulted launch


def test_threads_waiting_at_different_barriers_are_caught(cupy):
    out = cupy.zeros(32, np.float32)
    with pytest.raises(emulator.KernelFault, match=r"divergent __syncthreads\(\): this thread waits at line \d+, "
                                                   r"thread 0 at line \d+"):
        selftest("barriers_on_two_lines", Array("out", F32)).launch((1,), (32,), (out,))


def test_a_shuffle_whose_mask_names_inactive_lanes_is_caught(cupy):
    kernel = selftest("half_warp_shuffle", Array("in", F32), Array("out", F32), Scalar("mask", "uint32"))
    x = cupy.asarray(np.arange(32, dtype=np.float32))
    out = cupy.zeros(32, np.float32)
    with pytest.raises(emulator.KernelFault, match=r"__shfl_xor_sync with mask 0xffffffff: lane 16 returned "
                                                   r"without taking part \(an inactive lane in the mask\)"):
        kernel.launch((1,), (32,), (x, out, 0xFFFFFFFF))
    kernel.launch((1,), (32,), (x, out, 0x0000FFFF))  # the right mask
    want = np.arange(32, dtype=np.float32)
    want[:16] += want[np.arange(16) ^ 1]
    np.testing.assert_array_equal(out.get(), want)


def test_a_write_past_the_end_is_caught_naming_the_thread(cupy):
    kernel = selftest("write_at_offset", Array("out", F32), Scalar("offset", "int32"))
    out = cupy.zeros(32, np.float32)
    with pytest.raises(emulator.KernelFault, match=r"1 out-of-bounds writes of argument 'out' \(128 bytes\), the "
                                                   r"first at byte offset 128 by block \(0, 0, 0\), thread \(31, 0, 0\)"):
        kernel.launch((1,), (32,), (out, 1))
    assert not out.any()
    # 30 floats end 8 bytes short of a 16-byte boundary: that gap is checked after the launch
    out = cupy.zeros(30, np.float32)
    with pytest.raises(emulator.KernelFault, match=r"a write just outside argument 'out' at byte offset 120"):
        selftest("write_at_offset", Array("out", F32), Scalar("offset", "int32")).launch((1,), (30,), (out, 1))


def test_reads_past_the_end_read_nan_and_are_counted(cupy):
    kernel = selftest("read_at_offset", Array("in", F32), Array("out", F32), Scalar("offset", "int32"))
    x = cupy.ones(32, np.float32)
    out = cupy.zeros(32, np.float32)
    with pytest.raises(emulator.KernelFault, match=r"out-of-bounds reads \(they read NaN\) of argument 'in'"):
        kernel.launch((1,), (32,), (x, out, 4))
    kernel.launch((1,), (32,), (x, out, 0))
    np.testing.assert_array_equal(out.get(), np.ones(32, np.float32))


def test_shared_memory_beyond_the_launch_size_is_caught(cupy):
    kernel = selftest("fill_dynamic_shared", Array("out", F32), Scalar("floats", "int32"))
    out = cupy.zeros(64, np.float32)
    with pytest.raises(emulator.KernelFault, match=r"shared memory used beyond the launch's size: .*writes of dynamic "
                                                   r"shared memory \(the launch gives 128 bytes\)"):
        kernel.launch((1,), (32,), (out, 64), shared_memory=128)
    kernel.launch((1,), (32,), (out, 64), shared_memory=256)
    np.testing.assert_array_equal(out.get(), np.arange(64, dtype=np.float32))


def tf32(values: np.ndarray) -> np.ndarray:
    """Round float32 to TF32 (10 mantissa bits, ties away from zero), as cvt.rna.tf32.f32."""
    bits = values.astype(np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


@pytest.mark.parametrize("integers", [True, False])
def test_emulated_mma_matches_a_matrix_product(cupy, rng, integers):
    if integers:  # small integers: TF32 holds them exactly, so the product must be exact
        a, b = (rng.integers(-8, 9, size).astype(np.float32) for size in ((16, 8), (8, 8)))
    else:
        a, b = (tf32(rng.standard_normal(size).astype(np.float32)) for size in ((16, 8), (8, 8)))
    d = cupy.zeros((16, 8), np.float32)
    selftest("mma_tile", Array("A", F32), Array("B", F32), Array("D", F32)).launch(
        (1,), (32,), (cupy.asarray(a), cupy.asarray(b), d))
    want = a.astype(np.float64) @ b.astype(np.float64)
    if integers:
        np.testing.assert_array_equal(d.get(), want)
    else:
        np.testing.assert_allclose(d.get(), want, rtol=1e-6, atol=1e-6)


def test_the_mma_needs_the_whole_warp(cupy):
    with pytest.raises(emulator.KernelFault, match=r"mma.sync.m16n8k8 with mask 0xffffffff names lane 16, but this "
                                                   r"warp has only 16 lanes"):
        selftest("mma_tile", Array("A", F32), Array("B", F32), Array("D", F32)).launch(
            (1,), (16,), (cupy.zeros((16, 8), np.float32), cupy.zeros((8, 8), np.float32),
                          cupy.zeros((16, 8), np.float32)))


def test_tf32_rounding_rounds_ties_away_from_zero():
    values = np.array([1.0, 1.0 + 2.0**-11, 1.0 + 2.0**-10 + 2.0**-11, -(1.0 + 2.0**-11), 1.0 + 2.0**-12], np.float32)
    np.testing.assert_array_equal(tf32(values), [1.0, 1.0 + 2.0**-10, 1.0 + 2.0**-9, -(1.0 + 2.0**-10), 1.0])


def test_host_builds_are_cached_by_source_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNKIT_EMULATE_CACHE", str(tmp_path))
    source = 'extern "C" __global__ void copy(float* y, const float* x) { y[threadIdx.x] = x[threadIdx.x]; }\n'
    first = emulator._build("copy", source)
    stamp = first.stat().st_mtime_ns
    assert emulator._build("copy", source) == first and first.stat().st_mtime_ns == stamp  # not rebuilt
    changed = emulator._build("copy", source.replace("x[threadIdx.x]", "2.0f * x[threadIdx.x]"))
    assert changed != first and changed.parent == tmp_path
    with pytest.raises(launcher.KernelCompileError, match=r"(?s)broken: the host compiler rejected it.*undefined_name"):
        emulator._build("broken", 'extern "C" __global__ void broken(float* x) { x[0] = undefined_name; }\n')
