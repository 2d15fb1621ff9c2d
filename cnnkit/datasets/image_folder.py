"""Pictures from a folder with one subfolder per class (Keras' ``image_dataset_from_directory``,
torchvision's ``ImageFolder``), read with Pillow (the ``images`` extra)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".ppm", ".tif", ".tiff", ".webp")
_MODES = {"rgb": "RGB", "grayscale": "L"}


def load_image_folder(path: "str | os.PathLike", image_size: "int | Sequence[int]", *, color_mode: str = "rgb",
                      class_names: Sequence[str] | None = None, verbose: int = 1
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read every picture under ``path/<class name>/``, resized, as channels-first float images in [0, 1].

    Args:
        path: a folder holding one subfolder per class (``flowers/daisy/*.jpg``,
            ``flowers/tulip/*.jpg``, ...); files with other extensions are skipped.
        image_size: (height, width) of the returned images, or one int for squares; each
            picture is resized to it with bilinear interpolation (the aspect ratio is not kept).
        color_mode: "rgb" (3 channels) or "grayscale" (1 channel).
        class_names: the subfolders to read, in label order; by default every subfolder,
            sorted by name (label 0 is the first).
        verbose: 1 shows a progress bar when writing to a terminal; 0 is quiet.

    Returns:
        (x, y, class_names): x float32 (N, C, height, width) in [0, 1], y int64 labels (N,),
        in folder order then file-name order.
    """
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("load_image_folder reads pictures with Pillow, an optional dependency: "
                          "pip install 'cnnkit[images]' (or pip install Pillow)") from None
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"load_image_folder: {str(root)!r} is not a folder")
    size = _size(image_size)
    if color_mode not in _MODES:
        raise ValueError(f"load_image_folder: color_mode must be 'rgb' or 'grayscale', got {color_mode!r}")
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if class_names is None else list(class_names)
    for name in names:
        if not (root / name).is_dir():
            raise FileNotFoundError(f"load_image_folder: class folder {str(root / name)!r} does not exist")
    files = [(label, file) for label, name in enumerate(names)
             for file in sorted((root / name).iterdir()) if file.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise ValueError(f"load_image_folder: no pictures ({', '.join(IMAGE_EXTENSIONS)}) in the subfolders of "
                         f"{str(root)!r}; expected {str(root)}/<class name>/<picture>")
    channels = 3 if color_mode == "rgb" else 1
    x = np.empty((len(files), channels) + size, np.float32)
    y = np.empty(len(files), np.int64)
    quiet = verbose == 0 or not sys.stderr.isatty()
    for index, (label, file) in enumerate(tqdm(files, desc="reading pictures", disable=quiet)):
        with Image.open(file) as picture:
            resized = picture.convert(_MODES[color_mode]).resize((size[1], size[0]), Image.Resampling.BILINEAR)
        pixels = np.asarray(resized, dtype=np.float32) / 255
        x[index] = pixels.reshape(size + (channels,)).transpose(2, 0, 1)
        y[index] = label
    return x, y, names


def _size(image_size: "int | Sequence[int]") -> tuple[int, int]:
    pair = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in pair):
        raise ValueError(f"load_image_folder: image_size must be a positive int or (height, width), "
                         f"got {image_size!r}")
    return pair
