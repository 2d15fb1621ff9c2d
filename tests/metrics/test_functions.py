import numpy as np
import pytest

from cnnkit import metrics
from tests.helpers import tensor

# Eight samples of three classes; class 2 is never predicted.
#   confusion matrix [[3, 1, 0], [0, 2, 0], [1, 1, 0]]: tp = [3, 2, 0], fp = [1, 2, 0], fn = [1, 0, 2]
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 1, 1, 1, 0])


def one_hot(labels, num_classes):
    return np.eye(num_classes)[labels]


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def pairwise_auc(positive, score):
    """Oracle: P(score of a positive > score of a negative), ties counting one half."""
    pos, neg = score[positive], score[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


# ---------------------------------------------------------------- accuracy

def test_accuracy_from_scores_labels_and_binary_probabilities():
    scores = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    assert metrics.accuracy([0, 1, 2, 2], scores) == 0.5
    assert metrics.accuracy(np.array([[0], [1], [2], [2]]), scores) == 0.5
    assert metrics.accuracy([0, 1, 2, 2], [0, 2, 2, 1]) == 0.5
    # Float probabilities of class 1 are thresholded at 0.5 (0.5 itself predicts class 0).
    assert metrics.accuracy([0, 1, 1, 1], [0.2, 0.7, 0.5, 0.9]) == 0.75
    assert metrics.accuracy([[0], [1], [1], [1]], [[0.2], [0.7], [0.5], [0.9]]) == 0.75


def test_accuracy_perfect_and_worst():
    assert metrics.accuracy(Y_TRUE, one_hot(Y_TRUE, 3)) == 1.0
    assert metrics.accuracy(Y_TRUE, one_hot((Y_TRUE + 1) % 3, 3)) == 0.0


def test_accuracy_one_hot_equals_sparse_and_logits_equal_probabilities(rng):
    labels = rng.integers(0, 5, 40)
    logits = rng.standard_normal((40, 5))
    expected = np.mean(logits.argmax(axis=1) == labels)
    assert metrics.accuracy(labels, logits) == pytest.approx(expected)
    assert metrics.accuracy(one_hot(labels, 5), logits) == metrics.accuracy(labels, logits)
    assert metrics.accuracy(labels, softmax(logits)) == metrics.accuracy(labels, logits)
    assert metrics.accuracy(labels.astype(np.float32), logits) == metrics.accuracy(labels, logits)


def test_binary_accuracy_is_element_wise_and_thresholded():
    y_true = np.array([[1, 0], [0, 1]])
    y_prob = np.array([[0.6, 0.4], [0.7, 0.2]])
    assert metrics.binary_accuracy(y_true, y_prob) == 0.5
    assert metrics.binary_accuracy(y_true, y_prob, threshold=0.65) == 0.25
    logits = np.log(y_prob / (1 - y_prob))
    assert metrics.binary_accuracy(y_true, logits, threshold=0.0) == 0.5
    assert metrics.binary_accuracy([1, 0, 1], [[0.9], [0.1], [0.2]]) == pytest.approx(2 / 3)


def test_top_k_accuracy_hand_computed_and_ties():
    scores = np.array([[0.5, 0.3, 0.2, 0.0],
                       [0.1, 0.2, 0.3, 0.4],
                       [0.4, 0.1, 0.3, 0.2]])
    labels = [1, 1, 3]   # ranks of the true class: 2, 3, 3
    assert metrics.top_k_accuracy(labels, scores, k=1) == 0.0
    assert metrics.top_k_accuracy(labels, scores, k=2) == pytest.approx(1 / 3)
    assert metrics.top_k_accuracy(labels, scores, k=3) == 1.0
    assert metrics.top_k_accuracy(one_hot(labels, 4), scores, k=2) == pytest.approx(1 / 3)
    # A score tied with the true class does not push it out of the top k.
    assert metrics.top_k_accuracy([1], [[0.5, 0.5, 0.0]], k=1) == 1.0
    assert metrics.top_k_accuracy([2], [[0.5, 0.5, 0.0]], k=2) == 0.0


def test_top_1_equals_accuracy(rng):
    labels, scores = rng.integers(0, 6, 30), rng.standard_normal((30, 6))
    assert metrics.top_k_accuracy(labels, scores, k=1) == metrics.accuracy(labels, scores)


# ---------------------------------------------------------------- confusion matrix and scores

def test_confusion_matrix_rows_are_true_columns_predicted():
    expected = np.array([[3, 1, 0], [0, 2, 0], [1, 1, 0]])
    np.testing.assert_array_equal(metrics.confusion_matrix(Y_TRUE, Y_PRED), expected)
    np.testing.assert_array_equal(metrics.confusion_matrix(one_hot(Y_TRUE, 3), one_hot(Y_PRED, 3)), expected)
    padded = metrics.confusion_matrix(Y_TRUE, Y_PRED, num_classes=4)
    assert padded.shape == (4, 4) and padded.dtype == np.int64
    np.testing.assert_array_equal(padded[:3, :3], expected)
    assert padded[3].sum() == 0 and padded[:, 3].sum() == 0
    # Binary probabilities give a 2 x 2 matrix.
    np.testing.assert_array_equal(metrics.confusion_matrix([0, 1, 1], [0.9, 0.8, 0.1]), [[0, 1], [1, 1]])


def test_precision_recall_f1_per_class_with_a_class_never_predicted():
    np.testing.assert_allclose(metrics.precision(Y_TRUE, Y_PRED, average=None), [3 / 4, 2 / 4, 0.0])
    np.testing.assert_allclose(metrics.recall(Y_TRUE, Y_PRED, average=None), [3 / 4, 2 / 2, 0 / 2])
    np.testing.assert_allclose(metrics.f1_score(Y_TRUE, Y_PRED, average=None), [6 / 8, 4 / 6, 0.0])


@pytest.mark.parametrize("average,p,r,f1", [
    ("macro", (3 / 4 + 2 / 4) / 3, (3 / 4 + 1) / 3, (6 / 8 + 4 / 6) / 3),
    ("micro", 5 / 8, 5 / 8, 5 / 8),  # single-label data: micro = accuracy
    ("weighted", (4 * 3 / 4 + 2 * 2 / 4) / 8, (4 * 3 / 4 + 2 * 1) / 8, (4 * 6 / 8 + 2 * 4 / 6) / 8),
])
def test_precision_recall_f1_averages(average, p, r, f1):
    assert metrics.precision(Y_TRUE, Y_PRED, average=average) == pytest.approx(p)
    assert metrics.recall(Y_TRUE, Y_PRED, average=average) == pytest.approx(r)
    assert metrics.f1_score(Y_TRUE, Y_PRED, average=average) == pytest.approx(f1)


def test_micro_scores_equal_accuracy_and_absent_classes_count_zero_in_macro():
    assert metrics.f1_score(Y_TRUE, Y_PRED, average="micro") == metrics.accuracy(Y_TRUE, Y_PRED)
    per_class = metrics.recall(Y_TRUE, Y_PRED, average=None, num_classes=4)
    assert per_class[3] == 0.0
    assert metrics.recall(Y_TRUE, Y_PRED, num_classes=4) == pytest.approx(per_class.sum() / 4)


def test_binary_average_scores_class_one():
    y_true, y_prob = [0, 1, 1, 0, 1], [0.2, 0.8, 0.3, 0.6, 0.9]   # predicted 0, 1, 0, 1, 1
    assert metrics.precision(y_true, y_prob, average="binary") == pytest.approx(2 / 3)
    assert metrics.recall(y_true, y_prob, average="binary") == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="average='binary' needs exactly 2 classes, got 3"):
        metrics.precision(Y_TRUE, Y_PRED, average="binary")


