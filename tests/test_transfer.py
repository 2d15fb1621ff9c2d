"""Transfer learning: freezing, replacing the head, fine-tuning, feature extraction."""
import numpy as np
import pytest

import cnnkit
from cnnkit import Input, Model, Sequential
from cnnkit.layers import BatchNormalization, Conv2D, Dense, Flatten, GlobalAveragePooling2D, MaxPool2D, ReLU
from cnnkit.transfer import freeze, replace_head, unfreeze
from tests.helpers import run_example


def base_layers():
    return [Conv2D(4, 3, padding="same", name="conv"), BatchNormalization(momentum=0.5, name="bn"), ReLU(name="relu"),
            MaxPool2D(name="pool"), Flatten(name="flatten"), Dense(8, activation="relu", name="features")]


def pretrained(rng, functional=False):
    """A model trained one epoch on 4 classes, so that its batch-norm statistics have moved."""
    if functional:
        inputs = Input((1, 6, 6))
        x = inputs
        for layer in base_layers():
            x = layer(x)
        model = Model(inputs, Dense(4, name="old_head")(x))
    else:
        model = Sequential([Input((1, 6, 6)), *base_layers(), Dense(4, name="old_head")])
    model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(rng, 4)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    return model


def data(rng, classes, n=48):
    return rng.standard_normal((n, 1, 6, 6)).astype(np.float32), rng.integers(0, classes, n)


def snapshot(layers):
    return {w.name: w.numpy().copy() for layer in layers for w in layer.weights}


@pytest.mark.parametrize("functional", [False, True])
def test_frozen_base_does_not_change_and_the_optimizer_skips_it(functional, rng):
    old = pretrained(rng, functional)
    head = Dense(3, name="new_head")
    model = replace_head(old, head, freeze_base=True)
    assert isinstance(model, Model if functional else Sequential)
    base = [layer for layer in model.layers if layer is not head]
    before = snapshot(base)
    head_before = head.kernel.numpy().copy()

    model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(rng, 3)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)

    after = snapshot(base)
    assert before.keys() == after.keys() and len(before) == 8  # conv 2, bn 4 (moving statistics too), dense 2
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert not np.array_equal(head.kernel.numpy(), head_before)
    assert [id(p) for p in model.optimizer.params] == [id(head.kernel), id(head.bias)]
    assert all(w.grad is None for layer in base for w in layer.weights)


def test_unfreeze_fine_tunes_the_base_but_keeps_batch_norm_frozen(rng):
    model = replace_head(pretrained(rng), Dense(3), freeze_base=True)
    unfrozen = unfreeze(model)
    assert model.get_layer("bn") not in unfrozen and not model.get_layer("bn").trainable
    assert model.get_layer("conv").trainable and model.get_layer("features").trainable
    before = snapshot(model.layers)
    model.compile(cnnkit.optimizers.Adam(learning_rate=1e-3), cnnkit.losses.SparseCategoricalCrossentropy(True))
    model.fit(*data(rng, 3), epochs=1, batch_size=16, verbose=0)
    after = snapshot(model.layers)
    assert not np.array_equal(after["conv/kernel"], before["conv/kernel"])
    for name in ("bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"):
        np.testing.assert_array_equal(after[name], before[name])
    assert model.get_layer("bn") in unfreeze(model, include_batch_norm=True)
    assert model.get_layer("bn").trainable and model.get_layer("bn").gamma.trainable
    assert not model.get_layer("bn").moving_mean.trainable


def test_freeze_and_unfreeze_take_a_layer_by_name_index_or_object(rng):
    model = pretrained(rng)
    frozen = freeze(model, up_to="pool")
    assert [layer.name for layer in frozen] == ["conv", "bn", "relu", "pool"]
    assert [layer.trainable for layer in model.layers] == [False] * 4 + [True] * 3
    unfreeze(model)
    assert [layer.name for layer in freeze(model, up_to=-3)] == ["conv", "bn", "relu", "pool", "flatten"]
    assert [layer.name for layer in unfreeze(model, from_layer=model.get_layer("flatten"))] == [
        "flatten", "features", "old_head"]
    assert len(freeze(model)) == len(model.layers) and not model.trainable_weights
    with pytest.raises(ValueError, match="out of range"):
        freeze(model, up_to=7)
    with pytest.raises(ValueError, match="no layer named"):
        unfreeze(model, from_layer="nope")


def test_replace_head_shares_the_base_and_can_cut_anywhere(rng):
    old = pretrained(rng)
    x = rng.standard_normal((5, 1, 6, 6)).astype(np.float32)
    expected_old = old.predict(x)
    model = replace_head(old, [Dense(16, activation="relu"), Dense(2)], cut_at="flatten", name="two_class")
    assert model.name == "two_class" and model.output_shape == (None, 2)
    assert [layer.name for layer in model.layers[:5]] == ["conv", "bn", "relu", "pool", "flatten"]
    assert model.get_layer("conv") is old.get_layer("conv")
    assert model.predict(x).shape == (5, 2)
    np.testing.assert_array_equal(old.predict(x), expected_old)  # the old model still runs as before
    assert all(layer.trainable for layer in model.layers)


def test_replace_head_on_a_branching_functional_model(rng):
    inputs = Input((1, 6, 6))
    a = Conv2D(3, 3, padding="same", activation="relu", name="a")(inputs)
    b = Conv2D(3, 1, name="b")(inputs)
    merged = cnnkit.layers.Add(name="add")([a, b])
    outputs = Dense(4)(GlobalAveragePooling2D(name="gap")(merged))
    model = replace_head(Model(inputs, outputs), Dense(2, name="new"), freeze_base=True)
    assert model.output_shape == (None, 2)
    assert {layer.name for layer in model.layers} >= {"a", "b", "add", "gap", "new"}
    assert [w.name for w in model.trainable_weights] == ["new/kernel", "new/bias"]


def test_extract_features_gives_a_layer_output_in_inference_mode(rng):
    model = pretrained(rng)
    x = rng.standard_normal((7, 1, 6, 6)).astype(np.float32)
    features = model.extract_features(x, layer="features", batch_size=3)
    h = cnnkit.Tensor(x)
    with cnnkit.no_grad():
        for layer in model.layers[:6]:
            h = layer(h, training=False)
    assert features.shape == (7, 8)
    np.testing.assert_allclose(features, h.numpy(), rtol=1e-5, atol=1e-6)


def test_replace_head_errors(rng):
    model = pretrained(rng)
    with pytest.raises(TypeError, match="head must be a Layer"):
        replace_head(model, "dense")

    class Subclassed(Model):
        def __init__(self):
            super().__init__()
            self.dense = Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="subclassed"):
        replace_head(Subclassed(), Dense(2))


def test_transfer_learning_example(tmp_path):
    output = run_example("transfer_learning.py", "--output", str(tmp_path))
    for stage in ("pretrained", "head only", "fine-tuned", "from scratch"):
        assert stage in output, stage
    assert (tmp_path / "transfer_learning.png").stat().st_size > 5000
