"""The element-wise CUDA kernels (kernels/elementwise.cu): activations, softmax, losses, dropout, batch norm.

CPU: every launch a wrapper makes names a kernel of elementwise.cu with arguments that
pass its declared checks, the planning helpers, reference fallbacks, and a spill-free
sm_90 build. GPU (``@pytest.mark.gpu``): every op against its NumPy reference on awkward
shapes (sizes 1 and odd, misaligned views, rows past 1024 columns, channels 1 and many,
extreme and non-finite values), dropout's statistics, reproducibility, and a
BatchNormalization layer trained one step on the GPU against the CPU.
"""
import math

import numpy as np
import pytest

import cnnkit
from cnnkit import backend, registry
from cnnkit.cuda import elementwise as ew
from cnnkit.ops import activation as act
from cnnkit.ops import loss as losses
from cnnkit.ops import norm
from cnnkit.ops.dropout import dropout_reference
from tests.cuda.launch_recorder import fake, is_fake, kernel_entries, nvcc_report

ACTIVATIONS = [  # (op, keyword parameters, forward kernel)
    ("relu", {}, "relu"),
    ("leaky_relu", {"alpha": 0.2}, "leaky_relu"),
    ("elu", {"alpha": 0.7}, "elu"),
    ("sigmoid", {}, "sigmoid"),
    ("tanh", {}, "tanh"),
    ("silu", {}, "silu"),
    ("gelu", {}, "gelu"),
    ("gelu", {"approximate": True}, "gelu_tanh"),
]
DTYPES = [np.float32, np.float64]


def suffix(dtype) -> str:
    return "f32" if np.dtype(dtype) == np.float32 else "f64"



# ---------------------------------------------------------------- launches and planning (CPU)

@pytest.mark.parametrize("dtype", DTYPES)
def test_every_launch_names_a_kernel_of_elementwise_cu_with_checked_arguments(recorded_launches, dtype):
    entries = kernel_entries("elementwise.cu")
    x, gy = fake(np.ones((3, 5)), dtype), fake(np.ones((3, 5)), dtype)
    for op, params, kernel in ACTIVATIONS:
        getattr(ew, op)(x, **params)
        getattr(ew, op + "_grad")(x, x, gy, **params)
        assert [launch.name for launch in recorded_launches[-2:]] == [f"{kernel}_{suffix(dtype)}",
                                                                      f"{kernel}_grad_{suffix(dtype)}"]
    for shape, axis in [((4, 7), -1), ((2, 2000), 1), ((2, 3, 5), 1), ((6, 4), 0)]:
        ew.softmax(fake(np.ones(shape), dtype), axis)
        ew.log_softmax(fake(np.ones(shape), dtype), axis)
    for cols in (10, 2000):
        logits, probs = fake(np.ones((4, cols)), dtype), fake(np.ones((4, cols)), dtype)
        loss_gy = fake(np.ones(4), dtype)
        for target in (fake(np.zeros(4), np.int64), fake(np.ones((4, cols)), dtype)):
            ew.softmax_cross_entropy(logits, target)
            ew.softmax_cross_entropy_grad(probs, target, loss_gy)
    ew.sigmoid_binary_cross_entropy(x, gy)
    ew.sigmoid_binary_cross_entropy_grad(x, gy, gy)
    ew.dropout(x, 0.5, 7, 3)
    for shape, axis in [((5, 3), 1), ((2, 3, 5, 7), 1), ((3, 5, 2), 2), ((2, 4, 3), 0)]:
        C = shape[axis]
        vectors = [fake(np.ones(C), dtype) for _ in range(4)]
        y, mean, var, saved = ew.batch_norm_train(fake(np.ones(shape), dtype), vectors[0], vectors[1], 1e-3, axis)
        assert y.shape == shape and mean.shape == var.shape == (C,) and isinstance(saved, ew.BatchNormSaved)
        gx, ggamma, gbeta = ew.batch_norm_backward(fake(np.ones(shape), dtype), vectors[0], saved, axis)
        assert gx.shape == shape and ggamma.shape == gbeta.shape == (C,)
        ew.batch_norm_infer(fake(np.ones(shape), dtype), *vectors, 1e-3, axis)
    names = {launch.name for launch in recorded_launches}
    assert names <= entries, names - entries
    variants = {"warp", "block"}
    assert {f"softmax_{v}_{suffix(dtype)}" for v in variants} | {f"xent_grad_prob_{v}_{suffix(dtype)}"
                                                                  for v in variants} <= names
    assert {f"log_softmax_strided_{suffix(dtype)}", f"xent_grad_index_{suffix(dtype)}",
            f"dropout_{suffix(dtype)}", f"bn_backward_apply_{suffix(dtype)}"} <= names
    assert all(launch.block == (256, 1, 1) for launch in recorded_launches)


