import numpy as np
import pytest

from cnnkit import metrics
from tests.helpers import tensor

BATCHES = [slice(0, 7), slice(7, 14), slice(14, 17)]   # uneven: the last batch is short


def one_hot(labels, num_classes):
    return np.eye(num_classes)[labels]


def run_batches(metric, y_true, y_pred, wrap=np.asarray):
    for batch in BATCHES:
        metric.update_state(wrap(y_true[batch]), wrap(y_pred[batch]))
    return metric.result()


@pytest.fixture
def data(rng):
    labels = rng.integers(0, 4, 17)
    logits = np.round(rng.standard_normal((17, 4)), 1)
    return labels, logits


@pytest.mark.parametrize("make,function", [
    (metrics.Accuracy, metrics.accuracy),
    (metrics.SparseCategoricalAccuracy, metrics.accuracy),
    (lambda: metrics.TopKCategoricalAccuracy(k=2), lambda t, p: metrics.top_k_accuracy(t, p, k=2)),
    (metrics.Precision, metrics.precision),
    (lambda: metrics.Recall(average="weighted"), lambda t, p: metrics.recall(t, p, average="weighted")),
    (metrics.F1Score, metrics.f1_score),
    (lambda: metrics.F1Score(average=None), lambda t, p: metrics.f1_score(t, p, average=None)),
    (metrics.AUC, metrics.roc_auc),
    (metrics.ConfusionMatrix, metrics.confusion_matrix),
])
def test_batch_accumulation_equals_the_whole_array_function(data, make, function):
    labels, logits = data
    np.testing.assert_allclose(run_batches(make(), labels, logits), function(labels, logits))


def test_f1_over_an_epoch_is_exact_not_a_mean_of_batches(data):
    labels, logits = data
    batch_values = [metrics.f1_score(labels[b], logits[b], num_classes=4) for b in BATCHES]
    epoch = run_batches(metrics.F1Score(), labels, logits)
    assert epoch == pytest.approx(metrics.f1_score(labels, logits))
    assert epoch != pytest.approx(np.mean(batch_values))


def test_accuracy_follows_the_shapes_sparse_categorical_or_binary(data):
    labels, logits = data
    expected = metrics.accuracy(labels, logits)
    assert run_batches(metrics.Accuracy(), one_hot(labels, 4), logits) == pytest.approx(expected)
    assert run_batches(metrics.CategoricalAccuracy(), one_hot(labels, 4), logits) == pytest.approx(expected)
    assert run_batches(metrics.Accuracy(), labels[:, None], logits) == pytest.approx(expected)
    binary, probs = (labels > 1).astype(np.float32), 1 / (1 + np.exp(-logits[:, 0]))
    assert run_batches(metrics.Accuracy(), binary, probs) == pytest.approx(metrics.binary_accuracy(binary, probs))
    assert run_batches(metrics.BinaryAccuracy(), binary, probs) == pytest.approx(metrics.binary_accuracy(binary, probs))


def test_sparse_and_categorical_accuracy_reject_the_other_label_form(data):
    labels, logits = data
    with pytest.raises(ValueError, match="SparseCategoricalAccuracy .*use CategoricalAccuracy for one-hot labels"):
        metrics.SparseCategoricalAccuracy().update_state(one_hot(labels, 4), logits)
    with pytest.raises(ValueError, match="CategoricalAccuracy .*use SparseCategoricalAccuracy for integer labels"):
        metrics.CategoricalAccuracy().update_state(labels, logits)


def test_reset_state_and_result_before_any_update():
    metric = metrics.Precision()
    assert metric.result() == 0.0
    metric.update_state([0, 1, 1], [0, 1, 0])
    assert metric.result() == pytest.approx((1 / 2 + 1) / 2)
    metric.reset_state()
    assert metric.result() == 0.0
    metric.update_state([0, 1], [0, 1])
    assert metric.result() == 1.0
    assert metrics.AUC().result() == 0.0
    assert metrics.Accuracy().result() == 0.0


def test_call_updates_and_returns_the_running_result():
    metric = metrics.Accuracy()
    assert metric([0, 1], [0, 0]) == 0.5
    assert metric([1, 1], [1, 1]) == 0.75


def test_mean_weights_batches_by_sample_weight():
    mean = metrics.Mean(name="loss")
    mean.update_state(1.0, sample_weight=4)
    mean.update_state(2.0, sample_weight=2)
    assert mean.result() == pytest.approx(8 / 6)
    mean.update_state(np.array([3.0, 5.0]))
    assert mean.result() == pytest.approx(16 / 8)
    with pytest.raises(ValueError, match=r"sample_weight of shape \(3,\) does not broadcast to values of shape \(2,\)"):
        mean.update_state([1.0, 2.0], sample_weight=[1, 1, 1])


def test_wrapped_function_is_a_per_sample_mean_over_batches(data):
    labels, logits = data

    def hit_rate(y_true, y_pred):
        return float(np.mean(np.asarray(y_pred).argmax(axis=1) == np.asarray(y_true)))

    metric = metrics.get(hit_rate)
    assert isinstance(metric, metrics.MeanMetricWrapper) and metric.name == "hit_rate"
    assert run_batches(metric, labels, logits) == pytest.approx(metrics.accuracy(labels, logits))


