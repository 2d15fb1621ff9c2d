import warnings

import numpy as np
import pytest

import cnnkit
from cnnkit import losses
from cnnkit.testing import gradcheck
from tests.helpers import tensor

EPS = 1e-7


def numpy_softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def one_hot(labels, classes):
    return np.eye(classes)[labels]


def make_case(rng, name):
    """(loss object, y_true, y_pred, expected per-sample losses) for a (3, 5) batch."""
    labels = np.array([1, 4, 0])
    t = one_hot(labels, 5)
    probs = rng.dirichlet(np.ones(5), size=3)
    logits = rng.standard_normal((3, 5)) * 2
    binary = rng.integers(0, 2, (3, 5)).astype(np.float64)
    p = rng.uniform(0.05, 0.95, (3, 5))
    scores = rng.standard_normal((3, 5)) * 2
    sign = 2 * binary - 1
    clipped_log = np.log(np.clip(probs, EPS, 1 - EPS))
    if name == "categorical":
        return losses.CategoricalCrossentropy(), t, probs, -(t * clipped_log).sum(axis=1)
    if name == "categorical_logits":
        return (losses.CategoricalCrossentropy(from_logits=True), t, logits,
                -(t * np.log(numpy_softmax(logits))).sum(axis=1))
    if name == "categorical_smoothed":
        smooth = t * 0.8 + 0.2 / 5
        return (losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2), t, logits,
                -(smooth * np.log(numpy_softmax(logits))).sum(axis=1))
    if name == "sparse":
        return losses.SparseCategoricalCrossentropy(), labels, probs, -clipped_log[np.arange(3), labels]
    if name == "sparse_logits":
        return (losses.SparseCategoricalCrossentropy(from_logits=True), labels, logits,
                -np.log(numpy_softmax(logits))[np.arange(3), labels])
    if name == "binary":
        return (losses.BinaryCrossentropy(), binary, p,
                -(binary * np.log(p) + (1 - binary) * np.log(1 - p)).mean(axis=1))
    if name == "binary_logits":
        q = numpy_sigmoid(logits)
        return (losses.BinaryCrossentropy(from_logits=True), binary, logits,
                -(binary * np.log(q) + (1 - binary) * np.log(1 - q)).mean(axis=1))
    if name == "mse":
        return losses.MeanSquaredError(), p, scores, ((scores - p) ** 2).mean(axis=1)
    if name == "mae":
        return losses.MeanAbsoluteError(), p, scores, np.abs(scores - p).mean(axis=1)
    if name == "hinge":
        return losses.Hinge(), binary, scores, np.maximum(1 - sign * scores, 0).mean(axis=1)
    if name == "perceptron":
        return losses.get("perceptron"), sign, scores, np.maximum(-sign * scores, 0).mean(axis=1)
    if name == "squared_hinge":
        return losses.SquaredHinge(), sign, scores, (np.maximum(1 - sign * scores, 0) ** 2).mean(axis=1)
    if name == "categorical_hinge":
        positive = (t * scores).sum(axis=1)
        negative = ((1 - t) * scores).max(axis=1)
        return losses.CategoricalHinge(), t, scores, np.maximum(negative - positive + 1, 0)
    raise AssertionError(name)


CASES = ["categorical", "categorical_logits", "categorical_smoothed", "sparse", "sparse_logits", "binary",
         "binary_logits", "mse", "mae", "hinge", "perceptron", "squared_hinge", "categorical_hinge"]


@pytest.mark.parametrize("name", CASES)
def test_losses_match_numpy_formulas_in_every_reduction(device, rng, name):
    loss, y_true, y_pred, expected = make_case(rng, name)
    per_sample = type(loss)(**{**loss.get_config(), "reduction": "none"})(y_true, tensor(y_pred, device))
    assert per_sample.shape == (3,)
    np.testing.assert_allclose(per_sample.numpy(), expected, rtol=1e-10)
    total = type(loss)(**{**loss.get_config(), "reduction": "sum"})(y_true, tensor(y_pred, device))
    assert total.item() == pytest.approx(expected.sum(), rel=1e-10)
    mean = loss(y_true, tensor(y_pred, device))
    assert mean.shape == () and mean.item() == pytest.approx(expected.mean(), rel=1e-10)


@pytest.mark.parametrize("name", CASES)
def test_loss_gradients(device, rng, name):
    loss, y_true, y_pred, _ = make_case(rng, name)
    gradcheck(lambda y: loss(y_true, y), [tensor(y_pred, device, requires_grad=True)])
    gradcheck(lambda y: loss(y_true[:1], y), [tensor(y_pred[:1], device, requires_grad=True)])  # batch of 1


