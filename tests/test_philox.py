"""Philox4x32-10 on the host (cnnkit.philox) and the random stream every device draws from."""
import os
import shutil
import sys

import numpy as np
import pytest

import cnnkit
from cnnkit import backend, philox
from cnnkit.data import transforms
from cnnkit.ops.dropout import dropout, dropout_reference
from tests.fake_gpu import on_device

# Known answers of Philox4x32-10 from the kat_vectors file of the Random123 distribution
# (D. E. Shaw Research), as quoted in its unit tests: counter words c0..c3, key words k0, k1
# -> the four output words.
RANDOM123_KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", RANDOM123_KAT)
def test_rounds_reproduce_the_random123_known_answers(counter, key, expected):
    words = philox.philox4x32_10(*(np.array([c], dtype=np.uint64) for c in counter), key)
    assert tuple(int(w[0]) for w in words) == expected


def test_words_follow_the_counter_convention():
    seed, stream = 0x299F31D0A4093822, 0x0370734413198A2E
    words = philox.random_words(np, seed, stream, 10)
    assert words.dtype == np.uint32 and words.shape == (10,)
    for block in range(3):  # word i is word i % 4 of block i // 4, the stream in the upper counter half
        expected = philox.philox4x32_10(*(np.array([c], dtype=np.uint64) for c in
                                          (block, 0, stream & 0xFFFFFFFF, stream >> 32)),
                                        (seed & 0xFFFFFFFF, seed >> 32))
        np.testing.assert_array_equal(words[4 * block:4 * block + 4], [int(w[0]) for w in expected][:10 - 4 * block])


def test_uniform_floats_are_in_range_and_on_the_grid():
    u32 = philox.uniform(np, 5, 1, (1000,), np.float32)
    u64 = philox.uniform(np, 5, 1, (3, 7), np.float64)
    assert u32.dtype == np.float32 and u64.dtype == np.float64 and u64.shape == (3, 7)
    assert 0 <= u32.min() and u32.max() < 1 and 0 <= u64.min() and u64.max() < 1
    np.testing.assert_array_equal(u32 * 2**24, np.floor(u32 * 2**24))
    words = philox.random_words(np, 5, 1, 1000)
    np.testing.assert_array_equal(u32, (words >> 8) / np.float32(2**24))
    assert abs(float(philox.uniform(np, 9, 0, (100_000,)).mean()) - 0.5) < 0.005
    with pytest.raises(ValueError, match="float32 or float64, got float16"):
        philox.uniform(np, 1, 0, (2,), np.float16)


def test_draws_are_reproducible_and_streams_independent():
    a, b = philox.random_words(np, 3, 1, 4096), philox.random_words(np, 3, 2, 4096)
    np.testing.assert_array_equal(a, philox.random_words(np, 3, 1, 4096))
    assert np.mean(a == b) < 0.01
    np.testing.assert_array_equal(philox.random_words(np, 3, 1, 7), a[:7])  # a prefix of the longer draw


def test_dropout_mask_is_the_thresholded_words():
    x = np.arange(1, 36, dtype=np.float32).reshape(5, 7)
    y, mask = dropout_reference(x, 0.25, 11, 4)
    kept = philox.random_words(np, 11, 4, 35).reshape(5, 7) >= philox.dropout_threshold(0.25)
    np.testing.assert_array_equal(mask, np.where(kept, np.float32(1 / 0.75), np.float32(0)))
    np.testing.assert_array_equal(y, x * mask)
    assert mask.dtype == y.dtype == np.float32


def test_dropout_and_augmentation_draw_the_same_bits_on_cpu_and_gpu(fake_gpu):
    """The reference on device arrays (the default GPU path) makes the CPU's masks bit for bit."""
    x = np.random.default_rng(0).standard_normal((3, 2, 5, 5)).astype(np.float32)
    results = []
    for array in (x, on_device(x, 1)):
        cnnkit.manual_seed(123)
        y = dropout(array, 0.5).data
        shifted = transforms.random_shift(array, 2)
        noisy = transforms.gaussian_noise(array, 0.1)
        results.append([np.asarray(r) for r in (y, shifted, noisy)])
    for cpu, gpu in zip(*results):
        np.testing.assert_array_equal(cpu, gpu)


def test_the_stream_counter_is_saved_and_restored_with_the_rng_state():
    cnnkit.manual_seed(5)
    backend.next_random_stream()
    state = backend.get_rng_state()
    expected = backend.rng().random(), backend.next_random_stream()
    backend.next_random_stream()
    backend.set_rng_state(state)
    assert (backend.rng().random(), backend.next_random_stream()) == expected == (expected[0], (5, 2))
    older = state["numpy"]  # a state saved before the stream existed restores the generator alone
    backend.set_rng_state(older)
    assert backend.rng().random() == expected[0]


@pytest.mark.skipif(shutil.which("g++") is None or sys.platform != "linux" or os.uname().machine != "x86_64",
                    reason="the kernel emulator needs g++ on x86-64 Linux")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_cuda_dropout_kernel_draws_the_numpy_philox_bits(monkeypatch, dtype):
    """kernels/elementwise.cu's dropout, run by the kernel emulator, keeps exactly the elements the
    NumPy Philox keeps: the same (seed, stream, index) -> word, on the vector and the scalar path."""
    from cnnkit import registry
    from cnnkit.cuda import elementwise, emulated_cupy
    from cnnkit.registry import impl

    launched, named_kernel = [], elementwise.named_kernel
    monkeypatch.setattr(elementwise, "named_kernel", lambda name, suffix: launched.append(name) or named_kernel(name, suffix))
    monkeypatch.setattr(backend, "_cupy_stand_in", emulated_cupy)
    monkeypatch.setattr(registry, "_cuda_kernels_enabled", True)
    x = np.random.default_rng(3).standard_normal((7, 13, 11)).astype(dtype)  # 1001: a partial last quad
    for seed, stream in [(0, 1), (2**63 + 5, 2**33 + 7)]:
        y, mask = (backend.to_numpy(a) for a in impl("dropout", emulated_cupy.asarray(x), 0.3, seed, stream))
        y_ref, mask_ref = dropout_reference(x, 0.3, seed, stream)
        np.testing.assert_array_equal(mask, mask_ref)
        np.testing.assert_array_equal(y, y_ref)
    assert launched == ["dropout", "dropout"]  # the kernel ran, not the reference