def test_confusion_matrix_grows_with_labels_and_formats_for_logs():
    metric = metrics.ConfusionMatrix()
    metric.update_state([0, 1], [1, 1])
    metric.update_state([2, 0], [2, 0])
    np.testing.assert_array_equal(metric.result(), [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert not metric.is_scalar
    assert metric.format(["cat", "dog", "bird"]).splitlines() == [
        "true\\pred  cat  dog bird",
        "      cat    1    1    0",
        "      dog    0    1    0",
        "     bird    0    0    1",
    ]
    with pytest.raises(ValueError, match="class_names has 2 entries for 3 classes"):
        metric.format(["a", "b"])


def test_fixed_num_classes_and_is_scalar():
    metric = metrics.ConfusionMatrix(num_classes=3)
    assert metric.result().shape == (3, 3)
    with pytest.raises(ValueError, match=r"y_true must hold integer class indices in \[0, 3\), got 3"):
        metric.update_state([3], [0])
    assert metrics.F1Score().is_scalar and not metrics.F1Score(average=None).is_scalar
    assert metrics.AUC().is_scalar and not metrics.AUC(average=None).is_scalar


@pytest.mark.parametrize("metric", [
    metrics.Accuracy(name="acc"), metrics.BinaryAccuracy(threshold=0.0), metrics.TopKCategoricalAccuracy(k=3),
    metrics.Precision(average="micro", num_classes=5), metrics.Recall(), metrics.F1Score(average=None),
    metrics.AUC(average="weighted"), metrics.ConfusionMatrix(num_classes=2), metrics.Mean(name="loss"),
])
def test_config_round_trip(metric):
    rebuilt = type(metric).from_config(metric.get_config())
    assert rebuilt.get_config() == metric.get_config()
    assert repr(rebuilt) == repr(metric)


def test_metric_classes_take_tensors_on_the_device(device, data):
    labels, logits = data

    def on_device(array):
        return tensor(array, device)

    for metric, function in [(metrics.Accuracy(), metrics.accuracy), (metrics.F1Score(), metrics.f1_score),
                             (metrics.AUC(), metrics.roc_auc)]:
        assert run_batches(metric, labels, logits, on_device) == pytest.approx(function(labels, logits))
    mean = metrics.Mean()
    mean.update_state(tensor(np.array(2.5), device), sample_weight=2)
    assert mean.result() == 2.5


@pytest.mark.parametrize("name,cls", [
    ("accuracy", metrics.Accuracy), ("acc", metrics.Accuracy),
    ("sparse_categorical_accuracy", metrics.SparseCategoricalAccuracy),
    ("categorical_accuracy", metrics.CategoricalAccuracy), ("binary_accuracy", metrics.BinaryAccuracy),
    ("top_k_accuracy", metrics.TopKCategoricalAccuracy), ("top5", metrics.TopKCategoricalAccuracy),
    ("precision", metrics.Precision), ("recall", metrics.Recall), ("f1", metrics.F1Score),
    ("f1_score", metrics.F1Score), ("auc", metrics.AUC), ("confusion_matrix", metrics.ConfusionMatrix),
])
def test_get_by_name_gives_a_new_metric_named_as_asked(name, cls):
    metric = metrics.get(name)
    assert type(metric) is cls and metric.name == name
    assert metrics.get(name) is not metric


def test_get_passes_metrics_through_and_rejects_unknown_names():
    metric = metrics.F1Score(average="micro")
    assert metrics.get(metric) is metric
    assert metrics.get("top5").k == 5
    assert isinstance(metrics.get(metrics.Recall), metrics.Recall)
    with pytest.raises(ValueError, match="unknown metric 'accuracy_score'; valid names are acc, accuracy, auc, "):
        metrics.get("accuracy_score")
    with pytest.raises(TypeError, match="got int"):
        metrics.get(3)


def test_constructor_and_update_errors():
    with pytest.raises(ValueError, match="TopKCategoricalAccuracy: k must be a positive integer, got 0"):
        metrics.TopKCategoricalAccuracy(k=0)
    with pytest.raises(ValueError, match="F1Score: average must be one of"):
        metrics.F1Score(average="samples")
    with pytest.raises(ValueError, match="AUC: multi_class must be one of 'ovr'"):
        metrics.AUC(multi_class="ovo")
    with pytest.raises(ValueError, match="Precision: num_classes must be a positive integer or None, got 0"):
        metrics.Precision(num_classes=0)
    with pytest.raises(ValueError, match="Accuracy 'accuracy': y_true and y_pred must have the same number of samples"):
        metrics.Accuracy().update_state([0, 1, 2], np.zeros((2, 3)))
    auc = metrics.AUC()
    auc.update_state([0, 1], np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"y_pred of shape \(2, 4\) does not match earlier batches of shape \(N, 3\)"):
        auc.update_state([0, 1], np.zeros((2, 4)))


def test_mae_and_mse_metrics_average_every_value_over_the_epoch():
    mae, mse = metrics.get("mae"), metrics.get("mse")
    batches = [(np.array([[1.0], [2.0]]), np.array([[0.0], [4.0]])), (np.array([[3.0]]), np.array([[3.5]]))]
    for y_true, y_pred in batches:
        mae.update_state(y_true, y_pred)
        mse.update_state(y_true, y_pred)
    assert mae.name == "mae" and mae.result() == pytest.approx((1 + 2 + 0.5) / 3)
    assert mse.result() == pytest.approx((1 + 4 + 0.25) / 3)
    with pytest.raises(ValueError, match="same number of values per sample"):
        metrics.mean_absolute_error(np.zeros((2, 3)), np.zeros((2, 2)))
