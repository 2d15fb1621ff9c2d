"""Hand-made kernels: their values, and applying them with conv2d against a plain NumPy reference."""
import numpy as np
import pytest

import cnnkit
from cnnkit import Input, Sequential, image_kernels
from tests.helpers import run_example, tensor


def correlate_reference(image, kernel, padding):
    """Zero-padded 2-D cross-correlation of one (H, W) image, written as the textbook double sum."""
    KH, KW = kernel.shape
    if padding == "same":
        top, left = (KH - 1) // 2, (KW - 1) // 2
        padded = np.pad(image, ((top, KH - 1 - top), (left, KW - 1 - left)))
    else:
        padded = image
    OH, OW = padded.shape[0] - KH + 1, padded.shape[1] - KW + 1
    out = np.zeros((OH, OW))
    for i in range(OH):
        for j in range(OW):
            out[i, j] = sum(kernel[a, b] * padded[i + a, j + b] for a in range(KH) for b in range(KW))
    return out


KERNELS = {
    "identity": image_kernels.identity(),
    "laplacian4": image_kernels.laplacian(4),
    "laplacian8": image_kernels.laplacian(8),
    "sobel_x": image_kernels.sobel("x"),
    "sobel_y": image_kernels.sobel("y"),
    "sharpen": image_kernels.sharpen(),
    "box_blur": image_kernels.box_blur(3),
    "gaussian": image_kernels.gaussian(5, 1.3),
}


