"""Why did the network say that? Saliency maps, SmoothGrad, guided backpropagation, Integrated
Gradients, occlusion sensitivity, Grad-CAM, Guided Grad-CAM and Score-CAM.

Each explanation takes a trained classifier and a batch of images (N, C, H, W) as a
NumPy or CuPy array or a tensor, runs the model in inference mode (``training=False``)
on the model's own device, and returns NumPy maps: one per image, shape (N, H, W), or,
for the attributions that keep the colour channels (guided backpropagation, Guided
Grad-CAM, Integrated Gradients), the input's shape (N, C, H, W).

The class explained is, per image, the model's predicted class unless ``class_index``
names one (an int for every image, or one per image).

**Class score.** Saliency and Grad-CAM differentiate the *class score*: the logit, the
input of a final softmax. For Sequential and functional models that end in softmax or
log-softmax (a ``Softmax`` layer, an ``Activation`` layer, or a layer built with
``activation="softmax"``), that last step is skipped, as tf-keras-vis does with its
``ReplaceToLinear`` modifier: the gradient of a probability is small wherever the
model is confident, and mixes in every other class. A subclassed model is taken to
return logits. Occlusion measures the drop of the class *probability*, the softmax of
those logits (so it is the same for a model with or without a final softmax).

The model's weights get no gradients from an explanation (their ``.grad`` is left as
it was), and explanations work for Sequential, functional and subclassed models alike.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

from . import activations, backend
from .autograd import Function, Tensor, enable_grad, no_grad
from .data.transforms import gaussian_noise
from .layers.activation import ReLU as ReLULayer
from .layers.activation import Softmax as SoftmaxLayer
from .layers.base import InputLayer, Layer
from .layers.core import Activation as ActivationLayer
from .models.model import Model
from .ops.activation import log_softmax, softmax

_SOFTMAX_FUNCTIONS = (softmax, log_softmax)


# ---------------------------------------------------------------- public API

def saliency(model: Model, x: Any, class_index: "int | Sequence[int] | None" = None, *,
             batch_size: int = 32) -> np.ndarray:
    """Vanilla gradient saliency (Simonyan, Vedaldi & Zisserman 2014).

    S[n, i, j] = max_c | ∂ score_k(x_n) / ∂ x_n[c, i, j] |, for the explained class k.

    Args:
        model: a classifier returning (N, classes) scores.
        x: images (N, C, H, W).
        class_index: the class to explain: None (the predicted class), an int, or one int
            per image.
        batch_size: images per forward/backward pass.

    Returns:
        A float NumPy array of the model's dtype.

    Shapes:
        x: (N, C, H, W); result: (N, H, W).
    """
    who = "saliency"
    images = _as_images(x, who)
    _check_batch_size(batch_size, who)
    scorer = _ClassScores(_prepared(model, images, who), who)
    maps = []
    with _weights_without_grad(model), enable_grad():
        for start in range(0, len(images), batch_size):
            inputs = _input_tensor(images[start:start + batch_size], model, requires_grad=True)
            _, scores = scorer(inputs)
            classes = _class_indices(class_index, scores.data, start, len(images), who)
            _class_score_sum(scores, classes).backward()
            maps.append(backend.to_numpy(abs(inputs.grad.data).max(axis=1)))
    return np.concatenate(maps)


def grad_cam(model: Model, x: Any, layer: "str | int | Layer | None" = None,
             class_index: "int | Sequence[int] | None" = None, *, normalize: bool = True,
             batch_size: int = 32) -> np.ndarray:
    """Grad-CAM: where in a convolutional layer's maps the evidence for a class lies.

    For the feature maps A (K, h, w) of ``layer`` and the class score y (Selvaraju et al. 2017):

        α_k = mean_ij ∂y / ∂A[k, i, j],   L = ReLU(Σ_k α_k A[k]),

    then L is upsampled to the input's H × W with bilinear interpolation
    (:func:`resize_bilinear`).

    Args:
        model: a classifier returning (N, classes) scores.
        x: images (N, C, H, W).
        layer: the layer whose output (N, K, h, w) is explained, by name, index into
            ``model.layers`` or object. None picks the last layer with a 4-D output (as
            tf-keras-vis does); a subclassed model needs it named.
        class_index: None (the predicted class), an int, or one int per image.
        normalize: divide each upsampled map by its maximum, so it lies in [0, 1] (maps
            that are all zero stay zero).
        batch_size: images per forward/backward pass.

    Returns:
        A float NumPy array of the model's dtype.

    Shapes:
        x: (N, C, H, W); result: (N, H, W).
    """
    who = "grad_cam"
    images, scorer = _layer_scorer(model, x, layer, batch_size, who)
    maps = []
    with _weights_without_grad(model), enable_grad():
        for start in range(0, len(images), batch_size):
            # The input requires grad only so that the graph is recorded with the weights excluded.
            inputs = _input_tensor(images[start:start + batch_size], model, requires_grad=True)
            features, scores = scorer(inputs)
            _check_feature_maps(features, scorer, who)
            features.retain_grad()
            classes = _class_indices(class_index, scores.data, start, len(images), who)
            _class_score_sum(scores, classes).backward()
            A = features.data
            gA = features.grad.data if features.grad is not None else features.xp.zeros_like(A)
            alpha = gA.mean(axis=(2, 3), keepdims=True)
            cam = resize_bilinear(features.xp.maximum((alpha * A).sum(axis=1), 0), images.shape[2:])
            maps.append(backend.to_numpy(_scaled_to_peak(cam) if normalize else cam))
    return np.concatenate(maps)


def occlusion(model: Model, x: Any, class_index: "int | Sequence[int] | None" = None, *,
              patch_size: "int | tuple[int, int]" = 3, stride: "int | tuple[int, int]" = 1, baseline: Any = 0.0,
              batch_size: int = 256) -> np.ndarray:
    """Occlusion sensitivity (Zeiler & Fergus 2014): the drop in the class probability when a
    patch of the image is covered.

    A ``patch_size`` patch of ``baseline`` values slides over each image with ``stride``
    (the last patch of a row or column is moved in to touch the border, so every pixel
    is covered). For each position, D = p_k(x) − p_k(x with the patch covered). The map
    is at **input resolution**: each pixel holds the mean of D over the patches covering
    it (as Captum's ``Occlusion``), so high values mark the regions the class needs.
    All occluded copies of an image are run as batches of ``batch_size``, on the model's
    device.

    Args:
        model: a classifier returning (N, classes) scores or probabilities.
        x: images (N, C, H, W).
        class_index: None (the predicted class), an int, or one int per image.
        patch_size, stride: an int or (height, width).
        baseline: what covers the patch: a number, or an array broadcastable to (C, H, W).
        batch_size: occluded images per forward pass.

    Returns:
        A float NumPy array of the model's dtype.

    Shapes:
        x: (N, C, H, W); result: (N, H, W).
    """
    who = "occlusion"
    images = _as_images(x, who)
    _check_batch_size(batch_size, who)
    N, C, H, W = images.shape
    patch = _pair(patch_size, "patch_size", who)
    steps = _pair(stride, "stride", who)
    if patch[0] > H or patch[1] > W:
        raise ValueError(f"{who}: patch_size {patch} is larger than the images ({H}, {W})")
    scorer = _ClassScores(_prepared(model, images, who), who)
    xp = model.device.xp
    cover = _patch_masks(xp, (H, W), patch, steps)                 # (P, H, W) bool
    covered = cover.astype(model.dtype)
    counts = covered.sum(axis=0)
    fill = _baseline(baseline, (C, H, W), model, who)
    maps = []
    with no_grad():
        for n in range(N):
            image = _input_tensor(images[n:n + 1], model).data
            probabilities = _probabilities(scorer, image)
            (k,) = _class_indices(class_index, probabilities, n, N, who)
            drops = []
            for start in range(0, len(cover), batch_size):
                occluded = xp.where(cover[start:start + batch_size, None], fill, image)
                drops.append(probabilities[0, k] - _probabilities(scorer, occluded)[:, k])
            drop = xp.concatenate(drops)
            maps.append(backend.to_numpy(xp.tensordot(drop, covered, axes=1) / counts))
    return np.stack(maps)


def guided_backprop(model: Model, x: Any, class_index: "int | Sequence[int] | None" = None, *,
                    batch_size: int = 32) -> np.ndarray:
    """Guided backpropagation (Springenberg et al. 2015): the input gradient of the class score with
    only positive gradients let back through each ReLU.

    At every ReLU of the model's layers (``ReLU`` layers, ReLU6 included, and layers built
    with ``activation="relu"``) the backward pass becomes gx = gy · [x > 0] · [gy > 0],
    which leaves the sharp, edge-like pattern of the input that excites the class.
    Adebayo et al. (2018) found these maps barely change when the weights are randomised:
    they show the image more than the model, so combine them with Grad-CAM
    (:func:`guided_grad_cam`) to make them class- and model-specific.

    Args:
        model, x, class_index, batch_size: as in :func:`saliency`.

    Returns:
        A float NumPy array of the model's dtype, signed.

    Shapes:
        x: (N, C, H, W); result: (N, C, H, W).
    """
    images, scorer, classes = _explaining(model, x, class_index, batch_size, "guided_backprop")
    with _guided_relus(model):
        gradients = _batched_gradients(scorer, model, images, classes, batch_size)
    return backend.to_numpy(gradients)


def guided_grad_cam(model: Model, x: Any, layer: "str | int | Layer | None" = None,
                    class_index: "int | Sequence[int] | None" = None, *, batch_size: int = 32) -> np.ndarray:
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backpropagation weighted pixel by pixel
    by the (normalised, upsampled) Grad-CAM map of the same class: fine detail, but only where
    the class's evidence lies.

    Args:
        model, x, layer, class_index, batch_size: as in :func:`grad_cam`.

    Returns:
        A float NumPy array of the model's dtype, signed.

    Shapes:
        x: (N, C, H, W); result: (N, C, H, W).
    """
    images, _, classes = _explaining(model, x, class_index, batch_size, "guided_grad_cam")
    cam = grad_cam(model, images, layer, classes, batch_size=batch_size)
    return guided_backprop(model, images, classes, batch_size=batch_size) * cam[:, None]


