"""Sequential and functional models: building, calling, structure, summary, configs."""
import numpy as np
import pytest

import cnnkit
from cnnkit import Input, Model, Sequential
from cnnkit.layers import (Activation, Add, BatchNormalization, Concatenate, Conv2D, Dense, Dropout, Flatten,
                           GlobalAveragePooling2D, MaxPool2D, ReLU)


def small_cnn(input_shape=(1, 8, 8)):
    return Sequential([
        Input(input_shape),
        Conv2D(4, 3, padding="same", activation="relu"),
        BatchNormalization(),
        MaxPool2D(),
        Flatten(),
        Dropout(0.1),
        Dense(10),
    ])


def residual_model():
    inputs = Input((3, 8, 8))
    x = Conv2D(8, 3, padding="same", activation="relu")(inputs)
    shortcut = x
    x = Conv2D(8, 3, padding="same")(x)
    x = BatchNormalization()(x)
    x = Add()([x, shortcut])
    x = ReLU()(x)
    branch = Conv2D(4, 1)(x)
    x = Concatenate()([x, branch])
    x = GlobalAveragePooling2D()(x)
    outputs = Dense(5, activation="softmax")(x)
    return Model(inputs, outputs)


def test_sequential_builds_in_every_keras_way():
    from_input = small_cnn()
    from_hint = Sequential([Conv2D(4, 3, input_shape=(1, 8, 8)), Flatten(), Dense(2)])
    from_build = Sequential([Conv2D(4, 3), Flatten(), Dense(2)])
    from_build.build((None, 1, 8, 8))
    from_data = Sequential([Conv2D(4, 3), Flatten(), Dense(2)])
    from_data(np.zeros((2, 1, 8, 8), np.float32))
    added = Sequential()
    added.add(Input((1, 8, 8)))
    added.add(Conv2D(4, 3))
    for model in (from_input, from_hint, from_build, from_data, added):
        assert model.built and model.layers[0].kernel.shape == (4, 1, 3, 3)


def test_sequential_reports_a_misfit_layer_when_added():
    model = Sequential([Input((1, 4, 4)), MaxPool2D(2)])
    with pytest.raises(ValueError, match=r"Conv2D 'conv2d(_\d+)?': the window does not fit"):
        model.add(Conv2D(2, 3))


def test_sequential_rejects_inputs_of_the_wrong_shape():
    model = small_cnn()
    with pytest.raises(ValueError, match=r"expected the input to have shape \(None, 1, 8, 8\)"):
        model(np.zeros((2, 1, 9, 8), np.float32))


def test_functional_model_with_residual_and_branch_runs_and_backpropagates(device):
    model = residual_model().to(device)
    x = cnnkit.Tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32), device=device)
    y = model(x, training=True)
    assert y.shape == (2, 5)
    np.testing.assert_allclose(y.numpy().sum(axis=1), 1, rtol=1e-5)
    y[:, 0].sum().backward()
    assert all(w.grad is not None for w in model.trainable_weights)
    assert {type(l).__name__ for l in model.layers} >= {"InputLayer", "Add", "Concatenate"}


def test_functional_model_checks_its_inputs():
    model = residual_model()
    with pytest.raises(ValueError, match=r"expected the input to have shape \(None, 3, 8, 8\)"):
        model(np.zeros((1, 1, 8, 8), np.float32))


def test_functional_model_refuses_outputs_from_a_foreign_input():
    a, b = Input((4,)), Input((4,))
    out = Add()([Dense(2)(a), Dense(2)(b)])
    with pytest.raises(ValueError, match="not among the model's inputs"):
        Model(a, out)


def test_two_inputs_and_get_layer():
    a, b = Input((3,), name="left"), Input((5,), name="right")
    merged = Concatenate(axis=1)([Dense(4, name="da")(a), Dense(4, name="db")(b)])
    model = Model([a, b], Dense(1, name="head")(merged))
    out = model([np.ones((2, 3), np.float32), np.ones((2, 5), np.float32)])
    assert out.shape == (2, 1)
    assert model.get_layer("head").units == 1 and model.get_layer(index=-1).name == "head"
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        model.get_layer("nope")


def test_subclassed_model_tracks_its_layers():
    class TwoLayer(Model):
        def __init__(self):
            super().__init__()
            self.hidden = Dense(8, activation="relu")
            self.out = Dense(3)

        def call(self, x, training=False):
            return self.out(self.hidden(x))

    model = TwoLayer()
    assert model(np.zeros((4, 5), np.float32)).shape == (4, 3)
    assert len(model.trainable_weights) == 4 and model.count_params() == 5 * 8 + 8 + 8 * 3 + 3


def test_summary_lists_layers_shapes_params_and_memory():
    lines = []
    small_cnn().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "conv2d" in text and "(None, 4, 8, 8)" in text and "(None, 10)" in text
    total = 4 * 9 + 4 + 4 * 4 + 64 * 10 + 10
    assert f"Total params: {total:,}" in text
    assert "Non-trainable params: 8" in text and "layer outputs for a batch of 32" in text


