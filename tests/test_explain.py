"""Saliency, Grad-CAM and occlusion: against finite differences, hand-built models and brute force."""
import numpy as np
import pytest

import cnnkit
from cnnkit import Input, Model, Sequential, explain
from cnnkit.layers import (Concatenate, Conv2D, Dense, Flatten, GlobalAveragePooling2D, Lambda, MaxPool2D, Softmax)
from tests.helpers import run_example

H, W = 12, 16
REGION = (slice(0, 6), slice(8, 16))  # the top-right quarter decides the class


@pytest.fixture
def float64():
    previous = cnnkit.get_default_dtype()
    cnnkit.set_default_dtype("float64")
    yield
    cnnkit.set_default_dtype(previous)


def tiny_model(head=None):
    """Conv (tanh, smooth for finite differences) and a dense classifier over 4 classes."""
    layers = [Input((2, 5, 7)), Conv2D(3, 3, padding="same", activation="tanh"), Flatten(),
              Dense(4, activation=head)]
    return Sequential(layers)


def test_saliency_is_the_absolute_input_gradient_maximised_over_channels(device, float64, rng):
    model = tiny_model().to(device)
    x = rng.standard_normal((2, 2, 5, 7))
    classes = np.array([1, 3])
    result = explain.saliency(model, x, class_index=classes)

    h = 1e-6
    expected = np.empty((2, 5, 7))
    for n, k in enumerate(classes):
        steps = np.eye(x[n].size).reshape((-1,) + x[n].shape) * h
        plus = model.predict(x[n] + steps, batch_size=len(steps))[:, k]
        minus = model.predict(x[n] - steps, batch_size=len(steps))[:, k]
        expected[n] = np.abs((plus - minus) / (2 * h)).reshape(x[n].shape).max(axis=0)
    assert result.shape == (2, 5, 7) and isinstance(result, np.ndarray)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-9)
    assert all(w.grad is None for w in model.weights), "explanations must not leave gradients on the weights"


def test_default_class_is_the_prediction_and_batches_do_not_matter(float64, rng):
    model = tiny_model()
    x = rng.standard_normal((5, 2, 5, 7))
    predicted = model.predict(x).argmax(axis=1)
    np.testing.assert_allclose(explain.saliency(model, x, batch_size=2), explain.saliency(model, x, predicted))
    assert not np.allclose(explain.saliency(model, x, class_index=(predicted + 1) % 4),
                           explain.saliency(model, x, predicted))


@pytest.mark.parametrize("head", ["softmax_activation", "softmax_layer"])
def test_softmax_models_are_explained_through_their_logits(head, rng):
    logits_model = tiny_model()
    if head == "softmax_activation":
        model = tiny_model(head="softmax")
    else:
        model = Sequential([Input((2, 5, 7)), Conv2D(3, 3, padding="same", activation="tanh"), Flatten(), Dense(4),
                            Softmax()])
    model.set_weights(logits_model.get_weights())
    x = rng.standard_normal((3, 2, 5, 7)).astype(np.float32)
    np.testing.assert_allclose(explain.saliency(model, x), explain.saliency(logits_model, x), rtol=1e-5)
    np.testing.assert_allclose(explain.grad_cam(model, x, layer=0), explain.grad_cam(logits_model, x, layer=0),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(explain.occlusion(model, x), explain.occlusion(logits_model, x), atol=1e-6)
    np.testing.assert_allclose(model.predict(x).sum(axis=1), 1, rtol=1e-5)  # the softmax is back


# ---------------------------------------------------------------- a model that looks at one region only

def region_mask():
    mask = np.zeros((1, 1, H, W), np.float32)
    mask[(0, 0) + REGION] = 1
    return mask


def gated_layers():
    """Channel 0 of 'target' sees the decisive region only, channel 1 the whole image; only channel 0 counts."""
    mask = region_mask()
    target = Conv2D(2, 1, use_bias=False, activation="relu", name="target")
    head = Dense(2)
    return (Lambda(lambda t: t * cnnkit.as_tensor(mask, like=t)), Concatenate(), MaxPool2D(2), target,
            GlobalAveragePooling2D(), head)


def set_gated_weights(target, head):
    target.set_weights([np.eye(2, dtype=np.float32).reshape(2, 2, 1, 1)])
    head.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]], np.float32), np.zeros(2, np.float32)])


