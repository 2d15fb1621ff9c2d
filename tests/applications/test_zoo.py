"""The model zoo: published parameter counts, one training step per architecture, and the model API on zoo models."""
import time

import numpy as np
import pytest

import cnnkit
from cnnkit import applications, explain, initializers, transfer
from cnnkit.layers import Dense

# Trainable parameters at 1000 classes and 224×224, as torchvision counts them (batch-norm statistics are
# buffers there and non-trainable weights here).
PUBLISHED = {
    "ResNet18": (applications.ResNet18, {}, 11_689_512),
    "ResNet34": (applications.ResNet34, {}, 21_797_672),
    "ResNet50": (applications.ResNet50, {}, 25_557_032),
    "VGG11": (applications.VGG11, {}, 132_863_336),
    "VGG11_bn": (applications.VGG11, {"batch_norm": True}, 132_868_840),
    "VGG16": (applications.VGG16, {}, 138_357_544),
    "VGG16_bn": (applications.VGG16, {"batch_norm": True}, 138_365_992),
    "AlexNet": (applications.AlexNet, {}, 61_100_840),
    "MobileNetV2": (applications.MobileNetV2, {}, 3_504_872),
}

SMALL = [
    ("LeNet5 classic", applications.LeNet5, {"variant": "classic"}, (1, 32, 32)),
    ("LeNet5 modern", applications.LeNet5, {"variant": "modern"}, (1, 28, 28)),
    ("AlexNet", applications.AlexNet, {}, (3, 64, 64)),
    ("VGG11", applications.VGG11, {}, (3, 32, 32)),
    ("VGG11_bn", applications.VGG11, {"batch_norm": True}, (3, 32, 32)),
    ("VGG16", applications.VGG16, {}, (3, 32, 32)),
    ("VGG16_bn", applications.VGG16, {"batch_norm": True}, (3, 32, 32)),
    ("ResNet18", applications.ResNet18, {}, (3, 32, 32)),
    ("ResNet34", applications.ResNet34, {}, (3, 32, 32)),
    ("ResNet50", applications.ResNet50, {}, (3, 64, 64)),  # 2×2 last maps: batch norm there needs the values
    ("MobileNetV2", applications.MobileNetV2, {}, (3, 64, 64)),
]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_the_published_ones(name):
    build, options, expected = PUBLISHED[name]
    start = time.perf_counter()
    with initializers.skip_initialization():  # unfilled memory: counting 138 M parameters costs no random draws
        model = build(**options)
    assert time.perf_counter() - start < 5
    trainable = sum(w.size for w in model.trainable_weights)
    assert trainable == expected
    statistics = sum(w.size for w in model.non_trainable_weights)
    batch_norm_channels = sum(layer.gamma.size for layer in model.layers
                              if isinstance(layer, cnnkit.layers.BatchNormalization))
    assert statistics == 2 * batch_norm_channels
    assert model.count_params() == expected + statistics


def test_lenet5_has_the_classic_parameter_count():
    assert applications.LeNet5().count_params() == 61_706
    assert applications.LeNet5(variant="modern").count_params() == 61_706


@pytest.mark.parametrize("name,build,options,shape", SMALL, ids=[case[0] for case in SMALL])
def test_every_model_trains_one_step_on_the_cpu(name, build, options, shape):
    cnnkit.manual_seed(0)
    model = build(input_shape=shape, num_classes=5, **options)
    model.compile("sgd", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    # Four images, so that batch norm of ResNet's last 1×1 maps sees more than two values per channel.
    x = np.random.default_rng(0).standard_normal((4,) + shape).astype(np.float32)
    kernel = next(w for w in model.trainable_weights if w.ndim == 4)
    before = kernel.numpy().copy()
    loss = model.train_on_batch(x, np.array([0, 3, 1, 4]))
    assert np.isfinite(loss)
    assert not np.array_equal(kernel.numpy(), before)
    assert np.abs(kernel.numpy() - before).max() < 1  # a sane step, not an explosion
    predictions = model.predict(x)
    assert predictions.shape == (4, 5) and np.all(np.isfinite(predictions))


def test_include_top_false_returns_feature_maps_or_their_pooling():
    maps = applications.ResNet18(include_top=False, input_shape=(3, 64, 64))
    assert maps.output.shape == (None, 512, 2, 2)
    assert not any(layer.name == "fc" for layer in maps.layers)
    pooled = applications.MobileNetV2(include_top=False, input_shape=(3, 32, 32), pooling="avg")
    assert pooled.output.shape == (None, 1280)
    assert applications.VGG11(include_top=False, pooling="max", input_shape=(3, 32, 32)).output.shape == (None, 512)
    assert applications.LeNet5(include_top=False).output.shape == (None, 16, 5, 5)


def test_classifier_activation_and_names_follow_torchvision():
    model = applications.ResNet18(input_shape=(3, 32, 32), num_classes=3, classifier_activation="softmax")
    probabilities = model.predict(np.ones((2, 3, 32, 32), np.float32))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    names = {layer.name for layer in model.layers}
    assert {"conv1", "bn1", "layer1.0.conv1", "layer2.0.downsample.0", "layer4.1.bn2", "fc"} <= names


@pytest.mark.parametrize("arguments,message", [
    ({"input_shape": (3, 16, 16)}, "at least 32x32"),
    ({"input_shape": (3, 32)}, "input_shape must be"),
    ({"num_classes": 0}, "num_classes"),
    ({"include_top": False, "pooling": "mean"}, "pooling"),
    ({"weights": "imagenet"}, "downloads nothing"),
    ({"weights": 3}, "weights must be"),
])
def test_bad_arguments_are_named(arguments, message):
    with pytest.raises((ValueError, TypeError), match=message):
        applications.ResNet18(**arguments)
    with pytest.raises(ValueError, match="variant"):
        applications.LeNet5(variant="1989")


def test_summary_save_load_grad_cam_and_replace_head(tmp_path):
    cnnkit.manual_seed(1)
    model = applications.MobileNetV2(input_shape=(3, 32, 32), num_classes=4)
    lines = []
    model.summary(print_fn=lines.append)
    assert any("features.1.conv.0.0 (DepthwiseConv2D)" in line for line in lines)
    assert any(line.startswith("Trainable params: 2,228,996") for line in lines)
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    model.save(tmp_path / "mobilenet.safetensors")
    loaded = cnnkit.load_model(tmp_path / "mobilenet.safetensors")
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)
    cam = explain.grad_cam(model, x)  # the last 4-D layer: features.18.2, the last ReLU6
    assert cam.shape == (3, 32, 32) and np.all((cam >= 0) & (cam <= 1))
    new = transfer.replace_head(model, Dense(2, name="head"), freeze_base=True)
    assert new.output.shape == (None, 2)
    assert [w.name for w in new.trainable_weights] == ["head/kernel", "head/bias"]