def test_perfect_and_worst_scores():
    worst = (Y_TRUE + 1) % 3
    for score in (metrics.precision, metrics.recall, metrics.f1_score):
        for average in ("macro", "micro", "weighted"):
            assert score(Y_TRUE, Y_TRUE, average=average) == 1.0
            assert score(Y_TRUE, worst, average=average) == 0.0


# ---------------------------------------------------------------- ROC AUC

def test_roc_auc_hand_computed_with_ties():
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # Pairs (pos, neg): (0.5, 0.5) tie = 1/2, the other three are wins: 3.5 / 4.
    assert metrics.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == 0.875
    assert metrics.roc_auc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]) == 0.5
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert metrics.roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0


def test_roc_auc_binary_forms_agree_and_ignore_monotone_transforms(rng):
    labels = rng.integers(0, 2, 50)
    logits = np.round(rng.standard_normal(50), 1)   # rounding makes ties
    expected = pairwise_auc(labels == 1, logits)
    assert metrics.roc_auc(labels, logits) == pytest.approx(expected)
    probs = 1 / (1 + np.exp(-logits))
    assert metrics.roc_auc(labels, probs) == pytest.approx(expected)
    assert metrics.roc_auc(labels[:, None], probs[:, None]) == pytest.approx(expected)
    assert metrics.roc_auc(labels, np.stack([1 - probs, probs], axis=1)) == pytest.approx(expected)
    assert metrics.roc_auc(one_hot(labels, 2), probs) == pytest.approx(expected)


