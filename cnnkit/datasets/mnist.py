"""MNIST and Fashion-MNIST from their four IDX files, found on disk (never downloaded)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .idx import read_idx

FILE_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

FASHION_MNIST_CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

SYSTEM_DATA_DIR = Path("/usr/share/datasets")

_HOW_TO_GET = {
    "fashion-mnist": (
        "on Debian or Ubuntu: `sudo apt-get install dataset-fashion-mnist` (puts them in "
        "/usr/share/datasets/fashion-mnist, where they are found automatically)",
        "or download the four .gz files from https://github.com/zalandoresearch/fashion-mnist",
    ),
    "mnist": (
        "download the four .gz files from http://yann.lecun.com/exdb/mnist/ (or a mirror of that page)",
        "or use Fashion-MNIST, which has the same format and is packaged: "
        "`sudo apt-get install dataset-fashion-mnist`, then load_fashion_mnist()",
    ),
}


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are in none of the places searched.

    The message lists every place and how to get the files; ``searched`` holds the places.
    """

    def __init__(self, message: str, searched: list[Path]):
        super().__init__(message)
        self.searched = searched


def search_paths(name: str, path: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched for data set ``name``, in order.

    A ``path`` given explicitly is the only place: it is used or refused, never passed
    over for another copy. Otherwise ``$CNNKIT_DATA/<name>``, ``$CNNKIT_DATA`` (if that
    variable is set), ``~/.cache/cnnkit/<name>``, ``/usr/share/datasets/<name>``.
    """
    if path is not None:
        return [Path(path).expanduser()]
    places = []
    data_root = os.environ.get("CNNKIT_DATA")
    if data_root:
        places += [Path(data_root).expanduser() / name, Path(data_root).expanduser()]
    places += [Path.home() / ".cache" / "cnnkit" / name, SYSTEM_DATA_DIR / name]
    return places


def _locate(directory: Path) -> tuple[list[Path], list[str]]:
    """The four files in ``directory`` (plain or .gz), and the stems not there."""
    found, missing = [], []
    for stem in FILE_STEMS:
        candidates = [directory / stem, directory / f"{stem}.gz"]
        present = [c for c in candidates if c.is_file()]
        if present:
            found.append(present[0])
        else:
            missing.append(stem)
    return found, missing


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{images_path} must hold uint8 images of shape (n, height, width), "
                         f"got {images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{labels_path} must hold one label per image of {images_path} ({len(images)}), "
                         f"got shape {labels.shape}")
    x = images[:, None, :, :].astype(np.float32) / np.float32(255.0)
    return x, labels.astype(np.int64)


def _load(name: str, title: str, path: str | os.PathLike | None) -> tuple:
    places = search_paths(name, path)
    report = []
    for place in places:
        files, missing = _locate(place)
        if not missing:
            return _read_pair(files[0], files[1]), _read_pair(files[2], files[3])
        state = "no such directory" if not place.is_dir() else f"missing {', '.join(missing)}"
        report.append(f"  {len(report) + 1}. {place}: {state}")
    how = "\n".join(f"  - {line}" for line in _HOW_TO_GET[name])
    message = (
        f"{title} was not found. Looked for {', '.join(FILE_STEMS)} (each plain or .gz) in:\n"
        + "\n".join(report)
        + f"\nTo get the files:\n{how}\n"
        + (f"then pass path=<directory>, or put them in $CNNKIT_DATA/{name} or ~/.cache/cnnkit/{name}."
           if path is None else "then pass the directory holding them, or leave path out to search the usual places.")
    )
    raise DatasetNotFoundError(message, places)


def load_fashion_mnist(path: str | os.PathLike | None = None) -> tuple:
    """Zalando's Fashion-MNIST: 70,000 28x28 grey images of clothing in 10 classes.

    Xiao, Rasul and Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
    Benchmarking Machine Learning Algorithms", 2017. Class names are in
    :data:`FASHION_MNIST_CLASS_NAMES`. Nothing is downloaded: the files are looked
    for in the places of :func:`search_paths` (``name='fashion-mnist'``).

    Args:
        path: the directory holding the four IDX files (then no other place is searched).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: images float32 in [0, 1], labels int64.

    Shapes:
        x_train ``(60000, 1, 28, 28)``, y_train ``(60000,)``, x_test ``(10000, 1, 28, 28)``, y_test ``(10000,)``.

    Raises:
        DatasetNotFoundError: (a FileNotFoundError) listing every place searched
            and how to get the files.
    """
    return _load("fashion-mnist", "Fashion-MNIST", path)


def load_mnist(path: str | os.PathLike | None = None) -> tuple:
    """LeCun, Cortes and Burges's MNIST handwritten digits: 70,000 28x28 grey images.

    Found like :func:`load_fashion_mnist`, with ``name='mnist'``.

    Args:
        path: the directory holding the four IDX files (then no other place is searched).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: images float32 in [0, 1], labels int64.

    Shapes:
        x_train ``(60000, 1, 28, 28)``, y_train ``(60000,)``, x_test ``(10000, 1, 28, 28)``, y_test ``(10000,)``.

    Raises:
        DatasetNotFoundError: (a FileNotFoundError) listing every place searched
            and how to get the files.
    """
    return _load("mnist", "MNIST", path)
