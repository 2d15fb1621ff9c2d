"""Classification and regression metrics: plain functions of whole arrays, and stateful metrics for training.

``model.compile(metrics=[...])`` resolves its entries with :func:`get`.
"""
from .functions import (
    accuracy,
    binary_accuracy,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
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
    MeanAbsoluteError,
    MeanMetricWrapper,
    MeanSquaredError,
    Metric,
    Precision,
    Recall,
    SparseCategoricalAccuracy,
    TopKCategoricalAccuracy,
    get,
)