def smooth_grad(model: Model, x: Any, class_index: "int | Sequence[int] | None" = None, *, samples: int = 25,
                noise_level: float = 0.15, batch_size: int = 32, seed: int | None = None) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017): the saliency map averaged over noisy copies of the image.

    S[n] = mean over ``samples`` copies x_n + ε, ε ~ N(0, σ²), of max_c |∂ score_k / ∂ x|, with
    σ = ``noise_level`` · (max(x_n) − min(x_n)) (the paper finds 10–20 % best). The class
    explained is the one of the clean image. All copies of an image run as batches on
    the model's device, where the noise is drawn too, from cnnkit's Philox stream
    (:func:`cnnkit.data.gaussian_noise`), so a seed gives the same maps on every device.

    Args:
        model, x, class_index, batch_size: as in :func:`saliency`.
        samples: noisy copies per image.
        noise_level: the noise's standard deviation as a fraction of each image's value range.
        seed: seeds the noise (image n uses ``seed + n``); None takes the next draws of cnnkit's
            stream (see :func:`cnnkit.manual_seed`).

    Returns:
        A float NumPy array of the model's dtype.

    Shapes:
        x: (N, C, H, W); result: (N, H, W).
    """
    who = "smooth_grad"
    _check_positive_int(samples, "samples", who)
    if not noise_level >= 0:
        raise ValueError(f"{who}: noise_level must be a non-negative number, got {noise_level!r}")
    images, scorer, classes = _explaining(model, x, class_index, batch_size, who)
    xp = model.device.xp
    maps = []
    for n in range(len(images)):
        image = _input_tensor(images[n:n + 1], model).data
        sigma = noise_level * float(image.max() - image.min())
        noisy = gaussian_noise(xp.repeat(image, samples, axis=0), sigma, None if seed is None else seed + n)
        gradients = _batched_gradients(scorer, model, noisy, np.repeat(classes[n], samples), batch_size)
        maps.append(backend.to_numpy(xp.abs(gradients).max(axis=1).mean(axis=0)))
    return np.stack(maps)


def integrated_gradients(model: Model, x: Any, class_index: "int | Sequence[int] | None" = None, *,
                         baseline: Any = 0.0, steps: int = 50, batch_size: int = 32) -> np.ndarray:
    """Integrated Gradients (Sundararajan, Taly & Yan 2017): the input gradient integrated along the
    straight path from a baseline x' to the image x.

        IG_i(x) = (x_i − x'_i) · ∫₀¹ ∂ score_k(x' + α (x − x')) / ∂ x_i dα

    The integral is an ``steps``-point Gauss–Legendre quadrature (as Captum's default).
    Completeness: Σ_i IG_i = score_k(x) − score_k(x') up to the quadrature error, which
    shrinks as ``steps`` grows (check it with the model's scores). The path points of an
    image run as batches on the model's device.

    Args:
        model, x, class_index, batch_size: as in :func:`saliency`.
        baseline: x', a number or an array broadcastable to (C, H, W) (black, 0, by default).
        steps: quadrature points along the path.

    Returns:
        A float NumPy array of the model's dtype, signed, of the class score's units.

    Shapes:
        x: (N, C, H, W); result: (N, C, H, W).
    """
    who = "integrated_gradients"
    _check_positive_int(steps, "steps", who)
    images, scorer, classes = _explaining(model, x, class_index, batch_size, who)
    start = _baseline(baseline, images.shape[1:], model, who)
    xp = model.device.xp
    nodes, quadrature_weights = np.polynomial.legendre.leggauss(steps)
    alphas = xp.asarray((nodes + 1) / 2, dtype=model.dtype)[:, None, None, None]
    weights = xp.asarray(quadrature_weights / 2, dtype=model.dtype)[:, None, None, None]
    attributions = []
    for n in range(len(images)):
        image = _input_tensor(images[n:n + 1], model).data
        path = start + alphas * (image - start)
        gradients = _batched_gradients(scorer, model, path, np.repeat(classes[n], steps), batch_size)
        attributions.append(backend.to_numpy((image[0] - start) * (weights * gradients).sum(axis=0)))
    return np.stack(attributions)


def score_cam(model: Model, x: Any, layer: "str | int | Layer | None" = None,
              class_index: "int | Sequence[int] | None" = None, *, normalize: bool = True,
              batch_size: int = 32) -> np.ndarray:
    """Score-CAM (Wang et al. 2020): Grad-CAM's weighted sum of feature maps, with each map
    weighted by how much the class probability rises when the image is seen only through it.

    Each map A_k of ``layer`` is upsampled to H × W and scaled to [0, 1] (M_k); its weight
    is α_k = p_k(x ⊙ M_k) − p_k(x_b), the softmax probability of the class for the masked
    image less that for a black image x_b; then L = ReLU(Σ_k α_k M_k). No gradients are
    used, so the maps do not suffer from saturated or noisy gradients. The K masked copies
    of an image run as batches on the model's device.

    Args:
        model, x, layer, class_index, normalize, batch_size: as in :func:`grad_cam`.

    Returns:
        A float NumPy array of the model's dtype.

    Shapes:
        x: (N, C, H, W); result: (N, H, W).
    """
    who = "score_cam"
    images, scorer = _layer_scorer(model, x, layer, batch_size, who)
    xp = model.device.xp
    maps = []
    with no_grad():
        for n in range(len(images)):
            image = _input_tensor(images[n:n + 1], model).data
            features, scores = scorer(Tensor(image))
            _check_feature_maps(features, scorer, who)
            (k,) = _class_indices(class_index, scores.data, n, len(images), who)
            masks = _unit_range(resize_bilinear(features.data[0], images.shape[2:]))      # (K, H, W)
            black = _probabilities(scorer, xp.zeros_like(image))[0, k]
            rises = [_probabilities(scorer, image * masks[i:i + batch_size, None])[:, k] - black
                     for i in range(0, len(masks), batch_size)]
            cam = xp.maximum(xp.tensordot(xp.concatenate(rises), masks, axes=1), 0)[None]
            maps.append(backend.to_numpy(_scaled_to_peak(cam) if normalize else cam))
    return np.concatenate(maps)


def resize_bilinear(maps: Any, size: "tuple[int, int]") -> Any:
    """Resize a stack of 2-D maps with bilinear interpolation on half-pixel centres.

    Output pixel (i, j) samples the input at ((i + ½)·h/H − ½, (j + ½)·w/W − ½), clamped to
    the input's edge pixels: the convention of OpenCV's ``resize`` and PyTorch's
    ``interpolate(..., align_corners=False)``.

    Args:
        maps: a NumPy or CuPy float array (N, h, w).
        size: (H, W).

    Returns:
        An array of the same module and dtype, shape (N, H, W).
    """
    xp = backend.get_array_module(maps)
    if maps.ndim != 3:
        raise ValueError(f"resize_bilinear: maps must have shape (N, h, w), got {maps.shape}")
    H, W = (int(s) for s in size)
    if H < 1 or W < 1:
        raise ValueError(f"resize_bilinear: size must be two positive ints, got {tuple(size)}")
    low, high, weight = _interpolation(xp, maps.shape[1], H, maps.dtype)
    rows = maps[:, low, :] * (1 - weight)[:, None] + maps[:, high, :] * weight[:, None]
    low, high, weight = _interpolation(xp, maps.shape[2], W, maps.dtype)
    return rows[:, :, low] * (1 - weight) + rows[:, :, high] * weight


# ---------------------------------------------------------------- running the model

class _ClassScores:
    """The model as explanations need it: class scores (pre-softmax) and, optionally, one layer's output.

    Sequential and functional models are viewed as ``Model(model.input, [layer.output,
    logits])``, so the layer's maps are a tensor in the recorded graph. A subclassed
    model has no symbolic graph; there the layer's output is recorded as it runs.
    """

    def __init__(self, model: Model, who: str, layer: "str | int | Layer | None" = None):
        self.model, self.who = model, who
        self.layer = None if layer is None else _resolve_layer(model, layer, who)
        self.linear_head = None
        self.view = None
        if _has_graph(model):
            self.view = self._graph_view(model)

    def _graph_view(self, model: Model) -> Model:
        if isinstance(model.input, list) or isinstance(model.output, list):
            raise ValueError(f"{self.who}: explanations need a model with one input and one output, "
                             f"{model.who} has {len(model.inputs)} and {len(model.outputs)}")
        logits = model.output
        last = logits.node.layer
        if isinstance(last, SoftmaxLayer) or (isinstance(last, ActivationLayer)
                                              and last.activation in _SOFTMAX_FUNCTIONS):
            logits = logits.node.inputs[0]
        elif getattr(last, "activation", None) in _SOFTMAX_FUNCTIONS:
            self.linear_head = last
        outputs = logits if self.layer is None else [_output_in(model, self.layer, self.who), logits]
        return Model(model.input, outputs, name=f"{model.name}_explained")

    def __call__(self, x: Tensor) -> "tuple[Tensor | None, Tensor]":
        with _linear_activation(self.linear_head):
            if self.view is not None:
                outputs = self.view(x, training=False)
                features, scores = (None, outputs) if self.layer is None else outputs
            elif self.layer is None:
                features, scores = None, self.model(x, training=False)
            else:
                with _recording_outputs(self.layer) as recorded:
                    scores = self.model(x, training=False)
                if len(recorded) != 1:
                    raise ValueError(f"{self.who}: layer {self.layer.name!r} ran {len(recorded)} times in one "
                                     f"forward pass of {self.model.who}; it must run exactly once")
                features = recorded[0]
        if not isinstance(scores, Tensor) or scores.ndim != 2:
            shape = getattr(scores, "shape", type(scores).__name__)
            raise ValueError(f"{self.who}: the model must return class scores of shape (N, classes), got {shape}")
        return features, scores


def _prepared(model: Model, images: Any, who: str) -> Model:
    """Check ``model`` and build it for the images' shape if it has not run yet."""
    if not isinstance(model, Model):
        raise TypeError(f"{who}: model must be a cnnkit Model (Sequential, functional or subclassed), "
                        f"got {type(model).__name__}")
    if not model.built:
        model.build_from_shape((None,) + tuple(images.shape[1:]))
    return model


def _has_graph(model: Model) -> bool:
    try:
        model.output
    except AttributeError:
        return False
    return True


def _resolve_layer(model: Model, layer: "str | int | Layer", who: str) -> Layer:
    if isinstance(layer, str):
        return model.get_layer(name=layer)
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        layers = model.layers
        if not -len(layers) <= layer < len(layers):
            raise ValueError(f"{who}: layer index {layer} is out of range for {model.who} with {len(layers)} layers")
        return layers[layer]
    if isinstance(layer, Layer):
        if not any(existing is layer for existing in model.layers):
            raise ValueError(f"{who}: {layer.who} is not a layer of {model.who}; "
                             f"layers: {', '.join(l.name for l in model.layers)}")
        return layer
    raise TypeError(f"{who}: layer must be a name, an index into model.layers or a Layer, got {layer!r}")


def _layer_scorer(model: Model, x: Any, layer: "str | int | Layer | None", batch_size: int,
                  who: str) -> tuple[Any, _ClassScores]:
    """The checked images, and a scorer that also gives ``layer``'s maps (by default the last 4-D layer's)."""
    images = _as_images(x, who)
    _check_batch_size(batch_size, who)
    _prepared(model, images, who)
    return images, _ClassScores(model, who, layer=layer if layer is not None else _last_4d_layer(model, who))


def _check_feature_maps(features: Tensor, scorer: _ClassScores, who: str) -> None:
    if features.ndim != 4:
        raise ValueError(f"{who}: layer {scorer.layer.name!r} gives outputs of shape {features.shape}; "
                         f"{who} needs feature maps (N, K, h, w), so pick a convolutional layer")


def _scaled_to_peak(maps: Any) -> Any:
    """Each (h, w) map of a stack divided by its maximum (maps that are all zero stay zero)."""
    peak = maps.max(axis=(1, 2), keepdims=True)
    return maps / backend.get_array_module(maps).where(peak > 0, peak, 1)


def _output_in(model: Model, layer: Layer, who: str) -> Any:
    """The symbolic output of ``layer`` in ``model``'s own graph (the layer may also serve in other models,
    e.g. one made by ``transfer.replace_head``, so ``layer.output`` can be ambiguous)."""
    outputs = [node.outputs[0] for node in model._graph.nodes if node.layer is layer]
    if len(outputs) != 1:
        raise ValueError(f"{who}: {layer.who} runs {len(outputs)} times in {model.who}; explain a layer that "
                         f"runs once")
    return outputs[0]


def _last_4d_layer(model: Model, who: str) -> Layer:
    if not _has_graph(model):
        raise ValueError(f"{who}: {model.who} is a subclassed model; name the convolutional layer to explain "
                         f"with layer=")
    for layer in reversed(model.layers):
        if not isinstance(layer, InputLayer) and len(_output_in(model, layer, who).shape) == 4:
            return layer
    raise ValueError(f"{who}: {model.who} has no layer with a 4-D output (N, K, h, w) to explain")


@contextmanager
def _linear_activation(layer: "Layer | None") -> Iterator[None]:
    """Run ``layer`` without its (softmax) activation for the duration."""
    if layer is None:
        yield
        return
    saved = layer.activation
    layer.activation = activations.linear
    try:
        yield
    finally:
        layer.activation = saved


@contextmanager
def _recording_outputs(layer: Layer) -> Iterator[list]:
    """Record every tensor ``layer`` returns while the block runs (a forward hook)."""
    recorded: list = []
    call = layer.call

    def recording_call(*args, **kwargs):
        output = call(*args, **kwargs)
        recorded.append(output)
        return output

    layer.call = recording_call
    try:
        yield recorded
    finally:
        del layer.call


@contextmanager
def _weights_without_grad(model: Model) -> Iterator[None]:
    """Keep gradients away from the weights: nothing accumulates in their ``.grad``, no work is spent on them."""
    weights = model.weights
    saved = [w.requires_grad for w in weights]
    for w in weights:
        w.requires_grad = False
    try:
        yield
    finally:
        for w, requires_grad in zip(weights, saved):
            w.requires_grad = requires_grad


def _probabilities(scorer: _ClassScores, images: Any) -> Any:
    """Softmax of the class scores of a batch, as an array on the model's device."""
    _, scores = scorer(Tensor(images))
    return softmax(scores, axis=1).data


def _explaining(model: Model, x: Any, class_index: Any, batch_size: int, who: str) -> tuple:
    """(images, scorer, classes) for the gradient methods: the checked images, the model's class scores, and
    the class explained for each image (host ints): ``class_index``, or the prediction for the clean image."""
    images = _as_images(x, who)
    _check_batch_size(batch_size, who)
    scorer = _ClassScores(_prepared(model, images, who), who)
    classes = []
    with no_grad():
        for start in range(0, len(images), batch_size):
            _, scores = scorer(_input_tensor(images[start:start + batch_size], model))
            classes.append(_class_indices(class_index, scores.data, start, len(images), who))
    return images, scorer, np.concatenate(classes)


def _batched_gradients(scorer: _ClassScores, model: Model, samples: Any, classes: np.ndarray,
                       batch_size: int) -> Any:
    """∂ score_{classes[m]}(samples[m]) / ∂ samples[m] for every sample, in batches, on the model's device."""
    gradients = []
    with _weights_without_grad(model), enable_grad():
        for start in range(0, len(samples), batch_size):
            inputs = _input_tensor(samples[start:start + batch_size], model, requires_grad=True)
            _, scores = scorer(inputs)
            _class_score_sum(scores, classes[start:start + batch_size]).backward()
            gradients.append(inputs.grad.data)
    return model.device.xp.concatenate(gradients)


class _GuidedReLU(Function):
    """y = min(max(x, 0), max_value);  gx = gy · [0 < x < max_value] · [gy > 0] (guided backpropagation)."""

    def __init__(self, max_value: float | None):
        self.max_value = max_value

    def forward(self, x):
        self.x = x
        xp = backend.get_array_module(x)
        return xp.maximum(x, 0) if self.max_value is None else xp.clip(x, 0, self.max_value)

    def backward(self, gy):
        passes = (self.x > 0) & (gy > 0)
        if self.max_value is not None:
            passes &= self.x < self.max_value
        return gy * passes


def _guided_relu(x: Tensor) -> Tensor:
    return _GuidedReLU(None)(x)


@contextmanager
def _guided_relus(model: Model) -> Iterator[None]:
    """Run every ReLU of the model's layers as a guided ReLU for the duration."""
    replaced_calls, replaced_activations = [], []
    for layer in model.layers:
        if isinstance(layer, ReLULayer):
            layer.call = lambda x, max_value=layer.max_value: _GuidedReLU(max_value)(x)
            replaced_calls.append(layer)
        elif getattr(layer, "activation", None) is activations.relu:
            layer.activation = _guided_relu
            replaced_activations.append(layer)
    try:
        yield
    finally:
        for layer in replaced_calls:
            del layer.call
        for layer in replaced_activations:
            layer.activation = activations.relu


def _unit_range(maps: Any) -> Any:
    """Each map scaled to [0, 1] by its own minimum and maximum (a constant map becomes zeros)."""
    low = maps.min(axis=(1, 2), keepdims=True)
    spread = maps.max(axis=(1, 2), keepdims=True) - low
    xp = backend.get_array_module(maps)
    return (maps - low) / xp.where(spread > 0, spread, 1)


# ---------------------------------------------------------------- arguments

def _as_images(x: Any, who: str) -> Any:
    images = x.data if isinstance(x, Tensor) else x
    if not (isinstance(images, np.ndarray) or backend.is_cuda_array(images)):
        images = np.asarray(images)
    if images.ndim != 4:
        hint = " (add the batch axis with x[None])" if images.ndim == 3 else ""
        raise ValueError(f"{who}: x must be images of shape (N, C, H, W){hint}, got shape {images.shape}")
    if images.dtype.kind != "f":
        raise TypeError(f"{who}: x must hold floating-point images, got dtype {images.dtype} "
                        f"(scale 8-bit images with x.astype('float32') / 255)")
    if len(images) == 0:
        raise ValueError(f"{who}: x holds no images")
    return images


def _input_tensor(images: Any, model: Model, requires_grad: bool = False) -> Tensor:
    return Tensor(images, dtype=model.dtype, device=model.device, requires_grad=requires_grad)


def _check_batch_size(batch_size: Any, who: str) -> None:
    _check_positive_int(batch_size, "batch_size", who)


def _check_positive_int(value: Any, name: str, who: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")


def _pair(value: Any, name: str, who: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                                 for v in pair):
        raise ValueError(f"{who}: {name} must be a positive int or (height, width), got {value!r}")
    return int(pair[0]), int(pair[1])


def _class_indices(class_index: Any, scores: Any, start: int, total: int, who: str) -> np.ndarray:
    """The classes explained for images ``start .. start + len(scores)`` of ``total``, as host ints."""
    count, classes = scores.shape
    if class_index is None:
        return backend.to_numpy(scores.argmax(axis=1))
    if isinstance(class_index, (int, np.integer)) and not isinstance(class_index, bool):
        chosen = np.full(count, int(class_index))
    else:
        indices = np.asarray(backend.to_numpy(class_index))
        if indices.shape != (total,) or indices.dtype.kind not in "iu":
            raise ValueError(f"{who}: class_index must be None, an int or {total} ints (one per image), "
                             f"got {class_index!r}")
        chosen = indices[start:start + count]
    if chosen.min() < 0 or chosen.max() >= classes:
        raise ValueError(f"{who}: class_index must be in [0, {classes}) for a model with {classes} classes, "
                         f"got {class_index!r}")
    return chosen


def _class_score_sum(scores: Tensor, classes: np.ndarray) -> Tensor:
    """Σ_n scores[n, classes[n]]: images are independent in inference, so one backward gives every gradient."""
    one_hot = np.zeros(scores.shape, dtype=scores.dtype)
    one_hot[np.arange(len(classes)), classes] = 1
    return (scores * Tensor(one_hot, device=scores.device)).sum()


def _baseline(baseline: Any, sample_shape: tuple, model: Model, who: str) -> Any:
    value = np.asarray(backend.to_numpy(baseline.data if isinstance(baseline, Tensor) else baseline))
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{who}: baseline must be a number or a numeric array, got {baseline!r}")
    try:
        value = np.broadcast_to(value, sample_shape)
    except ValueError:
        raise ValueError(f"{who}: baseline of shape {value.shape} does not broadcast to the image shape "
                         f"{sample_shape}") from None
    return backend.to_device(value.astype(model.dtype), model.device)


def _patch_masks(xp, size: tuple[int, int], patch: tuple[int, int], stride: tuple[int, int]) -> Any:
    """(P, H, W) boolean masks of every patch position, row-major."""
    per_axis = []
    for length, extent, step in zip(size, patch, stride):
        starts = list(range(0, length - extent + 1, step))
        if starts[-1] != length - extent:
            starts.append(length - extent)
        where = xp.arange(length)
        begin = xp.asarray(starts)[:, None]
        per_axis.append((where >= begin) & (where < begin + extent))
    rows, cols = per_axis
    masks = rows[:, None, :, None] & cols[None, :, None, :]
    return masks.reshape(-1, size[0], size[1])


def _interpolation(xp, in_size: int, out_size: int, dtype) -> tuple:
    """Source indices below and above each output pixel's centre, and the weight of the one above."""
    centres = (xp.arange(out_size, dtype=dtype) + 0.5) * (in_size / out_size) - 0.5
    centres = xp.clip(centres, 0, in_size - 1)
    low = xp.floor(centres).astype(np.int64)
    high = xp.minimum(low + 1, in_size - 1)
    return low, high, (centres - low).astype(dtype)
