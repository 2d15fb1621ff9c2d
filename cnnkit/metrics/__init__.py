"""Classification metrics: plain functions of whole arrays, and stateful metrics for training.

``model.compile(metrics=[...])`` resolves its entries with :func:`get`.
"""
from .functions import (
    accuracy,
    binary_accuracy,
    confusion_matrix,
    f1_score,
    precision,
    recall,
    roc_auc,
    top_k_accuracy,
)
from .stateful import (
    AUC,
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    ConfusionMatrix,
    F1Score,
    Mean,
    MeanMetricWrapper,
    Metric,
    Precision,
    Recall,
    SparseCategoricalAccuracy,
    TopKCategoricalAccuracy,
    get,
)