def test_softmax_axis_picks_rows_or_columns(recorded_launches):
    ew.softmax(fake(np.ones((3, 4, 5)), np.float32), -1)
    ew.softmax(fake(np.ones((3, 4, 5)), np.float32), 1)
    ew.softmax(fake(np.ones((3, 1100)), np.float32), 1)
    rows, strided, wide = recorded_launches
    assert (rows.name, rows.arg("rows"), rows.arg("cols")) == ("softmax_warp_f32", 12, 5)
    assert (strided.name, strided.arg("columns"), strided.arg("C"), strided.arg("inner")) == (
        "softmax_strided_f32", 15, 4, 5)
    assert (wide.name, wide.arg("rows"), wide.arg("cols")) == ("softmax_block_f32", 3, 1100)
    with pytest.raises(ValueError, match=r"softmax: axis must be an int in \[-3, 3\), got 3"):
        ew.softmax(fake(np.ones((3, 4, 5)), np.float32), 3)


def test_batch_norm_reductions_cover_every_channel_value(recorded_launches):
    ew.batch_norm_train(fake(np.ones((6, 5, 7, 9)), np.float32), fake(np.ones(5), np.float32),
                        fake(np.ones(5), np.float32), 1e-3, 1)
    stats, finalize, apply = recorded_launches
    parts, chunk = ew.plan_channel_parts(6, 5, 63, ew.launcher.device_properties(0).sm_count)
    assert stats.grid == (5, parts, 1)
    assert (stats.arg("outer"), stats.arg("inner"), stats.arg("chunk")) == (6, 63, chunk)
    assert stats.arg("partial").shape == (parts, 5, 2) and finalize.arg("parts") == parts
    assert (finalize.arg("m"), apply.arg("n"), apply.arg("C"), apply.arg("inner")) == (378, 1890, 5, 63)


@pytest.mark.parametrize("outer,C,inner,sm_count", [(128, 32, 784, 132), (1, 1, 10**8, 132), (5, 3, 1, 132),
                                                    (2, 1000, 1, 132), (512, 64, 196, 132), (7, 1, 1, 1),
                                                    (2**20, 1, 2**10, 132)])
def test_channel_parts_cover_each_channel_exactly(outer, C, inner, sm_count):
    parts, chunk = ew.plan_channel_parts(outer, C, inner, sm_count)
    m = outer * inner
    assert 1 <= parts <= 65535 and (parts - 1) * chunk < m <= parts * chunk  # no empty part
    # each thread sums at most 64 values in the input's dtype, unless CUDA's 65535 parts force more
    assert math.ceil(chunk / ew.THREADS) <= max(64, math.ceil(m / (65535 * ew.THREADS)))
    assert parts * C >= min(8 * sm_count, math.ceil(m / ew.THREADS) * C)  # the GPU is filled when m allows


def test_dropout_threshold_and_rate_check():
    assert ew.dropout_threshold(0.0) == 0
    assert ew.dropout_threshold(0.5) == 2**31
    assert ew.dropout_threshold(0.25) == 2**30
    assert ew.dropout_threshold(1 - 2**-40) == 2**32 - 1
    with pytest.raises(ValueError, match=r"dropout: rate must be a number in \[0, 1\), got 1.0"):
        ew.dropout(fake(np.ones(3), np.float32), 1.0, 0, 0)


