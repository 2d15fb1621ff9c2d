import numpy as np
import pytest

import cnnkit
from cnnkit.data import transforms as T
from tests.helpers import tensor

IMAGE = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # [[1 2 3] [4 5 6] [7 8 9]]


def _batch(device, n=64, shape=(2, 5, 7)):
    x = np.random.default_rng(0).standard_normal((n,) + shape).astype(np.float32)
    return tensor(x, device).data


def _host(a):
    return cnnkit.to_numpy(a)


def _shifted(image, dy, dx, fill=0.0):
    """The 2-D image moved down by dy and right by dx, written out pixel by pixel."""
    H, W = image.shape
    out = np.full_like(image, fill)
    for i in range(H):
        for j in range(W):
            if 0 <= i - dy < H and 0 <= j - dx < W:
                out[i, j] = image[i - dy, j - dx]
    return out


def test_translate_exact_values():
    x = np.concatenate([IMAGE, IMAGE, IMAGE])
    out = T.translate(x, np.array([[1, 0], [0, -1], [-2, 2]]), fill=-1.0)
    np.testing.assert_array_equal(out[0, 0], [[-1, -1, -1], [1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(out[1, 0], [[2, 3, -1], [5, 6, -1], [8, 9, -1]])
    np.testing.assert_array_equal(out[2, 0], [[-1, -1, 7], [-1, -1, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(T.translate(IMAGE, np.array([[5, 0]]))[0, 0], np.zeros((3, 3)))


def test_random_flip_p1_exact_and_p0_identity(device):
    x = tensor(IMAGE, device).data
    np.testing.assert_array_equal(_host(T.random_flip(x, p=1.0))[0, 0], [[3, 2, 1], [6, 5, 4], [9, 8, 7]])
    both = T.random_flip(x, horizontal=True, vertical=True, p=1.0)
    np.testing.assert_array_equal(_host(both)[0, 0], [[9, 8, 7], [6, 5, 4], [3, 2, 1]])
    vertical = T.random_flip(x, horizontal=False, vertical=True, p=1.0)
    np.testing.assert_array_equal(_host(vertical)[0, 0], [[7, 8, 9], [4, 5, 6], [1, 2, 3]])
    np.testing.assert_array_equal(_host(T.random_flip(x, p=0.0)), IMAGE)


def test_random_flip_chooses_per_sample(device):
    x = _batch(device)
    out = _host(T.random_flip(x))
    flipped = np.array([np.array_equal(o, s[..., ::-1]) for o, s in zip(out, _host(x))])
    kept = np.array([np.array_equal(o, s) for o, s in zip(out, _host(x))])
    assert np.all(flipped | kept) and 15 < flipped.sum() < 49
    assert out.shape == x.shape and out.dtype == x.dtype


def test_random_shift_moves_each_sample_by_at_most_max_shift(device):
    x = np.repeat(IMAGE, 60, axis=0)
    out = _host(T.random_shift(tensor(x, device).data, 1, fill=0.0))
    assert out.shape == x.shape
    candidates = {(dy, dx): _shifted(IMAGE[0, 0], dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    seen = set()
    for sample in out:
        matches = [k for k, v in candidates.items() if np.array_equal(sample[0], v)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) >= 7  # the nine shifts all occur, give or take chance


def test_random_shift_per_axis_limits():
    x = np.repeat(IMAGE, 30, axis=0)
    out = T.random_shift(x, (0, 1), seed=4)
    for sample in out:
        assert any(np.array_equal(sample[0], _shifted(IMAGE[0, 0], 0, dx)) for dx in (-1, 0, 1))


def test_random_crop_picks_windows_of_the_padded_image(device):
    x = np.repeat(IMAGE, 40, axis=0)
    out = _host(T.random_crop(tensor(x, device).data, 2, padding=1, fill=-1.0))
    assert out.shape == (40, 1, 2, 2)
    padded = np.pad(IMAGE[0, 0], 1, constant_values=-1.0)
    windows = [padded[i:i + 2, j:j + 2] for i in range(4) for j in range(4)]
    hits = [next(k for k, w in enumerate(windows) if np.array_equal(s[0], w)) for s in out]
    assert len(set(hits)) >= 10
    np.testing.assert_array_equal(T.random_crop(IMAGE, 3), IMAGE)  # the only window is the image


def test_random_crop_rectangular_size():
    out = T.random_crop(np.zeros((4, 3, 8, 6)), (5, 6), padding=(0, 1), seed=0)
    assert out.shape == (4, 3, 5, 6)


def test_gaussian_noise_statistics_and_dtype(device):
    x = tensor(np.zeros((200, 3, 8, 8), np.float32), device).data
    out = _host(T.gaussian_noise(x, 0.5))
    assert out.dtype == np.float32
    assert abs(out.mean()) < 0.01 and abs(out.std() - 0.5) < 0.01
    assert not np.array_equal(out[0], out[1])
    np.testing.assert_array_equal(T.gaussian_noise(np.ones(3), 0.0), np.ones(3))


@pytest.mark.parametrize("fn", [
    lambda x, seed: T.random_flip(x, vertical=True, seed=seed),
    lambda x, seed: T.random_shift(x, 2, seed=seed),
    lambda x, seed: T.random_crop(x, (4, 5), padding=1, seed=seed),
    lambda x, seed: T.gaussian_noise(x, 0.1, seed=seed),
])
def test_same_seed_same_result_and_global_seed_reproducible(device, fn):
    x = _batch(device)
    np.testing.assert_array_equal(_host(fn(x, 3)), _host(fn(x, 3)))
    assert not np.array_equal(_host(fn(x, 3)), _host(fn(x, 4)))
    cnnkit.manual_seed(11)
    first = _host(fn(x, None))
    cnnkit.manual_seed(11)
    np.testing.assert_array_equal(_host(fn(x, None)), first)


def test_inputs_are_not_modified_and_tensors_come_back_as_tensors():
    x = IMAGE.copy()
    T.random_flip(x, p=1.0)
    T.random_shift(x, 1)
    np.testing.assert_array_equal(x, IMAGE)
    out = T.random_flip(cnnkit.Tensor(x), p=1.0)
    assert isinstance(out, cnnkit.Tensor) and out.shape == IMAGE.shape


def test_transform_objects_and_compose():
    x = _batch("cpu", n=8, shape=(1, 6, 6))
    pipeline = T.Compose([T.RandomShift(1, seed=0), T.RandomFlip(seed=1), T.GaussianNoise(0.1, seed=2)])
    first, second = pipeline(x), pipeline(x)
    assert first.shape == x.shape and not np.array_equal(first, second)
    again = T.Compose([T.RandomShift(1, seed=0), T.RandomFlip(seed=1), T.GaussianNoise(0.1, seed=2)])
    np.testing.assert_array_equal(again(x), first)
    assert T.RandomCrop(4, padding=1)(x).shape == (8, 1, 4, 4)
    assert "RandomShift(max_shift=(1, 1)" in repr(pipeline)


@pytest.mark.parametrize("call,error,match", [
    (lambda: T.random_flip(np.zeros((2, 3, 4))), ValueError, r"NCHW batch \(4-D\), got shape \(2, 3, 4\)"),
    (lambda: T.random_flip(np.zeros((1, 1, 2, 2)), horizontal=False), ValueError, "at least one"),
    (lambda: T.random_flip(np.zeros((1, 1, 2, 2)), p=1.5), ValueError, r"p must be a probability"),
    (lambda: T.random_shift(np.zeros((1, 1, 2, 2)), -1), ValueError, "max_shift must be an integer >= 0"),
    (lambda: T.random_crop(np.zeros((1, 1, 2, 2)), 5, padding=1), ValueError, r"larger than the padded image"),
    (lambda: T.gaussian_noise(np.zeros(3, np.int64), 0.1), ValueError, "must be floating-point"),
    (lambda: T.gaussian_noise(np.zeros(3), -0.1), ValueError, "stddev must be a number >= 0"),
    (lambda: T.translate(np.zeros((2, 1, 2, 2)), np.zeros((2, 2))), ValueError, r"shifts must be integers"),
    (lambda: T.RandomFlip(seed=-1), ValueError, "seed must be a non-negative integer"),
    (lambda: T.Compose([T.RandomFlip(), "noise"]), TypeError, r"transforms\[1\] must be callable"),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
