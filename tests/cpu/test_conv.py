"""The wide-row CPU convolution computes what the reference computes."""
import numpy as np
import pytest

from cnnkit import registry
from cnnkit.cpu import conv as wide
from cnnkit.ops.conv import conv_backward_data_reference, conv_backward_filter_reference, conv_forward_reference
from cnnkit.window import make_geometry

CASES = [
    # (x shape, W shape, padding, dilation)
    ((5, 8, 9, 7), (6, 8, 3, 3), "same", 1),
    ((1, 4, 6, 11), (3, 4, 3, 3), "valid", 1),
    ((3, 8, 8, 8), (5, 8, 2, 2), "same", 1),              # even kernel: uneven padding
    ((2, 4, 9, 10), (4, 4, 3, 3), ((2, 0), (1, 3)), 2),   # dilated, asymmetric padding
    ((3, 16, 20), (7, 16, 3), "same", 1),                  # 1-D
    ((2, 4, 5, 6, 4), (3, 4, 2, 3, 3), 1, 1),              # 3-D
]


@pytest.mark.parametrize("x_shape,W_shape,padding,dilation", CASES)
def test_wide_rows_match_the_reference(rng, x_shape, W_shape, padding, dilation):
    rank = len(W_shape) - 2
    x = rng.standard_normal(x_shape)
    W = rng.standard_normal(W_shape)
    b = rng.standard_normal(W_shape[0])
    geometry = make_geometry(rank, W_shape[2:], 1, padding, dilation, x_shape[2:])
    assert wide._uses_wide_rows(x.shape, W.shape, geometry, 1)
    y, saved = wide.conv_forward_wide(x, W, b, geometry, 1)
    y_ref, saved_ref = conv_forward_reference(x, W, b, geometry, 1)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    assert y.flags.c_contiguous
    gy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(wide.conv_backward_filter_wide(gy, x, saved, W.shape, geometry, 1),
                               conv_backward_filter_reference(gy, x, saved_ref, W.shape, geometry, 1),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(wide.conv_backward_data_wide(gy, W, x.shape, geometry, 1),
                               conv_backward_data_reference(gy, W, x.shape, geometry, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("W_shape,stride,groups", [((4, 1, 3, 3), 1, 1), ((4, 8, 3, 3), 2, 1), ((8, 4, 3, 3), 1, 2)])
def test_other_convolutions_keep_the_reference(rng, W_shape, stride, groups):
    x = rng.standard_normal((2, 8 if W_shape[1] > 1 else 1, 7, 7))
    W = rng.standard_normal(W_shape)
    geometry = make_geometry(2, (3, 3), stride, "same", 1, x.shape[2:])
    assert not wide._uses_wide_rows(x.shape, W.shape, geometry, groups)
    assert wide.conv_forward_wide(x, W, None, geometry, groups) is registry.USE_REFERENCE
    y, saved = registry.impl("conv_forward", x, W, None, geometry, groups)
    y_ref, _ = conv_forward_reference(x, W, None, geometry, groups)
    np.testing.assert_array_equal(y, y_ref)
    gy = rng.standard_normal(y.shape)
    assert wide.conv_backward_filter_wide(gy, x, saved, W.shape, geometry, groups) is registry.USE_REFERENCE
    np.testing.assert_allclose(registry.impl("conv_backward_filter", gy, x, saved, W.shape, geometry, groups),
                               conv_backward_filter_reference(gy, x, None, W.shape, geometry, groups), rtol=1e-10)


def test_the_registry_uses_the_wide_variant_on_the_cpu():
    assert registry.lookup("conv_forward", on_gpu=False) is wide.conv_forward_wide
    assert registry.lookup("conv_backward_data", on_gpu=False) is wide.conv_backward_data_wide
