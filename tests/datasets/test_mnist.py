from pathlib import Path

import numpy as np
import pytest

from cnnkit.datasets import DatasetNotFoundError, load_fashion_mnist, load_mnist, search_paths, write_idx
from cnnkit.datasets import mnist as mnist_module

STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $CNNKIT_DATA, an empty HOME and an empty system directory: nothing real is found."""
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(mnist_module, "SYSTEM_DATA_DIR", tmp_path / "system")
    return tmp_path


def _write_set(directory: Path, n_train=5, n_test=3, gz=True, marker=0):
    """Tiny stand-in files: image k of a set is filled with (k + marker) % 256."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.broadcast_to(((np.arange(n) + marker) % 256).astype(np.uint8)[:, None, None], (n, 28, 28))
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", (np.arange(n) % 10).astype(np.uint8))


def test_loads_shapes_dtypes_and_scaling(isolated):
    _write_set(isolated / "given", gz=False)
    (x_train, y_train), (x_test, y_test) = load_mnist(isolated / "given")
    assert x_train.shape == (5, 1, 28, 28) and x_test.shape == (3, 1, 28, 28)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    np.testing.assert_allclose(x_train[3], 3 / 255)
    np.testing.assert_array_equal(y_test, [0, 1, 2])


def test_search_order(isolated, monkeypatch):
    data_root = isolated / "data-root"
    monkeypatch.setenv("CNNKIT_DATA", str(data_root))
    places = search_paths("fashion-mnist")
    assert places == [data_root / "fashion-mnist", data_root,
                      isolated / "home" / ".cache" / "cnnkit" / "fashion-mnist", isolated / "system" / "fashion-mnist"]

    def marker_found():
        return int(round(load_fashion_mnist()[0][0][0, 0, 0, 0] * 255))

    for marker, place in reversed(list(enumerate(places))):
        _write_set(place, marker=10 * marker + 1)
        assert marker_found() == 10 * marker + 1  # the earliest complete place wins


def test_an_explicit_path_is_used_or_refused_never_passed_over(isolated):
    _write_set(isolated / "system" / "mnist", marker=7)               # a system copy that must not be used
    assert search_paths("mnist", isolated / "given") == [isolated / "given"]
    with pytest.raises(DatasetNotFoundError, match=f"{isolated / 'given'}: no such directory") as info:
        load_mnist(isolated / "given")
    assert info.value.searched == [isolated / "given"]
    partial = isolated / "partial"
    _write_set(partial, marker=3)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=f"{partial}: missing t10k-labels-idx1-ubyte"):
        load_mnist(partial)
    _write_set(partial, marker=3)
    assert load_mnist(partial)[0][0][0, 0, 0, 0] == pytest.approx(3 / 255)
    assert load_mnist()[0][0][0, 0, 0, 0] == pytest.approx(7 / 255)


def test_incomplete_directory_is_skipped_and_reported(isolated, monkeypatch):
    partial = isolated / "data-root" / "mnist"
    monkeypatch.setenv("CNNKIT_DATA", str(isolated / "data-root"))
    _write_set(partial)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    _write_set(isolated / "home" / ".cache" / "cnnkit" / "mnist", marker=7)
    assert load_mnist()[0][0][0, 0, 0, 0] == pytest.approx(7 / 255)
    (isolated / "home" / ".cache" / "cnnkit" / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=f"{partial}: missing t10k-labels-idx1-ubyte"):
        load_mnist()


def test_not_found_lists_every_place_and_how_to_get_the_files(isolated, monkeypatch):
    monkeypatch.setenv("CNNKIT_DATA", str(isolated / "data-root"))
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist()
    message = str(info.value)
    assert isinstance(info.value, DatasetNotFoundError)
    for place in info.value.searched:
        assert str(place) in message
    assert len(info.value.searched) == 4
    assert "apt-get install dataset-fashion-mnist" in message
    assert "https://github.com/zalandoresearch/fashion-mnist" in message
    assert all(stem in message for stem in STEMS)
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist()
    assert "yann.lecun.com/exdb/mnist" in str(info.value)
    assert str(isolated / "home" / ".cache" / "cnnkit" / "mnist") in str(info.value)


def test_mismatched_label_count_is_reported(isolated):
    _write_set(isolated / "given", gz=False)
    write_idx(isolated / "given" / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=r"one label per image .*\(5\), got shape \(4,\)"):
        load_mnist(isolated / "given")
