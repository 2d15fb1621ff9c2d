"""Every layer survives get_config/from_config and a model's to_json/model_from_json; Keras' spellings work."""
import json

import numpy as np
import pytest

import cnnkit
from cnnkit import layers
from cnnkit.custom_objects import custom_object_scope
from cnnkit.layers.base import _LAYER_CLASSES


def doubled(x):
    return x * 2


# One example per concrete layer class, with the shape of one sample it is built on (a list for merges).
EXAMPLES = {
    "Activation": (lambda: layers.Activation("tanh"), (3,)),
    "Add": (lambda: layers.Add(), [(4,), (4,)]),
    "Average": (lambda: layers.Average(), [(4,), (4,)]),
    "AvgPool1D": (lambda: layers.AvgPool1D(2, strides=1, padding="same"), (2, 6)),
    "AvgPool2D": (lambda: layers.AvgPool2D(3, strides=2), (2, 7, 7)),
    "AvgPool3D": (lambda: layers.AvgPool3D(2), (1, 4, 4, 4)),
    "BatchNormalization": (lambda: layers.BatchNormalization(momentum=0.9, epsilon=1e-4, center=False,
                                                             gamma_regularizer="l2"), (3, 4, 4)),
    "Concatenate": (lambda: layers.Concatenate(axis=1), [(2, 3), (4, 3)]),
    "Conv": (lambda: layers.Conv(2, 4, 3, padding="same"), (2, 5, 5)),
    "Conv1D": (lambda: layers.Conv1D(4, 3, strides=2, dilation_rate=1, use_bias=False), (2, 9)),
    "Conv2D": (lambda: layers.Conv2D(4, (3, 2), padding="same", activation="relu", groups=2,
                                     kernel_initializer="he_normal", kernel_regularizer="l1"), (2, 6, 6)),
    "Conv3D": (lambda: layers.Conv3D(2, 2), (1, 3, 3, 3)),
    "Dense": (lambda: layers.Dense(5, activation="softmax", bias_initializer="ones"), (3,)),
    "DepthwiseConv": (lambda: layers.DepthwiseConv(2, 3), (2, 5, 5)),
    "DepthwiseConv1D": (lambda: layers.DepthwiseConv1D(3, depth_multiplier=2), (2, 7)),
    "DepthwiseConv2D": (lambda: layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2), (2, 5, 5)),
    "Dropout": (lambda: layers.Dropout(0.3), (4,)),
    "ELU": (lambda: layers.ELU(alpha=0.5), (3,)),
    "Flatten": (lambda: layers.Flatten(), (2, 3, 3)),
    "GlobalAveragePooling1D": (lambda: layers.GlobalAveragePooling1D(keepdims=True), (2, 5)),
    "GlobalAveragePooling2D": (lambda: layers.GlobalAveragePooling2D(), (2, 5, 5)),
    "GlobalAveragePooling3D": (lambda: layers.GlobalAveragePooling3D(), (2, 3, 3, 3)),
    "GlobalMaxPooling1D": (lambda: layers.GlobalMaxPooling1D(), (2, 5)),
    "GlobalMaxPooling2D": (lambda: layers.GlobalMaxPooling2D(keepdims=True), (2, 5, 5)),
    "GlobalMaxPooling3D": (lambda: layers.GlobalMaxPooling3D(), (2, 3, 3, 3)),
    "L2Pool1D": (lambda: layers.L2Pool1D(2), (2, 6)),
    "L2Pool2D": (lambda: layers.L2Pool2D(2, padding="same"), (2, 5, 5)),
    "L2Pool3D": (lambda: layers.L2Pool3D(2), (1, 4, 4, 4)),
    "Lambda": (lambda: layers.Lambda(doubled), (3,)),
    "LeakyReLU": (lambda: layers.LeakyReLU(alpha=0.2), (3,)),
    "MaxPool1D": (lambda: layers.MaxPool1D(3, strides=1), (2, 6)),
    "MaxPool2D": (lambda: layers.MaxPool2D(2), (2, 6, 6)),
    "MaxPool3D": (lambda: layers.MaxPool3D(2), (1, 4, 4, 4)),
    "Maximum": (lambda: layers.Maximum(), [(4,), (4,)]),
    "Maxout": (lambda: layers.Maxout(2), (4, 3)),
    "Multiply": (lambda: layers.Multiply(), [(4,), (4,)]),
    "ReLU": (lambda: layers.ReLU(), (3,)),
    "Reshape": (lambda: layers.Reshape((3, 2)), (6,)),
    "SeparableConv": (lambda: layers.SeparableConv(2, 4, 3), (2, 5, 5)),
    "SeparableConv1D": (lambda: layers.SeparableConv1D(4, 3, depth_multiplier=2), (2, 7)),
    "SeparableConv2D": (lambda: layers.SeparableConv2D(4, 3, padding="same"), (2, 5, 5)),
    "Softmax": (lambda: layers.Softmax(axis=1), (3,)),
    "Subtract": (lambda: layers.Subtract(), [(4,), (4,)]),
    "ZeroPadding1D": (lambda: layers.ZeroPadding1D(2), (2, 4)),
    "ZeroPadding2D": (lambda: layers.ZeroPadding2D(((1, 0), (2, 1))), (2, 4, 4)),
    "ZeroPadding3D": (lambda: layers.ZeroPadding3D(1), (1, 2, 2, 2)),
}
# Bases that only their subclasses make concrete, the input placeholder and the models (tested below).
NOT_STAND_ALONE = {"_ElementWise", "_Windowed", "Merge", "Pooling", "GlobalPooling", "ZeroPadding", "InputLayer",
                   "Model", "Sequential"}