def gated_functional_model():
    gate, concatenate, pool, target, gap, head = gated_layers()
    inputs = Input((1, H, W))
    outputs = head(gap(target(pool(concatenate([gate(inputs), inputs])))))
    set_gated_weights(target, head)
    return Model(inputs, outputs)


class GatedModel(Model):
    """The same computation as a subclassed model (no symbolic graph)."""

    def __init__(self):
        super().__init__()
        self.gate, self.concatenate, self.pool, self.target, self.gap, self.head = gated_layers()

    def call(self, x, training=False):
        return self.head(self.gap(self.target(self.pool(self.concatenate([self.gate(x), x])))))


def gated_subclassed_model():
    model = GatedModel()
    model.build((None, 1, H, W))
    set_gated_weights(model.target, model.head)
    return model


def images(rng, n=3):
    return rng.uniform(0.1, 1.0, (n, 1, H, W)).astype(np.float32)


def test_grad_cam_highlights_the_region_that_decides_the_class(device, rng):
    model = gated_functional_model().to(device)
    x = images(rng)
    cam = explain.grad_cam(model, x, layer="target", class_index=0)
    assert cam.shape == (3, H, W)
    inside = np.zeros((H, W), bool)
    inside[REGION] = True
    fraction = cam[:, inside].sum(axis=1) / cam.sum(axis=(1, 2))
    assert np.all(fraction > 0.9), fraction
    grown = np.zeros((H, W), bool)
    grown[0:7, 7:16] = True  # bilinear upsampling from 6 x 8 bleeds at most one pixel
    assert np.all(cam[:, ~grown] == 0)
    np.testing.assert_allclose(cam.max(axis=(1, 2)), 1, rtol=1e-6)
    # Against the formula: alpha = (1/48, 0) for class 0, so L = ReLU(A_0) / 48.
    A = model.extract_features(x, layer="target")
    expected = explain.resize_bilinear(np.maximum(A[:, 0], 0) / 48, (H, W))
    np.testing.assert_allclose(explain.grad_cam(model, x, layer="target", class_index=0, normalize=False),
                               expected, rtol=1e-5, atol=1e-8)
    # Class 1 has only negative evidence there: the ReLU leaves nothing.
    assert np.all(explain.grad_cam(model, x, layer="target", class_index=1) == 0)