def test_plain_functions_return_per_sample_losses(device, rng):
    z = rng.standard_normal((3, 5))
    labels = np.array([0, 1, 2])
    dense = losses.categorical_crossentropy(one_hot(labels, 5), tensor(z, device), from_logits=True)
    sparse = losses.sparse_categorical_crossentropy(labels, tensor(z, device), from_logits=True)
    assert dense.shape == sparse.shape == (3,)
    np.testing.assert_allclose(dense.numpy(), sparse.numpy(), rtol=1e-12)
    assert losses.mean_squared_error(np.ones((3, 2, 2)), tensor(np.zeros((3, 2, 2)), device)).shape == (3,)


def test_probabilities_are_clipped_and_renormalised(device):
    t = np.array([[0.0, 1.0]])
    loss = losses.categorical_crossentropy(t, tensor(np.array([[1.0, 0.0]]), device))
    assert loss.item() == pytest.approx(-np.log(EPS), rel=1e-6)  # p = 0 is clipped to 1e-7
    unnormalised = losses.categorical_crossentropy(t, tensor(np.array([[0.2, 0.6]]), device))
    assert unnormalised.item() == pytest.approx(-np.log(0.75))
    binary = losses.binary_crossentropy(np.array([1.0]), tensor(np.array([0.0]), device))
    assert binary.item() == pytest.approx(-np.log(EPS), rel=1e-6)


@pytest.mark.parametrize("loss", [losses.CategoricalCrossentropy(from_logits=True),
                                  losses.SparseCategoricalCrossentropy(from_logits=True),
                                  losses.BinaryCrossentropy(from_logits=True)])
def test_huge_logits_give_finite_losses_and_gradients(device, loss):
    z = tensor(np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]]), device, requires_grad=True)
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        y_true = np.array([1, 0])
    else:
        y_true = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss(y_true, z)
        value.backward()
    assert np.isfinite(value.item()) and value.item() > 100
    assert np.isfinite(z.grad.numpy()).all()


def test_hinge_accepts_zero_one_and_signed_labels(device, rng):
    scores = tensor(rng.standard_normal((4, 3)), device)
    zero_one = rng.integers(0, 2, (4, 3)).astype(np.float64)
    np.testing.assert_allclose(losses.hinge(zero_one, scores).numpy(), losses.hinge(2 * zero_one - 1, scores).numpy())


def test_y_true_may_be_a_list_a_tensor_or_labels_beside_one_unit_outputs(device):
    y_pred = tensor(np.array([[0.2], [0.9]]), device)
    from_list = losses.BinaryCrossentropy()([0, 1], y_pred)
    from_tensor = losses.BinaryCrossentropy()(cnnkit.Tensor(np.array([[0.0], [1.0]])), y_pred)
    assert from_list.item() == pytest.approx(from_tensor.item())
    assert from_list.item() == pytest.approx(-(np.log(0.8) + np.log(0.9)) / 2)
    sparse = losses.SparseCategoricalCrossentropy()([[1], [0]], tensor(np.array([[0.5, 0.5], [0.25, 0.75]]), device))
    assert sparse.item() == pytest.approx(-(np.log(0.5) + np.log(0.25)) / 2)


def test_float32_stays_float32(device, rng):
    y_pred = tensor(rng.standard_normal((3, 4)).astype(np.float32), device, requires_grad=True)
    value = losses.CategoricalCrossentropy(from_logits=True)(np.eye(4)[:3], y_pred)
    value.backward()
    assert value.dtype == np.float32 and y_pred.grad.dtype == np.float32


def test_get_by_name_and_alias():
    assert isinstance(losses.get("categorical_crossentropy"), losses.CategoricalCrossentropy)
    assert isinstance(losses.get("sparse_categorical_crossentropy"), losses.SparseCategoricalCrossentropy)
    assert isinstance(losses.get("binary_crossentropy"), losses.BinaryCrossentropy)
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("mean_squared_error"), losses.MeanSquaredError)
    assert isinstance(losses.get("MAE"), losses.MeanAbsoluteError)
    assert isinstance(losses.get("mean_absolute_error"), losses.MeanAbsoluteError)
    assert isinstance(losses.get("squared_hinge"), losses.SquaredHinge)
    assert isinstance(losses.get("categorical_hinge"), losses.CategoricalHinge)
    assert isinstance(losses.get("CategoricalHinge"), losses.CategoricalHinge)
    hinge, perceptron = losses.get("hinge"), losses.get("perceptron")
    assert (hinge.margin, perceptron.margin, perceptron.name) == (1.0, 0.0, "perceptron")
    assert isinstance(losses.get(losses.Hinge), losses.Hinge)