def test_batch_norm_takes_negative_axes_and_leaves_odd_channel_arrays_to_the_reference(recorded_launches, rng):
    x = fake(rng.standard_normal((4, 3, 5)), np.float32)
    vectors = [fake(np.ones(5), np.float32) for _ in range(2)]
    ew.batch_norm_train(x, *vectors, 1e-3, -1)
    assert (recorded_launches[0].arg("outer"), recorded_launches[0].arg("C"), recorded_launches[0].arg("inner")) == (
        12, 5, 1)
    del recorded_launches[:]
    odd = (x, fake(np.ones(1), np.float32), *vectors, fake(np.ones(5), np.float32), 1e-3, 2)
    assert ew.batch_norm_infer(*odd) is registry.USE_REFERENCE
    with registry.use_cuda_kernels(True):
        y = registry.impl("batch_norm_infer", *odd)
    assert recorded_launches == [] and y.shape == x.shape  # (1,) gamma broadcasts in the reference


def test_unsupported_dtypes_are_left_to_the_reference(recorded_launches, rng):
    x = rng.standard_normal((3, 5)).astype(np.float16)
    assert ew.tanh(fake(x)) is registry.USE_REFERENCE
    assert ew.softmax(fake(x), 1) is registry.USE_REFERENCE
    assert ew.relu_grad(fake(x), fake(x), fake(x.astype(np.float32))) is registry.USE_REFERENCE
    with registry.use_cuda_kernels(True):
        np.testing.assert_array_equal(np.asarray(registry.impl("tanh", fake(x))), act.tanh_reference(x))
        np.testing.assert_array_equal(np.asarray(registry.impl("softmax", fake(x), 1)), act.softmax_reference(x, 1))
        mixed = registry.impl("relu_grad", fake(x), fake(x), fake(x.astype(np.float32)))
    np.testing.assert_array_equal(np.asarray(mixed), act.relu_grad_reference(x, x, x.astype(np.float32)))
    assert recorded_launches == []


def test_kernel_arguments_are_checked_before_launch():
    kernel = ew.named_kernel("dropout", "f32")
    x = fake(np.zeros(4, np.float32))
    assert len(kernel.check((x, x, x, 4, 2**63, 5, 2**31, 2.0), 0, is_device_array=is_fake)) == 8
    with pytest.raises(ValueError, match=r"dropout_f32: argument 'seed' must be a uint64 in \[0, "):
        kernel.check((x, x, x, 4, -1, 0, 2**31, 2.0), 0, is_device_array=is_fake)
    with pytest.raises(TypeError, match=r"dropout_f32: argument 'mask' must be a float32 CuPy array on cuda:0, "
                                        r"got a float64 CuPy array"):
        kernel.check((x, x, fake(np.zeros(4)), 4, 1, 0, 2**31, 2.0), 0, is_device_array=is_fake)
    apply = ew.named_kernel("bn_apply", "f32")
    with pytest.raises(ValueError, match=r"bn_apply_f32: argument 'n' must be an int64 in \[1, 2147483647\]"):
        apply.check((x,) * 5 + (2**31, 3, 1), 0, is_device_array=is_fake)
    with pytest.raises(TypeError, match=r"xent_index_warp_f32: argument 'target' must be a int64 CuPy array"):
        ew.row_kernel("xent_index_warp", "f32", "index").check(
            (x, fake(np.zeros(4, np.int32)), x, x, 1, 4), 0, is_device_array=is_fake)


def test_elementwise_cu_compiles_for_sm90_without_spills():
    report = nvcc_report("elementwise.cu")
    assert report.entries == kernel_entries("elementwise.cu")
    assert all(spills == (0, 0) for spills in report.spills.values()), report.log


# ---------------------------------------------------------------- the kernels (GPU)

