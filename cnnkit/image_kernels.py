"""The classic hand-made image kernels, applied with cnnkit's own convolution.

Before networks learned their filters, image processing designed them: identity,
edge detectors (Laplacian, Sobel), sharpen, box and Gaussian blur. Each is a small
matrix slid over the image, which is exactly what a ``Conv2D`` layer computes, so a
convolution layer is a bank of such kernels whose values are learned instead of chosen.
:func:`apply_kernel` runs a kernel through :func:`cnnkit.ops.conv2d`, and
:func:`conv2d_layer_from_kernels` puts hand-made kernels into a ``Conv2D`` layer.

Convolution here is cross-correlation (as in every deep-learning framework): output
pixel (i, j) is Σ_ab K[a, b] · x[i + a − r, j + b − r] for a kernel of radius r. Kernels
are float64 NumPy arrays; they are cast to the images' dtype when applied.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from .autograd import Tensor, no_grad
from .layers.conv import Conv2D
from .ops.conv import conv2d


# ---------------------------------------------------------------- kernels

def identity(size: int = 3) -> np.ndarray:
    """The kernel that changes nothing: 1 at the centre of a ``size`` × ``size`` square (odd size)."""
    _check_odd_size(size, "identity")
    kernel = np.zeros((size, size))
    kernel[size // 2, size // 2] = 1.0
    return kernel


def laplacian(neighbours: int = 4) -> np.ndarray:
    """Edge detection with the discrete Laplacian (negated, so bright lines give positive responses).

    ``neighbours=4``: [[0, −1, 0], [−1, 4, −1], [0, −1, 0]];
    ``neighbours=8`` adds the diagonals: −1 everywhere and 8 at the centre.
    Both sum to zero: flat regions give 0, edges and lines stand out on either side.
    """
    if neighbours == 4:
        return np.array([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
    if neighbours == 8:
        kernel = -np.ones((3, 3))
        kernel[1, 1] = 8.0
        return kernel
    raise ValueError(f"laplacian: neighbours must be 4 or 8, got {neighbours!r}")


def sobel(axis: str = "x") -> np.ndarray:
    """The Sobel derivative (Sobel & Feldman 1968): a smoothed central difference.

    ``axis="x"``: [[−1, 0, 1], [−2, 0, 2], [−1, 0, 1]], positive where the image gets
    brighter to the right (vertical edges); ``axis="y"`` is its transpose, positive where
    it gets brighter downwards (horizontal edges). The gradient magnitude is
    sqrt(gx² + gy²).
    """
    kernel = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    if axis == "x":
        return kernel
    if axis == "y":
        return kernel.T.copy()
    raise ValueError(f"sobel: axis must be 'x' or 'y', got {axis!r}")


def sharpen() -> np.ndarray:
    """[[0, −1, 0], [−1, 5, −1], [0, −1, 0]]: the identity plus the 4-neighbour Laplacian, boosting edges."""
    return identity(3) + laplacian(4)


def box_blur(size: int = 3) -> np.ndarray:
    """The mean of a ``size`` × ``size`` neighbourhood: every entry 1 / size²."""
    _check_odd_size(size, "box_blur")
    return np.full((size, size), 1.0 / size**2)


def gaussian(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    """A Gaussian blur kernel: K[a, b] ∝ exp(−((a − r)² + (b − r)²) / (2σ²)), r = size // 2, summing to one.

    Args:
        size: the (odd) side of the square kernel; 6σ rounded up to odd keeps almost all the mass.
        sigma: the standard deviation in pixels; larger blurs more.
    """
    _check_odd_size(size, "gaussian")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"gaussian: sigma must be a positive number, got {sigma!r}")
    offsets = np.arange(size) - size // 2
    profile = np.exp(-offsets**2 / (2.0 * sigma**2))
    kernel = np.outer(profile, profile)
    return kernel / kernel.sum()


def _check_odd_size(size: Any, who: str) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
        raise ValueError(f"{who}: size must be a positive odd int (the kernel has a centre pixel), got {size!r}")


# ---------------------------------------------------------------- applying them

def apply_kernel(images: Any, kernel: Any, padding: Any = "same", stride: Any = 1) -> Any:
    """Convolve every channel of every image with ``kernel`` (a depthwise :func:`~cnnkit.ops.conv2d`).

    Args:
        images: one image (H, W) or (C, H, W), or a batch (N, C, H, W): a NumPy or CuPy
            array, or a tensor (then the result is a differentiable tensor). Integer
            images are converted to the default float dtype.
        kernel: a 2-D array (KH, KW).
        padding: ``"same"`` (zeros around the border; the output keeps H × W),
            ``"valid"`` (no padding), an int or a tuple, as for ``conv2d``.
        stride: an int or (sh, sw).

    Returns:
        The filtered images, with the input's rank, array module (or tensor) and float dtype.

    Shapes:
        (H, W) -> (OH, OW); (C, H, W) -> (C, OH, OW); (N, C, H, W) -> (N, C, OH, OW).
    """
    is_tensor = isinstance(images, Tensor)
    data = images.data if is_tensor else images
    if not (isinstance(data, np.ndarray) or backend.is_cuda_array(data)):
        data = np.asarray(data)
    if data.ndim not in (2, 3, 4):
        raise ValueError(f"apply_kernel: images must have shape (H, W), (C, H, W) or (N, C, H, W), "
                         f"got {data.shape}")
    kernel = np.asarray(backend.to_numpy(kernel.data if isinstance(kernel, Tensor) else kernel))
    if kernel.ndim != 2 or kernel.dtype.kind not in "biuf":
        raise ValueError(f"apply_kernel: kernel must be a 2-D numeric array (KH, KW), got shape {kernel.shape} "
                         f"and dtype {kernel.dtype}")
    dtype = data.dtype if data.dtype.kind == "f" else backend.get_default_dtype()
    batch_shape = (1,) * (4 - data.ndim) + data.shape
    channels = batch_shape[1]
    weight = np.broadcast_to(kernel.astype(dtype), (channels, 1) + kernel.shape)
    weight = Tensor(backend.to_device(np.ascontiguousarray(weight), backend.device_of(data)))
    if is_tensor:
        x = images.astype(dtype).reshape(batch_shape)
        y = conv2d(x, weight, stride=stride, padding=padding, groups=channels)
        return y.reshape(y.shape[4 - data.ndim:])
    with no_grad():
        y = conv2d(Tensor(data.astype(dtype, copy=False).reshape(batch_shape)), weight, stride=stride,
                   padding=padding, groups=channels)
    return y.data.reshape(y.shape[4 - data.ndim:])


def conv2d_layer_from_kernels(kernels: Any, in_channels: int = 1, *, padding: Any = "same", trainable: bool = True,
                              name: str | None = None) -> Conv2D:
    """A built ``Conv2D`` layer (no bias) whose filters are the given hand-made kernels.

    Filter f computes Σ_c (kernels[f] / in_channels) ⋆ x_c: each kernel applied to the
    mean of the input channels (for one channel, the kernel itself). So a model made
    of this layer computes what :func:`apply_kernel` does, and training it would move
    the kernels away from their hand-made values, towards whatever the task needs.

    Args:
        kernels: one kernel (KH, KW), a stack (F, KH, KW), or a list of F kernels of one shape.
        in_channels: C, the channels of the images the layer will see.
        padding: as for ``Conv2D``.
        trainable: whether training may change the kernels.
        name: the layer's name.

    Returns:
        A ``Conv2D`` with F filters, built for inputs (N, in_channels, H, W).
    """
    stack = np.asarray(kernels if not isinstance(kernels, (list, tuple)) else [np.asarray(k) for k in kernels],
                       dtype=np.float64)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise ValueError(f"conv2d_layer_from_kernels: kernels must be (KH, KW), (F, KH, KW) or a list of 2-D "
                         f"kernels of one shape, got shape {stack.shape}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, (int, np.integer)) or in_channels < 1:
        raise ValueError(f"conv2d_layer_from_kernels: in_channels must be a positive int, got {in_channels!r}")
    filters = stack.shape[0]
    # Zero initial kernels: building must not draw from the global generator the user seeded.
    layer = Conv2D(filters, stack.shape[1:], padding=padding, use_bias=False, kernel_initializer="zeros",
                   trainable=trainable, name=name)
    layer.build_from_shape((None, int(in_channels), None, None))
    weight = np.repeat(stack[:, None] / in_channels, in_channels, axis=1)
    layer.set_weights([weight])
    return layer

