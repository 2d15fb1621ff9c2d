"""load_image_folder: one class per subfolder, resized channels-first images in [0, 1]."""
import sys

import numpy as np
import pytest

from cnnkit.datasets import load_image_folder

Image = pytest.importorskip("PIL.Image")


def write_folder(root):
    """cats/ holds two red pictures (one PNG, one JPEG), dogs/ one blue; notes.txt is not a picture."""
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    Image.new("RGB", (10, 6), (255, 0, 0)).save(root / "cats" / "a.png")
    Image.new("RGB", (4, 4), (255, 0, 0)).save(root / "cats" / "b.jpg", quality=100)
    Image.new("RGB", (7, 9), (0, 0, 255)).save(root / "dogs" / "c.png")
    (root / "cats" / "notes.txt").write_text("not a picture")


def test_reads_one_class_per_subfolder(tmp_path):
    write_folder(tmp_path)
    x, y, names = load_image_folder(tmp_path, (5, 8), verbose=0)
    assert names == ["cats", "dogs"]
    assert x.shape == (3, 3, 5, 8) and x.dtype == np.float32
    np.testing.assert_array_equal(y, [0, 0, 1])
    np.testing.assert_allclose(x[0, :, 2, 3], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(x[1, :, 2, 3], [1, 0, 0], atol=0.02)  # JPEG
    np.testing.assert_allclose(x[2, :, 2, 3], [0, 0, 1], atol=1e-6)


def test_grayscale_square_size_and_chosen_classes(tmp_path):
    write_folder(tmp_path)
    x, y, names = load_image_folder(tmp_path, 4, color_mode="grayscale", class_names=["dogs"], verbose=0)
    assert names == ["dogs"] and x.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(x, 29 / 255, atol=1 / 255)  # ITU-R 601-2 luma of pure blue
    np.testing.assert_array_equal(y, [0])


def test_mistakes_are_named(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_image_folder(tmp_path / "absent", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no pictures"):
        load_image_folder(tmp_path, 8)
    with pytest.raises(ValueError, match="image_size"):
        load_image_folder(tmp_path, (8, 0))
    with pytest.raises(ValueError, match="color_mode"):
        load_image_folder(tmp_path, 8, color_mode="cmyk")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"cnnkit\[images\]"):
        load_image_folder(tmp_path, 8)
