import numpy as np
import pytest

import cnnkit
from cnnkit.layers import Activation, Dense, Dropout, Flatten, Input, Lambda, Reshape
from cnnkit.testing import gradcheck
from tests.helpers import tensor


@pytest.fixture
def float64():
    cnnkit.set_default_dtype("float64")
    yield
    cnnkit.set_default_dtype("float32")


def test_dense_builds_from_the_first_input_and_computes_xw_plus_b(device, rng):
    layer = Dense(4, activation="relu")
    x = tensor(rng.standard_normal((3, 5)).astype(np.float32), device)
    y = layer(x)
    W, b = layer.kernel.numpy(), layer.bias.numpy()
    np.testing.assert_allclose(y.numpy(), np.maximum(x.numpy() @ W + b, 0), rtol=1e-5, atol=1e-6)
    assert layer.kernel.shape == (5, 4) and layer.kernel.device == cnnkit.Device(device)
    assert layer.count_params() == 5 * 4 + 4


def test_dense_applies_to_the_last_axis():
    assert Dense(7)(np.zeros((2, 3, 5), np.float32)).shape == (2, 3, 7)


def test_dense_gradients(float64, rng):
    layer = Dense(3, activation="tanh")
    x = tensor(rng.standard_normal((2, 4)), requires_grad=True)
    layer(x)
    gradcheck(lambda x, W, b: layer(x), [x, layer.kernel, layer.bias])


def test_dense_rejects_a_different_feature_count_after_build():
    layer = Dense(2)
    layer(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"Dense 'dense(_\d+)?': expected axis -1 of the input to have size 3"):
        layer(np.zeros((1, 4), np.float32))


def test_integer_input_gets_a_clear_error():
    with pytest.raises(TypeError, match=r"expected floating-point input, got dtype uint8"):
        Dense(2)(np.zeros((1, 3), np.uint8))


def test_float64_input_is_cast_to_the_layer_dtype():
    assert Dense(2)(np.zeros((1, 3))).dtype == np.float32


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match="relu"):
        Dense(2, activation="relux")


def test_dropout_only_in_training(rng):
    x = np.ones((100, 100), np.float32)
    layer = Dropout(0.5)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    dropped = layer(x, training=True).numpy()
    assert 0.4 < (dropped == 0).mean() < 0.6
    assert set(np.unique(dropped)) <= {0.0, 2.0}


def test_flatten_and_reshape_shapes():
    x = np.zeros((2, 3, 4, 5), np.float32)
    assert Flatten()(x).shape == (2, 60)
    assert Reshape((5, -1))(x).shape == (2, 5, 12)
    with pytest.raises(ValueError, match=r"cannot reshape a sample of shape \(3, 4, 5\) \(60 values\) into \(7, -1\)"):
        Reshape((7, -1))(Input((3, 4, 5)))


def test_activation_layer_and_lambda():
    x = np.array([[-1.0, 2.0]], np.float32)
    np.testing.assert_array_equal(Activation("relu")(x).numpy(), [[0.0, 2.0]])
    np.testing.assert_array_equal(Lambda(lambda t: t * 2.0)(x).numpy(), [[-2.0, 4.0]])


def test_config_round_trip_gives_an_equal_layer():
    layer = Dense(3, activation="relu", kernel_regularizer="l2", use_bias=False, name="head")
    clone = Dense.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_freezing_a_layer_freezes_its_weights():
    layer = Dense(2)
    layer(np.zeros((1, 3), np.float32))
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    assert not layer.kernel.requires_grad
    layer.trainable = True
    assert len(layer.trainable_weights) == 2


def test_layer_names_are_unique_and_snake_case():
    first, second = Dense(1), Dense(1)
    assert first.name != second.name and first.name.startswith("dense")


def test_set_weights_checks_shapes():
    layer = Dense(2)
    layer(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"has shape \(3, 2\), the new value has shape \(2, 2\)"):
        layer.set_weights([np.zeros((2, 2)), np.zeros(2)])


def test_relu_with_max_value_clips_and_round_trips_its_config():
    from cnnkit.layers import ReLU
    layer = ReLU(max_value=6.0)
    y = layer(np.array([-1.0, 3.0, 7.0], np.float32))
    np.testing.assert_array_equal(y.numpy(), [0.0, 3.0, 6.0])
    assert ReLU.from_config(layer.get_config()).max_value == 6.0
    with pytest.raises(ValueError, match="max_value"):
        ReLU(max_value=0)