def poison_pool(nbytes):
    """Leave NaN in CuPy's memory pool so an output element the kernel forgets to write shows up."""
    cupy = backend.cupy()
    junk = cupy.full(nbytes // 4 + 4096, np.nan, dtype=np.float32)
    del junk


def on_device(host, misaligned=False):
    """``host`` as a CuPy array; misaligned: a view starting one element past 16-byte alignment."""
    cupy = backend.cupy()
    if not misaligned:
        return cupy.asarray(host)
    flat = cupy.empty(host.size + 1, dtype=host.dtype)
    view = flat[1:].reshape(host.shape)
    view[...] = cupy.asarray(host)
    return view


def tolerance(dtype, rtol32=2e-5, atol32=1e-6, atol64=1e-13):
    return {"rtol": rtol32, "atol": atol32} if np.dtype(dtype) == np.float32 else {"rtol": 1e-11, "atol": atol64}


def assert_matches(actual, wanted, dtype, **kw):
    actual = backend.to_numpy(actual)
    assert actual.dtype == dtype and actual.shape == wanted.shape
    np.testing.assert_allclose(actual, wanted, **tolerance(dtype, **kw))


EXTREMES = np.array([0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 3.0, -3.0, 20.0, -20.0, 88.0, -88.0, 700.0, -700.0,
                     1000.0, -1000.0, np.inf, -np.inf, np.nan])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,misaligned", [((1,), False), ((4097,), False), ((5, 7, 9), True), ((3,), True)])
@pytest.mark.parametrize("op,params,kernel", ACTIVATIONS)
def test_activations_and_gradients_match_the_reference(rng, op, params, kernel, shape, misaligned, dtype):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    forward, gradient = getattr(act, f"{op}_reference"), getattr(act, f"{op}_grad_reference")
    want_y = forward(x.astype(np.float64), **params)
    want_gx = gradient(x.astype(np.float64), want_y, gy.astype(np.float64), **params)
    poison_pool(x.nbytes * 3)
    y = getattr(ew, op)(on_device(x, misaligned), **params)
    gx = getattr(ew, op + "_grad")(on_device(x, misaligned), y, on_device(gy, misaligned), **params)
    assert_matches(y, want_y, dtype)
    assert_matches(gx, want_gx, dtype, rtol32=5e-5, atol32=5e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op,params,kernel", ACTIVATIONS)
def test_activations_of_extreme_and_non_finite_values(op, params, kernel, dtype):
    x = EXTREMES.astype(dtype)
    gy = np.linspace(-2, 2, x.size).astype(dtype)
    with np.errstate(all="ignore"):
        want_y = getattr(act, f"{op}_reference")(x, **params)
        want_gx = getattr(act, f"{op}_grad_reference")(x, want_y, gy, **params)
    y = getattr(ew, op)(on_device(x), **params)
    gx = getattr(ew, op + "_grad")(on_device(x), y, on_device(gy), **params)
    assert_matches(y, want_y.astype(dtype), dtype, rtol32=1e-5)
    assert_matches(gx, want_gx.astype(dtype), dtype, rtol32=1e-4, atol32=1e-6)


SOFTMAX_CASES = [((1, 10), -1), ((7, 33), 1), ((3, 1500), -1), ((4, 1), 1), ((2, 3, 5), 1), ((6, 4), 0),
                 ((2, 3, 4, 5), 2), ((300, 1025), -1), ((1, 3, 2), 0)]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_matches_the_reference(rng, op, shape, axis, dtype):
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    x.reshape(-1)[::7] = 1000.0
    x.reshape(-1)[3::11] = -1000.0
    poison_pool(x.nbytes)
    y = getattr(ew, op)(on_device(x), axis)
    want = getattr(act, f"{op}_reference")(x.astype(np.float64), axis)
    assert_matches(y, want, dtype, rtol32=1e-5, atol32=1e-6 if op == "softmax" else 1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("axis", [1, 0])
def test_softmax_of_infinite_and_nan_rows_follows_the_reference(axis):
    x = np.array([[1.0, -np.inf, 2.0], [-np.inf, -np.inf, -np.inf], [np.inf, 1.0, 2.0], [np.nan, 0.0, 1.0],
                  [1000.0, -1000.0, 999.0]])
    x = x if axis == 1 else np.ascontiguousarray(x.T)
    for op in ("softmax", "log_softmax"):
        with np.errstate(all="ignore"):
            want = getattr(act, f"{op}_reference")(x, axis)
        assert_matches(getattr(ew, op)(on_device(x), axis), want, np.float64)


XENT_SHAPES = [(1, 10), (33, 7), (5, 1500), (64, 10), (3, 1)]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("targets", ["index", "prob"])
@pytest.mark.parametrize("shape", XENT_SHAPES)
def test_softmax_cross_entropy_and_gradient_match_the_reference(rng, shape, targets, dtype):
    N, C = shape
    logits = (rng.standard_normal(shape) * 4).astype(dtype)
    logits[0, 0], logits[-1, -1] = 1000.0, -1000.0
    if targets == "index":
        target = rng.integers(0, C, N).astype(np.int64)
    else:
        target = rng.uniform(0, 1, shape).astype(dtype)
    gy = rng.standard_normal(N).astype(dtype)
    want_loss, want_probs = losses.softmax_cross_entropy_reference(logits.astype(np.float64),
                                                                   target if targets == "index" else
                                                                   target.astype(np.float64))
    want_g = losses.softmax_cross_entropy_grad_reference(want_probs, target if targets == "index" else
                                                         target.astype(np.float64), gy.astype(np.float64))
    poison_pool(logits.nbytes * 3)
    loss, probs = ew.softmax_cross_entropy(on_device(logits), on_device(target))
    g = ew.softmax_cross_entropy_grad(probs, on_device(target), on_device(gy))
    assert_matches(loss, want_loss, dtype, rtol32=1e-5, atol32=1e-4)
    assert_matches(probs, want_probs, dtype)
    assert_matches(g, want_g, dtype, rtol32=1e-5, atol32=1e-6)


@pytest.mark.gpu
def test_out_of_range_class_indices_give_nan_rows():
    logits = on_device(np.zeros((3, 4), np.float32))
    target = on_device(np.array([1, 4, -1], np.int64))
    loss, probs = ew.softmax_cross_entropy(logits, target)
    g = backend.to_numpy(ew.softmax_cross_entropy_grad(probs, target, on_device(np.ones(3, np.float32))))
    np.testing.assert_array_equal(np.isnan(backend.to_numpy(loss)), [False, True, True])
    assert not np.isnan(g[0]).any() and np.isnan(g[1:]).all()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3, 5), (4097,)])
