import numpy as np
import pytest

import cnnkit
from cnnkit import activations
from cnnkit.ops import activation as ops
from tests.helpers import tensor

NAMES = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "silu", "swish", "gelu", "softmax", "log_softmax", "linear"]


@pytest.mark.parametrize("name", NAMES)
def test_get_finds_every_name_and_the_function_works(device, name):
    fn = activations.get(name)
    x = tensor(np.array([[-1.5, 0.5, 2.0]]), device)
    assert fn(x).shape == (1, 3)
    assert activations.get(name.upper()) is fn


def test_get_returns_the_op_functions():
    assert activations.get("relu") is ops.relu
    assert activations.get("swish") is ops.silu
    assert activations.relu is ops.relu and activations.gelu is ops.gelu


def test_linear_and_none_are_the_identity():
    x = tensor([1.0, -2.0])
    assert activations.get(None) is activations.linear
    assert activations.get("linear")(x) is x


def test_callables_pass_through():
    def custom(x):
        return x * 2.0

    assert activations.get(custom) is custom


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown activation 'relu6'; valid names: .*gelu, .*leaky_relu, .*relu"):
        activations.get("relu6")


def test_non_callable_is_a_type_error():
    with pytest.raises(TypeError, match="got int: 3"):
        activations.get(3)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "swish"])
def test_serialize_round_trips(name):
    assert activations.serialize(activations.get(name)) == name


def test_swish_serializes_as_silu_and_custom_functions_by_name():
    assert activations.serialize(activations.get("swish")) == "silu"

    def squareplus(x):
        return x

    assert activations.serialize(squareplus) == {"function": "squareplus"}
    with cnnkit.custom_objects.custom_object_scope({"squareplus": squareplus}):
        assert activations.get({"function": "squareplus"}) is squareplus
        assert activations.get("squareplus") is squareplus
    with pytest.raises(TypeError, match="cannot save activation"):
        activations.serialize(lambda x: x)