def test_roc_auc_one_vs_rest_hand_computed():
    y_true = [0, 0, 1, 1, 2, 2]
    scores = np.array([[0.6, 0.3, 0.1],
                       [0.2, 0.5, 0.3],
                       [0.3, 0.4, 0.3],
                       [0.4, 0.4, 0.2],
                       [0.1, 0.2, 0.7],
                       [0.3, 0.3, 0.4]])
    # class 0: positives {0.6, 0.2} vs {0.3, 0.4, 0.1, 0.3}: 4 + 1 wins = 5 / 8
    # class 1: positives {0.4, 0.4} vs {0.3, 0.5, 0.2, 0.3}: 3 + 3 wins = 6 / 8
    # class 2: positives {0.7, 0.4} vs {0.1, 0.3, 0.3, 0.2}: all 8 wins
    per_class = metrics.roc_auc(y_true, scores, average=None)
    np.testing.assert_allclose(per_class, [5 / 8, 6 / 8, 1.0])
    assert metrics.roc_auc(y_true, scores) == pytest.approx((5 / 8 + 6 / 8 + 1) / 3)
    np.testing.assert_allclose(metrics.roc_auc(one_hot(y_true, 3), scores, average=None), per_class)


def test_roc_auc_weighted_and_micro_against_pairwise_oracle(rng):
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 0, 1])
    scores = np.round(rng.random((12, 3)), 1)
    targets = one_hot(labels, 3).astype(bool)
    per_class = [pairwise_auc(targets[:, c], scores[:, c]) for c in range(3)]
    support = targets.sum(axis=0)
    assert metrics.roc_auc(labels, scores, average="weighted") == pytest.approx(np.dot(per_class, support) / 12)
    assert metrics.roc_auc(labels, scores, average="micro") == pytest.approx(
        pairwise_auc(targets.ravel(), scores.ravel()))