def test_summary_of_a_branching_model_shows_connections():
    lines = []
    residual_model().summary(print_fn=lines.append)
    assert "Connected to" in lines[2]


def test_summary_before_build_says_how_to_build():
    with pytest.raises(ValueError, match="has not been built yet"):
        Sequential([Dense(2)]).summary()


def test_config_round_trip_rebuilds_the_same_architecture():
    for model in (small_cnn(), residual_model()):
        clone = type(model).from_config(model.get_config())
        assert [type(l).__name__ for l in clone.layers] == [type(l).__name__ for l in model.layers]
        assert clone.count_params() == model.count_params()


def test_pop_and_replace_the_head():
    model = small_cnn()
    head = model.pop()
    assert isinstance(head, Dense) and model.layers[-1].__class__ is Dropout
    model.add(Dense(3, activation="softmax"))
    assert model(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 3)
    assert model.output.shape == (None, 3)


def test_layer_output_feeds_a_feature_extractor():
    model = small_cnn()
    conv = model.layers[0]
    features = Model(model.input, conv.output)
    assert features(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 4, 8, 8)
    assert model.extract_features(np.zeros((3, 1, 8, 8), np.float32), layer=conv.name).shape == (3, 4, 8, 8)


def test_duplicate_layer_names_are_rejected():
    with pytest.raises(ValueError, match="already in the model"):
        Sequential([Dense(2, name="d"), Dense(2, name="d")])


def test_activation_layer_in_sequential():
    model = Sequential([Input((3,)), Dense(2), Activation("softmax")])
    np.testing.assert_allclose(model(np.ones((1, 3), np.float32)).numpy().sum(), 1, rtol=1e-6)


def test_get_weights_returns_copies():
    model = Sequential([Input((3,)), Dense(2)])
    weights = model.get_weights()
    weights[0][...] = 7.0
    assert not np.allclose(model.get_weights()[0], 7.0)


def test_a_layer_that_does_not_fit_is_not_added():
    model = Sequential([Input((1, 8, 8)), Conv2D(4, 3), Flatten()])
    with pytest.raises(ValueError):
        model.add(Conv2D(2, 3))  # a convolution after Flatten gets rank 2
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2D", "Flatten"]
    model.add(Dense(3))
    assert model.predict(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 3)


def test_a_failed_build_keeps_the_previous_input_shape():
    model = Sequential([Dense(3)])
    with pytest.raises(ValueError):
        model.build((None, 2, 0))
    model.build((None, 4))
    assert model.output_shape == (None, 3)


@pytest.mark.parametrize("make", ["functional", "sequential"])
def test_a_float64_input_makes_a_float64_model(make):
    inputs = Input((3,), dtype="float64")
    dense = Dense(2, dtype="float64")
    model = Model(inputs, dense(inputs)) if make == "functional" else Sequential([inputs, dense])
    x = np.random.default_rng(0).standard_normal((4, 3))
    assert model.predict(x).dtype == np.float64
    np.testing.assert_allclose(model.predict(x), x @ dense.kernel.numpy() + dense.bias.numpy(), rtol=1e-12)


class Tower(Model):
    def __init__(self):
        super().__init__()
        self.blocks = [Dense(4, activation="relu"), Dense(4, activation="relu")]
        self.heads = {"out": Dense(2)}

    def call(self, x, training=False):
        for block in self.blocks:
            x = block(x)
        return self.heads["out"](x)


def test_layers_held_in_lists_and_dicts_are_tracked():
    model = Tower()
    model(np.zeros((1, 3), np.float32))
    assert len(model.weights) == 6
    model.trainable = False
    assert not model.trainable_weights
    from cnnkit.models.saving import named_weights
    assert sorted(named_weights(model)) == ["blocks.0.bias", "blocks.0.kernel", "blocks.1.bias", "blocks.1.kernel",
                                            "heads.out.bias", "heads.out.kernel"]
    model.blocks = []
    assert len(model.weights) == 2


class Aliased(Model):
    def __init__(self):
        super().__init__()
        self.first, self.second = Dense(4), Dense(2)
        self.stack = [self.first, self.second]

    def call(self, x, training=False):
        for layer in self.stack:
            x = layer(x)
        return x


def test_a_layer_held_twice_is_listed_once_and_reassignment_keeps_the_order():
    model = Aliased()
    model(np.zeros((1, 3), np.float32))
    assert [layer.name for layer in model.layers] == [model.first.name, model.second.name]
    from cnnkit.models.saving import named_weights
    before = list(named_weights(model))
    model.first = model.first  # reassigning an attribute must not move its layers to the end
    assert list(named_weights(model)) == before


def test_layers_appended_to_a_held_list_after_assignment_are_tracked():
    model = Tower()
    model.blocks.append(Dense(4))
    model(np.zeros((1, 3), np.float32))
    assert len(model.weights) == 8
