"""Feeding a model: the Dataset wrapper, mini-batch loading, labels, splits, augmentation (data sets: cnnkit.datasets)."""
from . import transforms
from .dataset import ArrayDataset, Dataset
from .labels import one_hot, to_categorical, to_labels
from .loader import DataLoader
from .split import KFold, StratifiedKFold, train_test_split
from .transforms import (
    Compose,
    GaussianNoise,
    RandomCrop,
    RandomFlip,
    RandomShift,
    gaussian_noise,
    random_crop,
    random_flip,
    random_shift,
    translate,
)

__all__ = [
    "ArrayDataset", "Compose", "DataLoader", "Dataset", "GaussianNoise", "KFold", "RandomCrop", "RandomFlip",
    "RandomShift", "StratifiedKFold", "gaussian_noise", "one_hot", "random_crop", "random_flip", "random_shift",
    "to_categorical", "to_labels", "train_test_split", "transforms", "translate",
]