def test_roc_auc_needs_both_label_values_per_class():
    with pytest.raises(ValueError, match="the binary problem has only negative samples"):
        metrics.roc_auc([0, 0, 0], [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match=r"class 2 \(one-vs-rest\) has only negative samples"):
        metrics.roc_auc([0, 1, 0, 1], np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match="multi_class must be one of 'ovr', got 'ovo'"):
        metrics.roc_auc([0, 1], [0.2, 0.8], multi_class="ovo")
    with pytest.raises(ValueError, match="average must be one of 'macro', 'micro', 'weighted', None, got 'binary'"):
        metrics.roc_auc([0, 1], [0.2, 0.8], average="binary")


# ---------------------------------------------------------------- devices and errors

def test_functions_take_tensors_on_the_device(device, rng):
    labels = rng.integers(0, 4, 20)
    logits = rng.standard_normal((20, 4))
    t_labels, t_logits = tensor(labels, device), tensor(logits, device)
    assert metrics.accuracy(t_labels, t_logits) == metrics.accuracy(labels, logits)
    assert metrics.top_k_accuracy(t_labels, t_logits, k=2) == metrics.top_k_accuracy(labels, logits, k=2)
    np.testing.assert_array_equal(metrics.confusion_matrix(t_labels, t_logits),
                                  metrics.confusion_matrix(labels, logits))
    assert metrics.f1_score(t_labels, t_logits) == metrics.f1_score(labels, logits)
    assert metrics.roc_auc(t_labels, t_logits) == metrics.roc_auc(labels, logits)
    binary = (labels > 1).astype(np.float32)
    assert metrics.binary_accuracy(tensor(binary, device), tensor(logits[:, 0], device), 0.0) == \
        metrics.binary_accuracy(binary, logits[:, 0], 0.0)


@pytest.mark.parametrize("call,error,message", [
    (lambda: metrics.accuracy([0, 1, 2], np.zeros((4, 3))),
     ValueError, r"accuracy: y_true and y_pred must have the same number of samples, got 3 in y_true \(shape \(3,\)\) "
                 r"and 4 in y_pred \(shape \(4, 3\)\)"),
    (lambda: metrics.accuracy([0, 3], np.zeros((2, 3))),
     ValueError, r"accuracy: y_true must hold integer class indices in \[0, 3\), got 3"),
    (lambda: metrics.accuracy([0, -1], [0, 1]),
     ValueError, "y_true must hold non-negative integer class indices, got -1"),
    (lambda: metrics.accuracy([0.0, 0.5], np.zeros((2, 3))),
     ValueError, "y_true must hold integer class indices in .* got the non-integer value 0.5"),
    (lambda: metrics.accuracy(np.eye(4)[:2], np.zeros((2, 3))),
     ValueError, "y_true is one-hot with 4 classes but y_pred gives 3"),
    (lambda: metrics.accuracy(["a", "b"], [0, 1]), TypeError, "y_true must be numeric .* got dtype <U1"),
    (lambda: metrics.accuracy([], []), ValueError, "needs at least one sample"),
    (lambda: metrics.top_k_accuracy([0, 1], np.zeros((2, 3)), k=5),
     ValueError, r"top_k_accuracy: k=5 is larger than the number of classes, 3"),
    (lambda: metrics.confusion_matrix([0, 1], [0, 4], num_classes=3),
     ValueError, r"confusion_matrix: y_pred must hold integer class indices in \[0, 3\), got 4"),
    (lambda: metrics.confusion_matrix([0, 1], np.zeros((2, 4)), num_classes=3),
     ValueError, "num_classes is 3 but y_pred gives 4 classes"),
    (lambda: metrics.binary_accuracy([0, 2], [0.1, 0.9]),
     ValueError, "binary_accuracy: y_true must hold binary labels 0 or 1, got 2"),
    (lambda: metrics.binary_accuracy([[0, 1]], [[0.1, 0.9, 0.2]]),
     ValueError, r"y_true and y_pred must have the same shape, got \(1, 2\) and \(1, 3\)"),
    (lambda: metrics.precision([0, 1], [0, 1], average="mean"),
     ValueError, "precision: average must be one of 'macro', 'micro', 'weighted', 'binary', None, got 'mean'"),
    (lambda: metrics.roc_auc([0, 1], [0.2, 0.8, 0.5]),
     ValueError, "roc_auc: y_true and y_score must have the same number of samples"),
])
def test_errors_name_the_argument_and_the_values(call, error, message):
    with pytest.raises(error, match=message):
        call()
