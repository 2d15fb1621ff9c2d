"""The data sets themselves: UCI digits (packaged), MNIST/Fashion-MNIST and IDX files, folders of pictures, 2-D toys
(feeding: cnnkit.data)."""
from .digits import load_digits
from .idx import read_idx, write_idx
from .image_folder import load_image_folder
from .mnist import FASHION_MNIST_CLASS_NAMES, DatasetNotFoundError, load_fashion_mnist, load_mnist, search_paths
from .synthetic import make_circles, make_gaussians, make_spirals, make_xor

__all__ = [
    "FASHION_MNIST_CLASS_NAMES", "DatasetNotFoundError", "load_digits", "load_fashion_mnist", "load_image_folder",
    "load_mnist",
    "make_circles", "make_gaussians", "make_spirals", "make_xor", "read_idx", "search_paths", "write_idx",
]