def test_every_layer_class_has_a_config_example():
    builtin = {name for name, cls in _LAYER_CLASSES.items() if cls.__module__.startswith("cnnkit.")}
    assert builtin - NOT_STAND_ALONE == set(EXAMPLES)


def _inputs(shape):
    return [cnnkit.Input(s) for s in shape] if isinstance(shape, list) else cnnkit.Input(shape)


@pytest.mark.parametrize("class_name", sorted(EXAMPLES))
def test_get_config_from_config_and_model_json_round_trips(class_name):
    make, shape = EXAMPLES[class_name]
    layer = make()
    config = layer.get_config()
    with custom_object_scope({"doubled": doubled}):
        json.dumps(config)                                         # plain data
        rebuilt = type(layer).from_config(json.loads(json.dumps(config)))
        assert rebuilt.get_config() == config
        inputs = _inputs(shape)
        model = cnnkit.Model(inputs, layer(inputs))
        again = cnnkit.models.model_from_json(model.to_json())
    assert again.to_json() == model.to_json()
    assert again.input_shape == model.input_shape and again.output_shape == model.output_shape
    assert [w.shape for w in again.weights] == [w.shape for w in model.weights]
    again.set_weights(model.get_weights())
    rng = np.random.default_rng(0)
    x = ([rng.standard_normal((2, *s)).astype(np.float32) for s in shape] if isinstance(shape, list)
         else rng.standard_normal((2, *shape)).astype(np.float32))
    np.testing.assert_allclose(again.predict(x), model.predict(x), rtol=1e-6)


def test_sequential_json_round_trip_and_shapes():
    model = cnnkit.Sequential([cnnkit.Input((1, 8, 8)), layers.Conv2D(4, 3), layers.BatchNormalization(),
                               layers.GlobalAvgPool2D(), layers.Dense(3)])
    assert model.input_shape == (None, 1, 8, 8) and model.output_shape == (None, 3)
    text = model.to_json()
    again = cnnkit.models.model_from_json(text)
    assert type(again) is cnnkit.Sequential and again.to_json() == text and not again.compiled
    with pytest.raises(ValueError, match="model_from_json: expected the JSON"):
        cnnkit.models.model_from_json('{"layers": []}')
    inputs = [cnnkit.Input((3,), name="a"), cnnkit.Input((2,), name="b")]
    two = cnnkit.Model(inputs, [layers.Dense(1)(layers.Concatenate()(inputs)), layers.Dense(4)(inputs[0])])
    assert two.input_shape == [(None, 3), (None, 2)] and two.output_shape == [(None, 1), (None, 4)]


def test_keras_spellings_are_the_same_layers():
    assert layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D
    assert layers.GlobalMaxPool2D is layers.GlobalMaxPooling2D
    assert layers.GlobalAvgPool1D is layers.GlobalAveragePooling1D and layers.GlobalMaxPool3D is layers.GlobalMaxPooling3D
    assert layers.AvgPool2D is layers.AveragePooling2D and layers.MaxPooling2D is layers.MaxPool2D
    assert layers.Convolution2D is layers.Conv2D and layers.SeparableConvolution2D is layers.SeparableConv2D


@pytest.mark.parametrize("make, message", [
    (lambda: layers.Conv2D(32, 3, paddin="same"), r"Conv2D: unknown argument 'paddin'; did you mean 'padding'\?"),
    (lambda: layers.Dense(3, activaton="relu"), r"Dense: unknown argument 'activaton'; did you mean 'activation'\?"),
    (lambda: layers.ReLU(nmae="r"), r"ReLU: unknown argument 'nmae'; did you mean 'name'\?"),
    (lambda: layers.BatchNormalization(momentun=0.9), r"BatchNormalization: .*did you mean 'momentum'\?"),
    (lambda: layers.MaxPool2D(pool_szie=2), r"MaxPool2D: .*did you mean 'pool_size'\?"),
    (lambda: layers.Dropout(0.5, seeed=1), r"Dropout: unknown argument 'seeed'"),
    (lambda: cnnkit.Sequential([], nmae="s"), r"Sequential: .*did you mean 'name'\?"),
])
def test_a_misspelled_keyword_names_the_layer_and_the_closest_argument(make, message):
    with pytest.raises(TypeError, match=message):
        make()


def test_a_user_layer_taking_extra_keywords_for_itself_still_works():
    class Scaled(layers.Layer):
        def __init__(self, **kwargs):
            self.factor = kwargs.pop("factor", 1.0)
            super().__init__(**kwargs)

        def call(self, x):
            return x * self.factor

    assert Scaled(factor=3.0, name="scaled").factor == 3.0
    with pytest.raises(TypeError, match="Scaled: unknown argument 'nme'"):
        Scaled(nme="x")
