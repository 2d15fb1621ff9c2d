import numpy as np
import pytest

import cnnkit
from cnnkit import regularizers
from cnnkit.layers import Dense, Input
from cnnkit.testing import gradcheck
from tests.helpers import tensor


def test_penalty_values():
    w = cnnkit.Parameter(np.array([[1.0, -2.0], [3.0, 0.5]]))
    assert regularizers.L1(0.1)(w).item() == pytest.approx(0.1 * 6.5)
    assert regularizers.L2(0.1)(w).item() == pytest.approx(0.1 * (1 + 4 + 9 + 0.25))
    assert regularizers.L1L2(0.1, 0.2)(w).item() == pytest.approx(0.1 * 6.5 + 0.2 * 14.25)
    assert regularizers.L1L2()(w).item() == 0.0


def test_penalty_gradients(rng):
    w = tensor(rng.standard_normal((3, 4)), requires_grad=True)
    gradcheck(lambda t: regularizers.L1L2(0.3, 0.7)(t), [w])


def test_model_penalty_sums_regularized_trainable_weights_only():
    layer = Dense(2, kernel_initializer="ones", kernel_regularizer="l2", bias_regularizer=regularizers.L1(1.0),
                  bias_initializer="ones")
    layer(Input((3,)))
    assert regularizers.penalty(layer.weights).item() == pytest.approx(0.01 * 6 + 2)
    layer.trainable = False
    assert regularizers.penalty(layer.weights) is None


def test_names_configs_and_errors():
    assert isinstance(regularizers.get("l1_l2"), regularizers.L1L2)
    assert regularizers.get(None) is None
    restored = regularizers.get(regularizers.serialize(regularizers.L2(0.3)))
    assert isinstance(restored, regularizers.L2) and restored.l2 == 0.3
    with pytest.raises(ValueError, match="unknown regularizer 'l3'; valid names: l1, l1_l2, l1l2, l2"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="non-negative"):
        regularizers.L1L2(-1.0)
