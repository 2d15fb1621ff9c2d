"""Hand-made kernels: their values, and applying them with conv2d against a plain NumPy reference."""
import numpy as np
import pytest

import cnnkit
from cnnkit import Input, Sequential, filters
from tests.helpers import tensor
from tests.test_examples import run_example


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
    "identity": filters.identity(),
    "laplacian4": filters.laplacian(4),
    "laplacian8": filters.laplacian(8),
    "sobel_x": filters.sobel("x"),
    "sobel_y": filters.sobel("y"),
    "sharpen": filters.sharpen(),
    "box_blur": filters.box_blur(3),
    "gaussian": filters.gaussian(5, 1.3),
}


def test_kernel_values():
    np.testing.assert_array_equal(filters.identity(5)[2], [0, 0, 1, 0, 0])
    assert filters.identity(5).sum() == 1
    np.testing.assert_array_equal(filters.laplacian(4), [[0, -1, 0], [-1, 4, -1], [0, -1, 0]])
    np.testing.assert_array_equal(filters.laplacian(8), [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(filters.sobel("x"), [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_array_equal(filters.sobel("y"), [[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
    np.testing.assert_array_equal(filters.sharpen(), [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    np.testing.assert_allclose(filters.box_blur(5), np.full((5, 5), 1 / 25))
    for edge in ("laplacian4", "laplacian8", "sobel_x", "sobel_y"):
        assert KERNELS[edge].sum() == 0, edge  # flat regions give no response


@pytest.mark.parametrize("size, sigma", [(1, 1.0), (3, 0.5), (5, 1.0), (9, 2.5), (7, 10.0)])
def test_gaussian_sums_to_one_and_follows_the_formula(size, sigma):
    kernel = filters.gaussian(size, sigma)
    assert kernel.shape == (size, size)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    r = size // 2
    a, b = np.mgrid[-r:r + 1, -r:r + 1]
    expected = np.exp(-(a**2 + b**2) / (2 * sigma**2))
    np.testing.assert_allclose(kernel, expected / expected.sum(), rtol=1e-12)
    assert kernel.argmax() == kernel.size // 2
    np.testing.assert_allclose(kernel, kernel.T)


def test_a_wider_gaussian_blurs_more():
    narrow, wide = filters.gaussian(9, 1.0), filters.gaussian(9, 3.0)
    assert wide[4, 4] < narrow[4, 4] and wide[0, 0] > narrow[0, 0]


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_apply_filter_matches_the_reference_for_every_layout(name, padding, device, rng):
    kernel = KERNELS[name]
    batch = rng.standard_normal((2, 3, 9, 11))
    expected = np.array([[correlate_reference(channel, kernel, padding) for channel in image] for image in batch])

    result = filters.apply_filter(tensor(batch, device).data, kernel, padding=padding)
    assert cnnkit.get_array_module(result) is cnnkit.get_array_module(tensor(batch, device).data)
    np.testing.assert_allclose(cnnkit.to_numpy(result), expected, atol=1e-12)
    np.testing.assert_allclose(cnnkit.to_numpy(filters.apply_filter(tensor(batch[1], device).data, kernel,
                                                                    padding=padding)), expected[1], atol=1e-12)
    single = filters.apply_filter(batch[0, 2], kernel, padding=padding)
    assert single.shape == expected[0, 2].shape
    np.testing.assert_allclose(single, expected[0, 2], atol=1e-12)


def test_identity_changes_nothing_and_blurs_keep_the_mean_of_flat_images(rng):
    image = rng.standard_normal((3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(filters.apply_filter(image, filters.identity()), image)
    flat = np.full((6, 6), 2.5, np.float32)
    np.testing.assert_allclose(filters.apply_filter(flat, filters.gaussian(5, 1.0), padding="valid"), 2.5, rtol=1e-6)
    np.testing.assert_allclose(filters.apply_filter(flat, filters.box_blur(3), padding="valid"), 2.5, rtol=1e-6)
    np.testing.assert_allclose(filters.apply_filter(flat, filters.laplacian(8), padding="valid"), 0, atol=1e-6)


def test_sobel_x_answers_vertical_edges_with_the_right_sign():
    step = np.zeros((5, 6), np.float32)
    step[:, 3:] = 1.0  # dark left, bright right
    gx = filters.apply_filter(step, filters.sobel("x"), padding="valid")
    gy = filters.apply_filter(step, filters.sobel("y"), padding="valid")
    assert gx.max() == 4 and gx.min() == 0 and np.all(gy == 0)


def test_dtypes_and_tensors(rng):
    images = (rng.uniform(0, 255, (2, 1, 6, 6))).astype(np.uint8)
    assert filters.apply_filter(images, filters.box_blur()).dtype == np.float32
    assert filters.apply_filter(images.astype(np.float64), filters.box_blur()).dtype == np.float64
    x = cnnkit.Tensor(images.astype(np.float64), requires_grad=True)
    y = filters.apply_filter(x, filters.sobel("x"))
    assert isinstance(y, cnnkit.Tensor) and y.shape == (2, 1, 6, 6)
    y.sum().backward()
    assert x.grad.shape == x.shape


def test_a_conv_layer_made_of_hand_made_kernels_computes_the_same(device, rng):
    chosen = [filters.sobel("x"), filters.sobel("y"), filters.laplacian(4), filters.gaussian(3, 0.8)]
    layer = filters.conv2d_layer_from_kernels(chosen, in_channels=1, name="classic")
    model = Sequential([Input((1, 10, 12)), layer]).to(device)
    image = rng.standard_normal((3, 1, 10, 12)).astype(np.float32)
    out = model.predict(image)
    assert out.shape == (3, 4, 10, 12)
    for f, kernel in enumerate(chosen):
        np.testing.assert_allclose(out[:, f], filters.apply_filter(image, kernel)[:, 0], atol=1e-5)
    assert layer.trainable and layer.bias is None


def test_conv_layer_over_several_channels_filters_their_mean(rng):
    layer = filters.conv2d_layer_from_kernels(filters.sharpen(), in_channels=3, trainable=False)
    assert layer.kernel.shape == (1, 3, 3, 3) and not layer.kernel.trainable
    image = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    expected = filters.apply_filter(image.mean(axis=1, keepdims=True), filters.sharpen())
    np.testing.assert_allclose(layer(image).numpy(), expected, atol=1e-5)


def test_building_the_layer_does_not_touch_the_global_generator():
    cnnkit.manual_seed(3)
    before = cnnkit.backend.rng().random()
    cnnkit.manual_seed(3)
    filters.conv2d_layer_from_kernels(filters.box_blur(3))
    assert cnnkit.backend.rng().random() == before


def test_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        filters.gaussian(4, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        filters.gaussian(5, 0)
    with pytest.raises(ValueError, match="neighbours must be 4 or 8"):
        filters.laplacian(6)
    with pytest.raises(ValueError, match="axis must be 'x' or 'y'"):
        filters.sobel("z")
    with pytest.raises(ValueError, match=r"\(H, W\), \(C, H, W\) or \(N, C, H, W\)"):
        filters.apply_filter(np.zeros(5), filters.box_blur())
    with pytest.raises(ValueError, match="2-D"):
        filters.apply_filter(np.zeros((5, 5)), np.ones((1, 3, 3)))
    with pytest.raises(ValueError, match="in_channels"):
        filters.conv2d_layer_from_kernels(filters.box_blur(), in_channels=0)


def test_filters_demo_writes_its_pictures(tmp_path):
    output = run_example("filters_demo.py", "--output", str(tmp_path))
    assert "max difference" in output
    for name in ("filters.png", "learned_filters.png", "feature_maps.png"):
        assert (tmp_path / name).stat().st_size > 5000, name
