import itertools

import numpy as np
import pytest

from cnnkit.ops.conv import conv, conv1d, conv2d, conv3d
from cnnkit.testing import gradcheck
from tests.helpers import randn, tensor


def direct_convolution(x, W, b, stride, padding, dilation, groups):
    """The definition, one output element at a time: an oracle independent of im2col."""
    rank = W.ndim - 2
    x = np.pad(x, ((0, 0), (0, 0)) + tuple(padding))
    N, C = x.shape[:2]
    F, Cg = W.shape[:2]
    window = W.shape[2:]
    out = tuple((x.shape[2 + i] - dilation[i] * (window[i] - 1) - 1) // stride[i] + 1 for i in range(rank))
    y = np.zeros((N, F) + out)
    per_group = F // groups
    for n, f in itertools.product(range(N), range(F)):
        g = f // per_group
        for o in itertools.product(*(range(s) for s in out)):
            total = 0.0 if b is None else b[f]
            for c in range(Cg):
                for k in itertools.product(*(range(s) for s in window)):
                    pos = tuple(o[i] * stride[i] + k[i] * dilation[i] for i in range(rank))
                    total += W[(f, c) + k] * x[(n, g * Cg + c) + pos]
            y[(n, f) + o] = total
    return y


CASES = [
    # (x shape, W shape, stride, padding, dilation, groups)
    ((2, 3, 7), (4, 3, 3), 1, "valid", 1, 1),
    ((1, 2, 9), (4, 1, 4), 2, "same", 1, 2),
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, "same", 1, 1),
    ((1, 2, 8, 9), (3, 2, 3, 2), 2, 1, 1, 1),
    ((2, 4, 9, 7), (6, 2, 3, 3), (2, 1), ((1, 0), (2, 1)), 1, 2),
    ((1, 3, 9, 9), (3, 1, 3, 3), 1, "same", 2, 3),            # depthwise, dilated
    ((2, 2, 6, 5), (6, 1, 2, 2), 2, "same", 1, 2),            # depth multiplier 3, even kernel
    ((1, 2, 5, 4, 6), (2, 2, 3, 2, 3), (1, 2, 2), 1, 1, 1),
]


def _resolved_padding(case):
    from cnnkit.window import make_geometry
    x_shape, W_shape, stride, padding, dilation, groups = case
    rank = len(W_shape) - 2
    return make_geometry(rank, W_shape[2:], stride, padding, dilation, x_shape[2:])


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_the_definition(device, rng, case):
    x_shape, W_shape, stride, padding, dilation, groups = case
    x, W, b = rng.standard_normal(x_shape), rng.standard_normal(W_shape), rng.standard_normal(W_shape[0])
    geometry = _resolved_padding(case)
    expected = direct_convolution(x, W, b, geometry.stride, geometry.padding, geometry.dilation, groups)
    y = conv(tensor(x, device), tensor(W, device), tensor(b, device), stride, padding, dilation, groups)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_gradients_match_finite_differences(device, rng, case):
    x_shape, W_shape, stride, padding, dilation, groups = case
    x, W, b = randn(rng, *x_shape, device=device), randn(rng, *W_shape, device=device), randn(rng, W_shape[0],
                                                                                              device=device)
    gradcheck(lambda x, W, b: conv(x, W, b, stride, padding, dilation, groups), [x, W, b])


def test_same_padding_keeps_size_and_stride_two_halves_it(rng):
    x = tensor(rng.standard_normal((1, 1, 7, 8)).astype(np.float32))
    W = tensor(rng.standard_normal((2, 1, 3, 3)).astype(np.float32))
    assert conv2d(x, W, padding="same").shape == (1, 2, 7, 8)
    assert conv2d(x, W, stride=2, padding="same").shape == (1, 2, 4, 4)
    assert conv2d(x, W).shape == (1, 2, 5, 6)


def test_input_gradient_skipped_when_not_needed(rng):
    x = tensor(rng.standard_normal((1, 2, 5, 5)))
    W = randn(rng, 3, 2, 3, 3)
    conv2d(x, W).sum().backward()
    assert x.grad is None and W.grad is not None


