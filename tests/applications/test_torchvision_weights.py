"""torchvision-layout weights: logits match torchvision's, round trips, and the checks on names and shapes.

The expected logits were computed once with torchvision (``tests/fixtures/make_torchvision_logits.py``)
for pseudo-random weights that ``tests/fixtures/torchvision_random_weights.py`` regenerates here
without PyTorch.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import cnnkit
from cnnkit import applications
from tests.fixtures.torchvision_random_weights import fixed_inputs, random_state_dict

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "torchvision_logits.json").read_text())
BUILDERS = {"resnet18": applications.ResNet18, "mobilenet_v2": applications.MobileNetV2}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_imported_weights_give_torchvisions_logits(name, tmp_path):
    reference = EXPECTED[name]
    path = tmp_path / f"{name}.safetensors"
    save_file(random_state_dict(reference["spec"]), str(path))
    model = BUILDERS[name](weights=path, input_shape=(3, 64, 64))
    logits = model.predict(fixed_inputs())
    np.testing.assert_allclose(logits, np.array(reference["logits"]), rtol=0, atol=1e-4)
    # The running statistics stand for many batches: fine-tuning moves them at PyTorch's rate from the start.
    assert all(layer.updates_seen is None for layer in model.layers
               if isinstance(layer, cnnkit.layers.BatchNormalization))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_export_has_torchvisions_names_shapes_and_values(name, tmp_path):
    spec = EXPECTED[name]["spec"]
    state = random_state_dict(spec)
    model = BUILDERS[name](input_shape=(3, 64, 64))
    applications.load_torchvision_weights(model, state)
    written = load_file(str(applications.save_torchvision_weights(model, tmp_path / "out.safetensors")))
    assert {key: [list(value.shape), str(value.dtype)] for key, value in written.items()} == spec
    for key, value in state.items():
        np.testing.assert_array_equal(written[key], value, err_msg=key)
    again = BUILDERS[name](weights=tmp_path / "out.safetensors", input_shape=(3, 64, 64))
    x = fixed_inputs()
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def _resnet18_state():
    return random_state_dict(EXPECTED["resnet18"]["spec"])


def test_a_missing_tensor_is_named():
    state = _resnet18_state()
    del state["layer3.1.bn2.running_var"]
    with pytest.raises(KeyError, match=r"layer3\.1\.bn2\.running_var"):
        applications.load_torchvision_weights(applications.ResNet18(input_shape=(3, 32, 32)), state)


def test_a_misshapen_tensor_is_named_and_nothing_changes():
    state = _resnet18_state()
    state["fc.weight"] = state["fc.weight"][:10]
    model = applications.ResNet18(input_shape=(3, 32, 32))
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"'fc\.weight' has shape \(10, 512\).*needs \(1000, 512\)"):
        applications.load_torchvision_weights(model, state)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_tensors_of_another_architecture_are_refused():
    state = _resnet18_state()
    state["layer1.2.conv1.weight"] = np.zeros((64, 64, 3, 3), np.float32)
    with pytest.raises(KeyError, match=r"no place.*layer1\.2\.conv1\.weight"):
        applications.load_torchvision_weights(applications.ResNet18(input_shape=(3, 32, 32)), state)


def test_a_model_without_its_top_skips_the_files_classifier(tmp_path):
    path = tmp_path / "resnet18.safetensors"
    save_file(_resnet18_state(), str(path))
    features = applications.ResNet18(include_top=False, weights=str(path), input_shape=(3, 64, 64), pooling="avg")
    full = applications.ResNet18(weights=path, input_shape=(3, 64, 64))
    x = fixed_inputs()
    pooled = cnnkit.Model(full.input, full.get_layer("avgpool").output).predict(x)
    np.testing.assert_allclose(features.predict(x), pooled, rtol=1e-6)


def test_a_new_classifier_size_needs_a_model_without_the_old_one(tmp_path):
    path = tmp_path / "resnet18.safetensors"
    save_file(_resnet18_state(), str(path))
    with pytest.raises(ValueError, match="fc.weight"):
        applications.ResNet18(weights=path, num_classes=10, input_shape=(3, 32, 32))


def test_pth_files_need_pytorch_and_say_so(tmp_path, monkeypatch):
    path = tmp_path / "resnet18.pth"
    path.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    with pytest.raises(ImportError, match="needs PyTorch"):
        applications.ResNet18(weights=path)


def test_a_missing_file_says_where_pytorch_keeps_downloads(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"\.cache/torch/hub/checkpoints"):
        applications.ResNet18(weights=tmp_path / "absent.pth")


def test_decode_predictions_names_the_imagenet_classes():
    scores = np.zeros((2, 1000), np.float32)
    scores[0, [1, 207, 954]] = (3, 2, 1)
    scores[1, 0] = 5
    decoded = applications.decode_predictions(scores, top=3)
    assert decoded[0] == [(1, "goldfish", 3.0), (207, "golden retriever", 2.0), (954, "banana", 1.0)]
    assert decoded[1][0] == (0, "tench", 5.0)
    with pytest.raises(ValueError, match="1000"):
        applications.decode_predictions(np.zeros((1, 10)))


def test_preprocess_input_uses_torchvisions_normalisation():
    x = np.ones((1, 3, 2, 2), np.float32)
    expected = (1 - np.array(applications.IMAGENET_MEAN)) / np.array(applications.IMAGENET_STD)
    np.testing.assert_allclose(applications.preprocess_input(x)[0, :, 0, 0], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="divide 8-bit images by 255"):
        applications.preprocess_input(x * 255)
    with pytest.raises(ValueError, match="RGB"):
        applications.preprocess_input(np.ones((1, 1, 2, 2), np.float32))