def test_kernel_values():
    np.testing.assert_array_equal(image_kernels.identity(5)[2], [0, 0, 1, 0, 0])
    assert image_kernels.identity(5).sum() == 1
    np.testing.assert_array_equal(image_kernels.laplacian(4), [[0, -1, 0], [-1, 4, -1], [0, -1, 0]])
    np.testing.assert_array_equal(image_kernels.laplacian(8), [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(image_kernels.sobel("x"), [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_array_equal(image_kernels.sobel("y"), [[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
    np.testing.assert_array_equal(image_kernels.sharpen(), [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    np.testing.assert_allclose(image_kernels.box_blur(5), np.full((5, 5), 1 / 25))
    for edge in ("laplacian4", "laplacian8", "sobel_x", "sobel_y"):
        assert KERNELS[edge].sum() == 0, edge  # flat regions give no response


@pytest.mark.parametrize("size, sigma", [(1, 1.0), (3, 0.5), (5, 1.0), (9, 2.5), (7, 10.0)])
def test_gaussian_sums_to_one_and_follows_the_formula(size, sigma):
    kernel = image_kernels.gaussian(size, sigma)
    assert kernel.shape == (size, size)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    r = size // 2
    a, b = np.mgrid[-r:r + 1, -r:r + 1]
    expected = np.exp(-(a**2 + b**2) / (2 * sigma**2))
    np.testing.assert_allclose(kernel, expected / expected.sum(), rtol=1e-12)
    assert kernel.argmax() == kernel.size // 2
    np.testing.assert_allclose(kernel, kernel.T)


def test_a_wider_gaussian_blurs_more():
    narrow, wide = image_kernels.gaussian(9, 1.0), image_kernels.gaussian(9, 3.0)
    assert wide[4, 4] < narrow[4, 4] and wide[0, 0] > narrow[0, 0]


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_apply_filter_matches_the_reference_for_every_layout(name, padding, device, rng):
    kernel = KERNELS[name]
    batch = rng.standard_normal((2, 3, 9, 11))
    expected = np.array([[correlate_reference(channel, kernel, padding) for channel in image] for image in batch])

    result = image_kernels.apply_kernel(tensor(batch, device).data, kernel, padding=padding)
    assert cnnkit.get_array_module(result) is cnnkit.get_array_module(tensor(batch, device).data)
    np.testing.assert_allclose(cnnkit.to_numpy(result), expected, atol=1e-12)
    np.testing.assert_allclose(cnnkit.to_numpy(image_kernels.apply_kernel(tensor(batch[1], device).data, kernel,
                                                                    padding=padding)), expected[1], atol=1e-12)
    single = image_kernels.apply_kernel(batch[0, 2], kernel, padding=padding)
    assert single.shape == expected[0, 2].shape
    np.testing.assert_allclose(single, expected[0, 2], atol=1e-12)


def test_identity_changes_nothing_and_blurs_keep_the_mean_of_flat_images(rng):
    image = rng.standard_normal((3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(image_kernels.apply_kernel(image, image_kernels.identity()), image)
    flat = np.full((6, 6), 2.5, np.float32)
    for kernel, expected in ((image_kernels.gaussian(5, 1.0), 2.5), (image_kernels.box_blur(3), 2.5),
                             (image_kernels.laplacian(8), 0.0)):
        np.testing.assert_allclose(image_kernels.apply_kernel(flat, kernel, padding="valid"), expected,
                                   rtol=1e-6, atol=1e-6)


def test_sobel_x_answers_vertical_edges_with_the_right_sign():
    step = np.zeros((5, 6), np.float32)
    step[:, 3:] = 1.0  # dark left, bright right
    gx = image_kernels.apply_kernel(step, image_kernels.sobel("x"), padding="valid")
    gy = image_kernels.apply_kernel(step, image_kernels.sobel("y"), padding="valid")
    assert gx.max() == 4 and gx.min() == 0 and np.all(gy == 0)


def test_dtypes_and_tensors(rng):
    images = (rng.uniform(0, 255, (2, 1, 6, 6))).astype(np.uint8)
    assert image_kernels.apply_kernel(images, image_kernels.box_blur()).dtype == np.float32
    assert image_kernels.apply_kernel(images.astype(np.float64), image_kernels.box_blur()).dtype == np.float64
    x = cnnkit.Tensor(images.astype(np.float64), requires_grad=True)
    y = image_kernels.apply_kernel(x, image_kernels.sobel("x"))
    assert isinstance(y, cnnkit.Tensor) and y.shape == (2, 1, 6, 6)
    y.sum().backward()
    assert x.grad.shape == x.shape


def test_a_conv_layer_made_of_hand_made_kernels_computes_the_same(device, rng):
    chosen = [image_kernels.sobel("x"), image_kernels.sobel("y"), image_kernels.laplacian(4),
              image_kernels.gaussian(3, 0.8)]
    layer = image_kernels.conv2d_layer_from_kernels(chosen, in_channels=1, name="classic")
    model = Sequential([Input((1, 10, 12)), layer]).to(device)
    image = rng.standard_normal((3, 1, 10, 12)).astype(np.float32)
    out = model.predict(image)
    assert out.shape == (3, 4, 10, 12)
    for f, kernel in enumerate(chosen):
        np.testing.assert_allclose(out[:, f], image_kernels.apply_kernel(image, kernel)[:, 0], atol=1e-5)
    assert layer.trainable and layer.bias is None


def test_conv_layer_over_several_channels_filters_their_mean(rng):
    layer = image_kernels.conv2d_layer_from_kernels(image_kernels.sharpen(), in_channels=3, trainable=False)
    assert layer.kernel.shape == (1, 3, 3, 3) and not layer.kernel.trainable
    image = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    expected = image_kernels.apply_kernel(image.mean(axis=1, keepdims=True), image_kernels.sharpen())
    np.testing.assert_allclose(layer(image).numpy(), expected, atol=1e-5)


def test_building_the_layer_does_not_touch_the_global_generator():
    cnnkit.manual_seed(3)
    before = cnnkit.backend.rng().random()
    cnnkit.manual_seed(3)
    image_kernels.conv2d_layer_from_kernels(image_kernels.box_blur(3))
    assert cnnkit.backend.rng().random() == before


def test_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        image_kernels.gaussian(4, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        image_kernels.gaussian(5, 0)
    with pytest.raises(ValueError, match="neighbours must be 4 or 8"):
        image_kernels.laplacian(6)
    with pytest.raises(ValueError, match="axis must be 'x' or 'y'"):
        image_kernels.sobel("z")
    with pytest.raises(ValueError, match=r"\(H, W\), \(C, H, W\) or \(N, C, H, W\)"):
        image_kernels.apply_kernel(np.zeros(5), image_kernels.box_blur())
    with pytest.raises(ValueError, match="2-D"):
        image_kernels.apply_kernel(np.zeros((5, 5)), np.ones((1, 3, 3)))
    with pytest.raises(ValueError, match="in_channels"):
        image_kernels.conv2d_layer_from_kernels(image_kernels.box_blur(), in_channels=0)


def test_filters_demo_writes_its_pictures(tmp_path):
    output = run_example("image_kernels_demo.py", "--output", str(tmp_path))
    assert "max difference" in output
    for name in ("image_kernels.png", "learned_filters.png", "feature_maps.png"):
        assert (tmp_path / name).stat().st_size > 5000, name
