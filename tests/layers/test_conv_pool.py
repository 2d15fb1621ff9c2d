import numpy as np
import pytest

import cnnkit
from cnnkit.layers import (AvgPool2D, Conv1D, Conv2D, Conv3D, DepthwiseConv2D, GlobalAveragePooling2D,
                           GlobalMaxPooling2D, Input, L2Pool2D, MaxPool1D, MaxPool2D, MaxPool3D, SeparableConv2D,
                           ZeroPadding2D)
from cnnkit.ops.conv import conv2d
from tests.helpers import tensor


@pytest.mark.parametrize("layer,input_shape,output_shape", [
    (Conv1D(4, 3), (2, 3, 10), (2, 4, 8)),
    (Conv2D(4, 3, padding="same"), (2, 3, 7, 7), (2, 4, 7, 7)),
    (Conv2D(4, (3, 2), strides=2), (1, 3, 9, 8), (1, 4, 4, 4)),
    (Conv2D(4, 3, dilation_rate=2), (1, 2, 9, 9), (1, 4, 5, 5)),
    (Conv2D(4, 3, groups=2), (1, 2, 5, 5), (1, 4, 3, 3)),
    (Conv3D(2, 3, padding="same"), (1, 1, 4, 5, 6), (1, 2, 4, 5, 6)),
    (DepthwiseConv2D(3, depth_multiplier=2), (1, 3, 6, 6), (1, 6, 4, 4)),
    (SeparableConv2D(5, 3, padding="same"), (1, 3, 6, 6), (1, 5, 6, 6)),
    (MaxPool1D(), (2, 3, 9), (2, 3, 4)),
    (MaxPool2D(), (2, 3, 9, 8), (2, 3, 4, 4)),
    (MaxPool2D(3, strides=2, padding="same"), (1, 1, 7, 7), (1, 1, 4, 4)),
    (AvgPool2D(2), (1, 2, 6, 6), (1, 2, 3, 3)),
    (L2Pool2D(2), (1, 2, 6, 6), (1, 2, 3, 3)),
    (MaxPool3D(), (1, 1, 4, 4, 4), (1, 1, 2, 2, 2)),
    (GlobalAveragePooling2D(), (2, 3, 5, 5), (2, 3)),
    (GlobalMaxPooling2D(keepdims=True), (2, 3, 5, 5), (2, 3, 1, 1)),
    (ZeroPadding2D(((1, 2), (0, 1))), (1, 1, 3, 3), (1, 1, 6, 4)),
])
def test_eager_and_symbolic_shapes_agree(layer, input_shape, output_shape):
    symbolic = layer(Input(input_shape[1:]))
    assert symbolic.shape == (None,) + output_shape[1:]
    assert layer(np.zeros(input_shape, np.float32)).shape == output_shape


def test_conv2d_layer_uses_its_weights(device, rng):
    layer = Conv2D(3, 3, padding="same")
    x = tensor(rng.standard_normal((2, 2, 5, 5)).astype(np.float32), device)
    y = layer(x)
    expected = conv2d(x, layer.kernel, layer.bias, padding="same")
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-6)
    assert layer.kernel.shape == (3, 2, 3, 3)


def test_separable_conv_has_fewer_weights_than_a_full_conv():
    separable, full = SeparableConv2D(64, 3), Conv2D(64, 3)
    separable(Input((32, 16, 16)))
    full(Input((32, 16, 16)))
    assert separable.count_params() == 32 * 9 + 32 * 64 + 64
    assert separable.count_params() < full.count_params()


def test_he_initialised_conv_weights_have_the_he_variance():
    cnnkit.manual_seed(0)
    layer = Conv2D(64, 3, kernel_initializer="he_normal")
    layer(Input((32, 8, 8)))
    assert layer.kernel.numpy().std() == pytest.approx(np.sqrt(2 / (32 * 9)), rel=0.05)


@pytest.mark.parametrize("make,shape,message", [
    (lambda: Conv2D(8, 3), (None, 3, 16), r"Conv2D 'conv2d(_\d+)?': expected input of rank 4 \(N, C, H, W\), "
                                          r"got shape \(None, 3, 16\)"),
    (lambda: Conv2D(8, 5), (None, 3, 3, 3), r"Conv2D 'conv2d(_\d+)?': the window does not fit the input: spatial "
                                             r"input size \(3, 3\), window \(5, 5\)"),
    (lambda: MaxPool2D(4), (None, 3, 3, 3), r"MaxPool2D 'max_pool2d(_\d+)?': the window does not fit"),
    (lambda: Conv2D(6, 3, groups=3), (None, 4, 8, 8), r"must divide the input channels \(4\)"),
])
def test_configurations_that_do_not_fit_name_the_layer(make, shape, message):
    layer = make()
    with pytest.raises(ValueError, match=message):
        layer(Input(shape[1:]))


def test_a_built_conv_rejects_other_channel_counts():
    layer = Conv2D(2, 3)
    layer(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="expected axis 1 of the input to have size 3"):
        layer(np.zeros((1, 4, 5, 5), np.float32))


def test_bad_hyperparameters_fail_at_construction():
    with pytest.raises(ValueError, match="kernel_size must be a positive int"):
        Conv2D(3, 0)
    with pytest.raises(ValueError, match="padding must be 'valid', 'same'"):
        Conv2D(3, 3, padding="full")
    with pytest.raises(ValueError, match="filters must be a positive int"):
        Conv2D(0, 3)