def test_get_passes_objects_and_callables_through():
    loss = losses.Hinge(margin=0.5)
    assert losses.get(loss) is loss
    assert losses.get(losses.mean_squared_error) is losses.mean_squared_error


def test_get_rejects_unknown_names_listing_valid_ones():
    with pytest.raises(ValueError, match="unknown loss 'crossentropy'; valid names: categorical_crossentropy, .*mse"):
        losses.get("crossentropy")
    with pytest.raises(TypeError, match="loss must be a name"):
        losses.get(3)


def test_config_round_trips():
    loss = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, reduction="sum", name="cce")
    config = loss.get_config()
    assert config == {"from_logits": True, "label_smoothing": 0.1, "reduction": "sum", "name": "cce"}
    assert losses.CategoricalCrossentropy(**config).get_config() == config
    assert losses.MeanSquaredError().get_config() == {"reduction": "mean", "name": "mean_squared_error"}
    assert losses.Hinge(margin=0.0).get_config()["margin"] == 0.0


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="reduction must be one of mean, sum, none, got 'avg'"):
        losses.MeanSquaredError(reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        losses.CategoricalCrossentropy(label_smoothing=1.5)


def test_shape_mismatch_names_both_shapes(device):
    with pytest.raises(ValueError, match=r"mean_squared_error: y_true has shape \(3, 2\) but y_pred has shape \(3, 4\)"):
        losses.MeanSquaredError()(np.zeros((3, 2)), tensor(np.zeros((3, 4)), device))
    with pytest.raises(ValueError, match=r"y_pred must have shape \(batch, classes\), got \(3, 4, 5\)"):
        losses.CategoricalCrossentropy()(np.zeros((3, 4, 5)), tensor(np.zeros((3, 4, 5)), device))


def test_sparse_labels_must_be_integers_in_range(device):
    y_pred = tensor(np.full((2, 10), 0.1, dtype=np.float32), device)
    loss = losses.SparseCategoricalCrossentropy()
    with pytest.raises(TypeError, match=r"sparse_categorical_crossentropy: y_true must hold integer class "
                                        r"indices in \[0, 10\), got dtype float32"):
        loss(np.array([1.0, 2.0], dtype=np.float32), y_pred)
    with pytest.raises(ValueError, match=r"indices in \[0, 10\), got values from 3 to 10"):
        loss(np.array([3, 10]), y_pred)
    with pytest.raises(ValueError, match=r"got values from -1 to 2"):
        loss(np.array([-1, 2]), y_pred)
    with pytest.raises(ValueError, match=r"y_true must have shape \(2,\)"):
        loss(np.array([1, 2, 3]), y_pred)


def test_y_pred_must_be_float(device):
    with pytest.raises(TypeError, match="mean_absolute_error: y_pred must be a floating-point tensor, got dtype int64"):
        losses.MeanAbsoluteError()(np.zeros(3), tensor(np.zeros(3, dtype=np.int64), device))


def test_nan_and_inf_are_reported_with_the_argument(device):
    y_pred = np.array([[0.5, np.nan], [0.5, 0.5]])
    with pytest.raises(ValueError, match="categorical_crossentropy: y_pred holds NaN"):
        losses.CategoricalCrossentropy()(np.eye(2), tensor(y_pred, device))
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy: y_pred holds NaN"):
        losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([0, 1]), tensor(y_pred, device))
    with pytest.raises(ValueError, match="mean_squared_error: y_true holds Inf"):
        losses.MeanSquaredError()(np.array([1.0, np.inf]), tensor(np.zeros(2), device))
    with pytest.raises(ValueError, match="hinge: y_true holds NaN"):
        losses.Hinge()(np.array([1.0, np.nan]), tensor(np.zeros(2), device))


def test_huge_but_finite_values_pass_the_nan_check(device):
    big = np.array([1e308, 1e308])
    assert losses.MeanAbsoluteError(reduction="none")(big, tensor(big, device)).numpy().tolist() == [0.0, 0.0]


@pytest.mark.parametrize("name", ["categorical_crossentropy", "sparse_categorical_crossentropy",
                                  "binary_crossentropy"])
def test_logits_given_to_a_probability_loss_are_refused_naming_the_loss(device, name):
    logits = tensor(np.array([[2.5, -1.0, 0.3], [0.1, 0.2, -0.4]]), device)
    y_true = {"categorical_crossentropy": np.eye(3)[[0, 2]], "sparse_categorical_crossentropy": np.array([0, 2]),
              "binary_crossentropy": np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])}[name]
    with pytest.raises(ValueError, match=f"{name}: y_pred holds values from -1 to 2.5.*from_logits=True"):
        losses.get(name)(y_true, logits)
    assert np.isfinite(losses.get(name)(y_true, tensor(np.full((2, 3), 1 / 3), device)).item())
