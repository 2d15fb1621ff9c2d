"""Guided backpropagation, Guided Grad-CAM, SmoothGrad, Integrated Gradients and Score-CAM: hand-computed
values, brute force, and the sanity checks of the literature on a LeNet-5 trained on the digits."""
import numpy as np
import pytest

import cnnkit
from cnnkit import Input, Sequential, applications, explain
from cnnkit.datasets import load_digits
from cnnkit.layers import Conv2D, Dense, Flatten, ReLU


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps (the similarity measure of Adebayo et al. 2018)."""
    ranks_a = np.argsort(np.argsort(a.ravel()))
    ranks_b = np.argsort(np.argsort(b.ravel()))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


@pytest.fixture(scope="module")
def digits_16():
    """The digits scaled up to 16×16, and a LeNet-5 (ReLU, max pooling) trained on them for three epochs."""
    cnnkit.manual_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    scale_up = np.ones((1, 1, 2, 2), np.float32)
    x_train, x_test = np.kron(x_train, scale_up), np.kron(x_test, scale_up)
    model = applications.LeNet5(input_shape=(1, 16, 16), variant="modern")
    model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=3, batch_size=32, verbose=0)
    assert np.mean(model.predict(x_test).argmax(axis=1) == y_test) > 0.8
    return model, x_test[:8]


def dense_relu_model():
    """x (1, 1, 3) -> Flatten -> Dense(4) -> ReLU -> Dense(2): small enough to backpropagate by hand."""
    model = Sequential([Input((1, 1, 3)), Flatten(), Dense(4), ReLU(), Dense(2)])
    W1 = np.array([[1.0, -2.0, 0.5, 1.0], [0.5, 1.0, -1.0, 2.0], [-1.0, 0.5, 2.0, -0.5]], np.float32)
    W2 = np.array([[1.0, 0.0], [-1.0, 1.0], [2.0, 0.5], [-0.5, 1.0]], np.float32)
    model.set_weights([W1, np.zeros(4, np.float32), W2, np.zeros(2, np.float32)])
    return model, W1, W2


def test_guided_backprop_passes_only_positive_gradients_through_active_relus(device):
    model, W1, W2 = dense_relu_model()
    model.to(device)
    x = np.array([[[[1.0, 1.0, 1.0]]]], np.float32)
    z = x.reshape(1, 3) @ W1                               # (0.5, -0.5, 1.5, 2.5): unit 1 is off
    g = W2[:, 0]                                           # ∂ score_0 / ∂ relu output: (1, -1, 2, -0.5)
    guided = g * (z[0] > 0) * (g > 0)                      # (1, 0, 2, 0)
    result = explain.guided_backprop(model, x, class_index=0)
    np.testing.assert_allclose(result.reshape(3), W1 @ guided, rtol=1e-6)
    plain = W1 @ (g * (z[0] > 0))
    assert not np.allclose(result.reshape(3), plain)       # it is not the vanilla gradient
    assert model.layers[2].call.__func__ is ReLU.call      # the model's ReLU is itself again afterwards


def test_guided_backprop_handles_relu6_and_fused_relu_activations(rng):
    model = Sequential([Input((1, 4, 4)), Conv2D(2, 3, activation="relu"), ReLU(max_value=6.0), Flatten(),
                        Dense(3, activation="relu"), Dense(2)])
    x = rng.standard_normal((3, 1, 4, 4)).astype(np.float32)
    guided = explain.guided_backprop(model, x)
    assert guided.shape == (3, 1, 4, 4) and np.all(np.isfinite(guided))
    assert model.layers[0].activation is cnnkit.activations.relu


def test_smooth_grad_without_noise_is_the_saliency_map(device, rng):
    model, _, _ = dense_relu_model()
    model.to(device)
    x = rng.standard_normal((4, 1, 1, 3)).astype(np.float32)
    np.testing.assert_allclose(explain.smooth_grad(model, x, noise_level=0.0, samples=3),
                               explain.saliency(model, x), rtol=1e-6)


def test_smooth_grad_is_reproducible_from_its_seed_and_independent_of_batching(digits_16):
    model, x = digits_16
    first = explain.smooth_grad(model, x[:3], samples=8, seed=5, batch_size=3)
    again = explain.smooth_grad(model, x[:3], samples=8, seed=5, batch_size=8)
    np.testing.assert_allclose(first, again, rtol=1e-5, atol=1e-7)
    assert not np.allclose(first, explain.smooth_grad(model, x[:3], samples=8, seed=6))


def test_integrated_gradients_are_complete(digits_16):
    """Σ IG = score(x) − score(baseline) within 1 % (Sundararajan et al.'s completeness axiom)."""
    model, x = digits_16
    classes = model.predict(x).argmax(axis=1)
    for baseline in (0.0, 0.5):
        attributions = explain.integrated_gradients(model, x, baseline=baseline, batch_size=20)
        rows = np.arange(len(x))
        rise = model.predict(x)[rows, classes] - model.predict(np.full_like(x, baseline))[rows, classes]
        np.testing.assert_allclose(attributions.sum(axis=(1, 2, 3)), rise, rtol=0.01)


def test_score_cam_matches_brute_force(device, rng):
    model = Sequential([Input((1, 6, 6)), Conv2D(3, 3, activation="relu", name="conv"), Flatten(), Dense(4)])
    model.to(device)
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    result = explain.score_cam(model, x, layer="conv", class_index=[1, 3], batch_size=2)

    def probability(images, k):
        logits = model.predict(images)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (p / p.sum(axis=1, keepdims=True))[:, k]

    features = cnnkit.Model(model.input, model.get_layer("conv").output).predict(x)
    for n, k in enumerate((1, 3)):
        cam = np.zeros((6, 6))
        for channel in features[n]:
            mask = explain.resize_bilinear(channel[None], (6, 6))[0]
            spread = mask.max() - mask.min()
            mask = (mask - mask.min()) / spread if spread > 0 else np.zeros_like(mask)
            weight = probability(x[n:n + 1] * mask, k)[0] - probability(np.zeros_like(x[:1]), k)[0]
            cam += weight * mask
        cam = np.maximum(cam, 0)
        cam = cam / cam.max() if cam.max() > 0 else cam
        np.testing.assert_allclose(result[n], cam, rtol=1e-4, atol=1e-6)


def test_guided_grad_cam_is_guided_backprop_weighted_by_grad_cam(digits_16):
    model, x = digits_16
    combined = explain.guided_grad_cam(model, x, layer="conv1")
    expected = explain.guided_backprop(model, x) * explain.grad_cam(model, x, layer="conv1")[:, None]
    np.testing.assert_allclose(combined, expected, rtol=1e-6)


# Adebayo et al. (2018), model-parameter randomisation: an explanation that depends on what the network
# learned changes when its weights are re-drawn from their initialisers. Maps are compared by rank
# correlation, signed where the method is signed.
RANDOMISATION = {
    "saliency": lambda model, x, k: explain.saliency(model, x, k),
    "guided_backprop": lambda model, x, k: explain.guided_backprop(model, x, k),
    "guided_grad_cam": lambda model, x, k: explain.guided_grad_cam(model, x, "conv1", k),
    "integrated_gradients": lambda model, x, k: explain.integrated_gradients(model, x, k),
    "grad_cam": lambda model, x, k: explain.grad_cam(model, x, "conv1", k),
    "score_cam": lambda model, x, k: explain.score_cam(model, x, "conv1", k),
    "smooth_grad": lambda model, x, k: explain.smooth_grad(model, x, k, seed=0),
}


@pytest.mark.parametrize("method", sorted(RANDOMISATION))
def test_maps_change_when_the_weights_are_randomised(method, digits_16):
    trained, x = digits_16
    cnnkit.manual_seed(123)
    randomised = applications.LeNet5(input_shape=(1, 16, 16), variant="modern")
    classes = trained.predict(x).argmax(axis=1)
    explain_with = RANDOMISATION[method]
    before, after = explain_with(trained, x, classes), explain_with(randomised, x, classes)
    similarity = np.mean([spearman(a, b) for a, b in zip(before, after)])
    if method == "smooth_grad":
        # Averaged gradient magnitudes keep the architecture's coverage pattern (pixels near the border
        # feed fewer windows) whatever the weights, so the bar is relative to the noise's own spread.
        other_noise = explain.smooth_grad(trained, x, classes, seed=1)
        reproducibility = np.mean([spearman(a, b) for a, b in zip(before, other_noise)])
        assert similarity < reproducibility - 0.15
    else:
        assert similarity < 0.5


@pytest.mark.parametrize("method", ["guided_backprop", "smooth_grad", "integrated_gradients", "score_cam"])
def test_bad_arguments_are_named(method, rng):
    model, _, _ = dense_relu_model()
    function = getattr(explain, method)
    with pytest.raises(ValueError, match="x must be images"):
        function(model, np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        function(model, np.zeros((1, 1, 1, 3), np.float32), batch_size=0)
    with pytest.raises(ValueError, match="class_index"):
        function(model, np.zeros((1, 1, 1, 3), np.float32), class_index=7) if method != "score_cam" else \
            function(Sequential([Input((1, 4, 4)), Conv2D(2, 3), Flatten(), Dense(2)]),
                     np.zeros((1, 1, 4, 4), np.float32), class_index=7)
    if method == "smooth_grad":
        with pytest.raises(ValueError, match="samples"):
            function(model, np.zeros((1, 1, 1, 3), np.float32), samples=0)
    if method == "integrated_gradients":
        with pytest.raises(ValueError, match="steps"):
            function(model, np.zeros((1, 1, 1, 3), np.float32), steps=0)


def test_a_layer_shared_with_a_model_made_by_replace_head_is_explained_in_its_own_model(rng):
    model = Sequential([Input((1, 6, 6)), Conv2D(3, 3, activation="relu", name="conv"), Flatten(), Dense(4)])
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    before = explain.grad_cam(model, x, layer="conv")
    cnnkit.transfer.replace_head(model, Dense(2))  # the conv layer now also serves in the new model
    np.testing.assert_allclose(explain.grad_cam(model, x, layer="conv"), before, rtol=1e-6)
    assert explain.score_cam(model, x).shape == (2, 6, 6)
