import numpy as np
import pytest

import cnnkit
from cnnkit import initializers
from cnnkit.layers import Conv2D, Dense, Input


@pytest.mark.parametrize("name,shape,layout,expected_std", [
    ("glorot_uniform", (300, 200), "dense", np.sqrt(2 / 500)),
    ("glorot_normal", (300, 200), "dense", np.sqrt(2 / 500)),
    ("he_uniform", (400, 100), "dense", np.sqrt(2 / 400)),
    ("he_normal", (64, 32, 3, 3), "conv", np.sqrt(2 / 288)),
    ("lecun_normal", (64, 32, 3, 3), "conv", np.sqrt(1 / 288)),
    ("lecun_uniform", (500, 50), "dense", np.sqrt(1 / 500)),
])
def test_variance_scaling_initializers_have_the_stated_variance(name, shape, layout, expected_std):
    values = initializers.get(name)(shape, np.float32, layout)
    assert values.dtype == np.float32 and values.shape == shape
    assert values.std() == pytest.approx(expected_std, rel=0.05)
    assert abs(values.mean()) < 0.1 * expected_std


def test_uniform_initializers_stay_inside_their_limit():
    values = initializers.get("glorot_uniform")((300, 200))
    assert np.abs(values).max() <= np.sqrt(6 / 500)


def test_truncated_normals_are_cut_at_two_standard_deviations():
    values = initializers.VarianceScaling(1.0, "fan_in", "truncated_normal")((1000, 100))
    raw_std = np.sqrt(1 / 1000) / 0.87962566103423978
    assert np.abs(values).max() <= 2 * raw_std


def test_fans_of_dense_and_conv_weights():
    assert initializers.compute_fans((784, 128)) == (784, 128)
    assert initializers.compute_fans((64, 32, 3, 3), "conv") == (32 * 9, 64 * 9)


def test_simple_initializers():
    assert not initializers.get("zeros")((3,)).any()
    assert (initializers.get("ones")((3,)) == 1).all()
    assert (initializers.Constant(2.5)((2, 2)) == 2.5).all()
    values = initializers.RandomNormal(1.0, 0.1)((10000,))
    assert values.mean() == pytest.approx(1.0, abs=0.01) and values.std() == pytest.approx(0.1, rel=0.05)
    values = initializers.RandomUniform(-2, 3)((10000,))
    assert values.min() >= -2 and values.max() < 3


def test_layers_default_to_glorot_kernels_and_zero_biases():
    cnnkit.manual_seed(0)
    dense = Dense(200)
    dense(Input((300,)))
    assert dense.kernel.numpy().std() == pytest.approx(np.sqrt(2 / 500), rel=0.05)
    assert not dense.bias.numpy().any()
    conv = Conv2D(8, 3, bias_initializer=initializers.Constant(0.5))
    conv(Input((2, 5, 5)))
    assert (conv.bias.numpy() == 0.5).all()


def test_same_seed_gives_the_same_weights():
    cnnkit.manual_seed(3)
    first = initializers.get("he_normal")((5, 5))
    cnnkit.manual_seed(3)
    np.testing.assert_array_equal(first, initializers.get("he_normal")((5, 5)))


def test_names_configs_and_errors():
    assert isinstance(initializers.get("xavier_uniform"), initializers.GlorotUniform)
    config = initializers.serialize(initializers.RandomNormal(0.5, 0.2))
    restored = initializers.get(config)
    assert isinstance(restored, initializers.RandomNormal) and restored.stddev == 0.2
    with pytest.raises(ValueError, match="unknown initializer 'glorot'; valid names: .*glorot_uniform"):
        initializers.get("glorot")
    with pytest.raises(ValueError, match="maxval must exceed minval"):
        initializers.RandomUniform(1, 0)