def test_rank_specific_functions_check_the_weight_rank(rng):
    x = tensor(np.zeros((1, 2, 5)))
    with pytest.raises(ValueError, match="conv2d: the weight must have shape"):
        conv2d(x, tensor(np.zeros((3, 2, 3))))
    assert conv1d(x, tensor(np.zeros((3, 2, 3)))).shape == (1, 3, 3)
    assert conv3d(tensor(np.zeros((1, 1, 3, 3, 3))), tensor(np.zeros((1, 1, 3, 3, 3)))).shape == (1, 1, 1, 1, 1)


@pytest.mark.parametrize("x_shape,W_shape,kwargs,message", [
    ((1, 3, 5, 5), (2, 2, 3, 3), {}, "input has 3 channels but the weight expects 2"),
    ((1, 4, 5, 5), (3, 2, 3, 3), {"groups": 2}, "groups=2 must divide both"),
    ((1, 2, 5), (2, 2, 3, 3), {}, r"expected input of rank 4 \(N, C, H, W\), got shape \(1, 2, 5\)"),
    ((1, 1, 2, 2), (1, 1, 3, 3), {}, "the window does not fit the input"),
    ((1, 1, 5, 5), (1, 1, 3, 3), {"padding": "full"}, "padding must be 'valid', 'same'"),
    ((1, 1, 5, 5), (1, 1, 3, 3), {"stride": 0}, "strides must be a positive int"),
])
def test_bad_configurations_explain_themselves(x_shape, W_shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv2d(tensor(np.zeros(x_shape)), tensor(np.zeros(W_shape)), **kwargs)


def test_dtype_mismatch_is_an_error():
    with pytest.raises(TypeError, match="input dtype float32 differs from weight dtype float64"):
        conv2d(tensor(np.zeros((1, 1, 3, 3), np.float32)), tensor(np.zeros((1, 1, 3, 3))))


def test_filter_gradient_rebuilds_its_columns_when_the_forward_saved_none(rng):
    from cnnkit.ops.conv import conv_backward_filter_reference, conv_forward_reference
    from cnnkit.window import make_geometry
    x, W = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((6, 2, 3, 3))
    geometry = make_geometry(2, (3, 3), 2, "same", 1, x.shape[2:])
    y, saved = conv_forward_reference(x, W, None, geometry, 2)
    gy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(conv_backward_filter_reference(gy, x, None, W.shape, geometry, 2),
                               conv_backward_filter_reference(gy, x, saved, W.shape, geometry, 2))


def test_reference_products_take_the_columns_as_they_are(rng, fake_gpu, monkeypatch):
    """On GPU arrays (the fake device layer) no product gets a transposed view of the im2col
    matrix, which CuPy's batched matmul would copy whole; gy and W may be rearranged (small)."""
    from cnnkit.window import make_geometry
    from cnnkit.registry import impl
    from tests.fake_gpu import on_device

    products = []

    def matmul(a, b):
        products.append((a, b))
        return on_device(np.matmul(np.asarray(a), np.asarray(b)), fake_gpu.current)

    monkeypatch.setattr(fake_gpu, "matmul", matmul, raising=False)
    x, W = rng.standard_normal((3, 4, 7, 6)), rng.standard_normal((6, 2, 3, 3))
    geometry = make_geometry(2, (3, 3), (2, 1), 1, 1, x.shape[2:])
    y, saved = impl("conv_forward", on_device(x), on_device(W), None, geometry, 2)
    gy = rng.standard_normal(y.shape)
    gW = impl("conv_backward_filter", on_device(gy), on_device(x), saved, W.shape, geometry, 2)
    gx = impl("conv_backward_data", on_device(gy), on_device(W), x.shape, geometry, 2)
    assert [a is saved or b is saved for a, b in products] == [True, True, False]
    assert all(operand.flags.c_contiguous for operand in products[0] + products[1])  # no copy in CuPy
    expected = direct_convolution(x, W, None, (2, 1), ((1, 1), (1, 1)), (1, 1), 2)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-10, atol=1e-10)
    tx, tW = tensor(x, requires_grad=True), tensor(W, requires_grad=True)
    conv2d(tx, tW, stride=(2, 1), padding=1, groups=2).backward(gy)
    np.testing.assert_allclose(np.asarray(gW), tW.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.asarray(gx), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