def test_grad_cam_works_on_subclassed_models(device, rng):
    x = images(rng)
    functional = gated_functional_model().to(device)
    subclassed = gated_subclassed_model().to(device)
    np.testing.assert_allclose(explain.grad_cam(subclassed, x, layer="target"),
                               explain.grad_cam(functional, x, layer="target"), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(explain.saliency(subclassed, x), explain.saliency(functional, x), rtol=1e-5)
    assert "call" not in vars(subclassed.target), "the recording hook must be removed"
    with pytest.raises(ValueError, match="layer="):
        explain.grad_cam(subclassed, x)


def test_grad_cam_default_layer_is_the_last_with_feature_maps(rng):
    model = gated_functional_model()
    x = images(rng)
    np.testing.assert_allclose(explain.grad_cam(model, x), explain.grad_cam(model, x, layer="target"))


def test_occlusion_of_the_decisive_region_drops_the_probability_most(device, rng):
    model = gated_functional_model().to(device)
    x = images(rng)
    heat = explain.occlusion(model, x, patch_size=3, class_index=0)
    assert heat.shape == (3, H, W)
    for n in range(3):
        row, col = np.unravel_index(heat[n].argmax(), (H, W))
        assert REGION[0].start <= row < REGION[0].stop and REGION[1].start <= col < REGION[1].stop
        assert np.all(heat[n][REGION] > 0)
    far = np.ones((H, W), bool)
    far[0:8, 6:16] = False  # pixels whose patches never touch the region
    np.testing.assert_allclose(heat[:, far], 0, atol=1e-7)


def test_occlusion_matches_brute_force(device, rng):
    model = gated_functional_model().to(device)
    x = images(rng, 2)
    classes = [0, 1]
    patch = (3, 4)
    heat = explain.occlusion(model, x, classes, patch_size=patch, stride=patch, baseline=0.25, batch_size=5)

    def probabilities(batch):
        scores = model.predict(batch)
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    expected = np.empty((2, H, W))
    for n, k in enumerate(classes):
        original = probabilities(x[n:n + 1])[0, k]
        for r in range(0, H, patch[0]):
            for c in range(0, W, patch[1]):
                covered = x[n:n + 1].copy()
                covered[..., r:r + patch[0], c:c + patch[1]] = 0.25
                expected[n, r:r + patch[0], c:c + patch[1]] = original - probabilities(covered)[0, k]
    np.testing.assert_allclose(heat, expected, atol=1e-6)
    np.testing.assert_allclose(explain.occlusion(model, x, classes, patch_size=patch, stride=patch, baseline=0.25),
                               heat, atol=1e-7)


def test_occlusion_covers_every_pixel_when_the_stride_does_not_fit(rng):
    model = gated_functional_model()
    heat = explain.occlusion(model, images(rng, 1), class_index=0, patch_size=5, stride=4)
    assert np.all(heat[0][REGION] > 0)  # the last row and column of patches are moved in to touch the border


def test_resize_bilinear_uses_half_pixel_centres(device):
    maps = cnnkit.Tensor(np.array([[[1.0, 2.0], [3.0, 4.0]]]), device=device).data
    expected = np.array([[1.0, 1.25, 1.75, 2.0], [1.5, 1.75, 2.25, 2.5],
                         [2.5, 2.75, 3.25, 3.5], [3.0, 3.25, 3.75, 4.0]])
    result = explain.resize_bilinear(maps, (4, 4))
    assert cnnkit.get_array_module(result) is cnnkit.get_array_module(maps)
    np.testing.assert_allclose(cnnkit.to_numpy(result)[0], expected)
    same = np.arange(15.0).reshape(1, 3, 5)
    np.testing.assert_array_equal(explain.resize_bilinear(same, (3, 5)), same)
    np.testing.assert_allclose(explain.resize_bilinear(np.full((2, 3, 5), 7.0), (7, 2)), 7.0)


def test_bad_arguments_say_what_was_expected(rng):
    model = gated_functional_model()
    x = images(rng, 2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*x\[None\]"):
        explain.saliency(model, x[0])
    with pytest.raises(TypeError, match="floating-point"):
        explain.saliency(model, (x * 255).astype(np.uint8))
    with pytest.raises(ValueError, match=r"class_index must be in \[0, 2\)"):
        explain.saliency(model, x, class_index=2)
    with pytest.raises(ValueError, match="one per image"):
        explain.grad_cam(model, x, layer="target", class_index=[0, 1, 0])
    with pytest.raises(ValueError, match="feature maps"):
        explain.grad_cam(model, x, layer=model.layers[-1])
    with pytest.raises(ValueError, match="no layer named"):
        explain.grad_cam(model, x, layer="nope")
    with pytest.raises(ValueError, match="patch_size"):
        explain.occlusion(model, x, patch_size=(13, 2))
    with pytest.raises(ValueError, match="broadcast"):
        explain.occlusion(model, x, baseline=np.zeros((2, H, W)))


def test_explain_demo_writes_its_picture(tmp_path):
    output = run_example("explain_demo.py", "--output", str(tmp_path))
    assert "grad-cam" in output.lower()
    for name in ("explanations.png", "training_curves.png", "confusion_matrix.png"):
        assert (tmp_path / name).stat().st_size > 5000, name