def test_sigmoid_binary_cross_entropy_matches_the_reference(rng, shape, dtype):
    z = (rng.standard_normal(shape) * 10).astype(dtype)
    z.reshape(-1)[0] = -1000.0
    t = rng.uniform(0, 1, shape).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    loss = ew.sigmoid_binary_cross_entropy(on_device(z), on_device(t))
    g = ew.sigmoid_binary_cross_entropy_grad(on_device(z), on_device(t), on_device(gy))
    z64, t64 = z.astype(np.float64), t.astype(np.float64)
    assert_matches(loss, losses.sigmoid_binary_cross_entropy_reference(z64, t64), dtype, atol32=1e-5)
    assert_matches(g, losses.sigmoid_binary_cross_entropy_grad_reference(z64, t64, gy.astype(np.float64)), dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_masks_with_the_rate_and_scales_the_survivors(rng, rate, dtype):
    x = rng.standard_normal((99, 1001)).astype(dtype)
    poison_pool(x.nbytes * 2)
    y, mask = (backend.to_numpy(a) for a in ew.dropout(on_device(x), rate, 12345, 6))
    assert y.dtype == mask.dtype == dtype
    keep = dtype(1 / (1 - rate))
    assert set(np.unique(mask)) <= {dtype(0), keep}
    np.testing.assert_array_equal(y, x * mask)
    dropped = float(np.mean(mask == 0))
    assert abs(dropped - rate) < 5 * math.sqrt(rate * (1 - rate) / x.size)
    assert abs(float(np.mean(mask[:, ::2] == 0)) - rate) < 0.01  # no pattern along the fast axis


@pytest.mark.gpu
def test_dropout_is_reproducible_per_seed_and_independent_between_seeds(rng):
    x = rng.standard_normal(10007).astype(np.float32)
    draws = [(1, 0), (1, 0), (2, 0), (2**40 + 1, 0), (1, 1), (1, 2**40)]
    masks = [backend.to_numpy(ew.dropout(on_device(x), 0.5, seed, stream)[1]) for seed, stream in draws]
    np.testing.assert_array_equal(masks[0], masks[1])
    for other in masks[2:]:
        agreement = float(np.mean((masks[0] == 0) == (other == 0)))
        assert abs(agreement - 0.5) < 0.03
    misaligned = backend.to_numpy(ew.dropout(on_device(x, misaligned=True), 0.5, 1, 0)[1])
    np.testing.assert_array_equal(misaligned, masks[0])  # the mask depends on (seed, stream, index) only


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_mask_is_bit_identical_to_the_reference(rng, dtype):
    x = rng.standard_normal((7, 13, 11)).astype(dtype)  # 1001 elements: a partial last quad
    for seed, stream in [(0, 1), (2**63 + 5, 2**33 + 7)]:
        y, mask = (backend.to_numpy(a) for a in ew.dropout(on_device(x), 0.3, seed, stream))
        y_ref, mask_ref = dropout_reference(x, 0.3, seed, stream)
        np.testing.assert_array_equal(mask, mask_ref)
        np.testing.assert_array_equal(y, y_ref)


NORM_CASES = [((5, 3), 1), ((2, 3, 5, 7), 1), ((1, 3, 4, 5), 1), ((3, 5, 2), 2), ((2, 4, 3), 0),
              ((4, 6, 8, 8), 1), ((300, 37), 1), ((2, 1, 3000), 1), ((16, 20, 7, 7), 1)]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", NORM_CASES)
def test_batch_norm_matches_the_reference(rng, shape, axis, dtype):
    C = shape[axis]
    x = (rng.standard_normal(shape) * 3 + 1000).astype(dtype)  # a large mean: the sums must not cancel
    gamma, beta = rng.uniform(0.5, 1.5, C).astype(dtype), rng.standard_normal(C).astype(dtype)
    mean, var = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    x64, g64, b64 = x.astype(np.float64), gamma.astype(np.float64), beta.astype(np.float64)
    want_y, want_mean, want_var, want_saved = norm.batch_norm_train_reference(x64, g64, b64, 1e-3, axis)
    want_grads = norm.batch_norm_backward_reference(gy.astype(np.float64), g64, want_saved, axis)
    want_infer = norm.batch_norm_infer_reference(x64, g64, b64, mean.astype(np.float64), var.astype(np.float64),
                                                 1e-3, axis)
    poison_pool(x.nbytes * 3)
    y, batch_mean, batch_var, saved = ew.batch_norm_train(on_device(x), on_device(gamma), on_device(beta), 1e-3,
                                                          axis)
    grads = ew.batch_norm_backward(on_device(gy), on_device(gamma), saved, axis)
    infer = ew.batch_norm_infer(on_device(x), on_device(gamma), on_device(beta), on_device(mean), on_device(var),
                                1e-3, axis)
    # x − μ loses log2(1000/3) ≈ 8 bits to the mean: absolute errors of ulp(1000) / σ in y
    assert_matches(y, want_y, dtype, rtol32=1e-4, atol32=2e-4, atol64=1e-10)
    assert_matches(batch_mean, want_mean, dtype, rtol32=1e-6)
    assert_matches(batch_var, want_var, dtype, rtol32=1e-4, atol32=1e-5, atol64=1e-9)
    for got, want in zip(grads, want_grads):
        assert_matches(got, want, dtype, rtol32=1e-3, atol32=1e-3 * math.sqrt(x.size / C),
                       atol64=1e-9 * math.sqrt(x.size / C))
    assert_matches(infer, want_infer, dtype, rtol32=1e-5, atol32=2e-3, atol64=1e-9)


@pytest.mark.gpu
def test_batch_norm_is_bitwise_reproducible(rng):
    x = on_device(rng.standard_normal((32, 16, 9, 9)).astype(np.float32))
    gamma, beta = on_device(np.ones(16, np.float32)), on_device(np.zeros(16, np.float32))
    gy = on_device(rng.standard_normal((32, 16, 9, 9)).astype(np.float32))
    runs = []
    for _ in range(2):
        y, mean, var, saved = ew.batch_norm_train(x, gamma, beta, 1e-5, 1)
        runs.append([backend.to_numpy(a) for a in (y, mean, var) + ew.batch_norm_backward(gy, gamma, saved, 1)])
    for first, second in zip(*runs):
        np.testing.assert_array_equal(first, second)


@pytest.mark.gpu
def test_batch_normalization_layer_trains_the_same_on_gpu_and_cpu(rng):
    x_host = (rng.standard_normal((8, 6, 5, 5)) * 2 + 1).astype(np.float32)
    w_host = rng.standard_normal(x_host.shape).astype(np.float32)
    results = {}
    with registry.use_cuda_kernels(True):
        for device in ("cpu", "cuda"):
            layer = cnnkit.layers.BatchNormalization(axis=1, momentum=0.9)
            x = cnnkit.Tensor(x_host, device=device, requires_grad=True)
            y = layer(x, training=True)
            (y * cnnkit.Tensor(w_host, device=device)).sum().backward()
            results[device] = [y.numpy(), x.grad.numpy(), layer.gamma.grad.numpy(), layer.beta.grad.numpy(),
                               layer.moving_mean.numpy(), layer.moving_variance.numpy(),
                               layer(x, training=False).numpy()]
    for got, want in zip(results["cuda"], results["cpu"]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_registry_dispatches_to_the_kernels(rng):
    names = [op for op, _, _ in ACTIVATIONS] + ["softmax", "log_softmax", "softmax_cross_entropy",
                                                "sigmoid_binary_cross_entropy", "dropout", "batch_norm_train",
                                                "batch_norm_backward", "batch_norm_infer"]
    with registry.use_cuda_kernels(True):
        for name in names:
            assert registry.lookup(name, on_gpu=True) is getattr(ew, name)
        for name in ("relu", "softmax_cross_entropy", "sigmoid_binary_cross_entropy"):
            assert registry.lookup(name + "_grad", on_gpu=True) is getattr(ew, name + "_grad")
        x = cnnkit.Tensor(rng.standard_normal((4, 10)).astype(np.float32), device="cuda", requires_grad=True)
        target = cnnkit.Tensor(np.array([1, 0, 9, 3]), device="cuda")
        loss = cnnkit.ops.softmax_cross_entropy(cnnkit.ops.gelu(x), target).sum()
        loss.backward()
    x_cpu = cnnkit.Tensor(x.numpy(), requires_grad=True)
    want = cnnkit.ops.softmax_cross_entropy(cnnkit.ops.gelu(x_cpu), np.array([1, 0, 9, 3])).sum()
    want.backward()
    np.testing.assert_allclose(loss.numpy(), want.numpy(), rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), x_cpu.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
def test_block_reductions_refuse_other_block_sizes():
    # bn_stats merges the sums of exactly 256 threads (8 warps) in shared memory: with 128 the
    # sums of warps 4 to 7 would be read without ever being written.
    cupy = backend.cupy()
    x = cupy.asarray(np.ones((4, 3, 5), np.float32))
    partial = cupy.zeros((1, 3, 2), np.float64)
    with pytest.raises(ValueError, match=r"bn_stats_f32: must be launched with blocks of exactly 256 threads"):
        ew.named_kernel("bn_stats", "f32").launch((3, 1), (128,), (x, partial, 4, 3, 5, 20))
    ew.named_kernel("bn_stats", "f32").launch((3, 1), (256,), (x, partial, 4, 3, 5, 20))
    np.testing.assert_array_equal(backend.to_numpy(partial), np.zeros((1, 3, 2)))  # Σ (x − x₀) and its square
