"""Why did the network say that? Saliency maps, occlusion sensitivity and Grad-CAM.

Each explanation takes a trained classifier and a batch of images (N, C, H, W) as a
NumPy or CuPy array or a tensor, runs the model in inference mode (``training=False``)
on the model's own device, and returns one NumPy map per image, shape (N, H, W).

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
from .autograd import Tensor, enable_grad, no_grad
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
    images = _as_images(x, who)
    _check_batch_size(batch_size, who)
    _prepared(model, images, who)
    scorer = _ClassScores(model, who, layer=layer if layer is not None else _last_4d_layer(model, who))
    maps = []
    with _weights_without_grad(model), enable_grad():
        for start in range(0, len(images), batch_size):
            # The input requires grad only so that the graph is recorded with the weights excluded.
            inputs = _input_tensor(images[start:start + batch_size], model, requires_grad=True)
            features, scores = scorer(inputs)
            if features.ndim != 4:
                raise ValueError(f"{who}: layer {scorer.layer.name!r} gives outputs of shape {features.shape}; "
                                 f"Grad-CAM needs feature maps (N, K, h, w), so pick a convolutional layer")
            features.retain_grad()
            classes = _class_indices(class_index, scores.data, start, len(images), who)
            _class_score_sum(scores, classes).backward()
            A = features.data
            gA = features.grad.data if features.grad is not None else features.xp.zeros_like(A)
            alpha = gA.mean(axis=(2, 3), keepdims=True)
            cam = resize_bilinear(features.xp.maximum((alpha * A).sum(axis=1), 0), images.shape[2:])
            if normalize:
                peak = cam.max(axis=(1, 2), keepdims=True)
                cam = cam / features.xp.where(peak > 0, peak, 1)
            maps.append(backend.to_numpy(cam))
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
        outputs = logits if self.layer is None else [self.layer.output, logits]
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


def _last_4d_layer(model: Model, who: str) -> Layer:
    if not _has_graph(model):
        raise ValueError(f"{who}: {model.who} is a subclassed model; name the convolutional layer to explain "
                         f"with layer=")
    for layer in reversed(model.layers):
        if not isinstance(layer, InputLayer) and len(layer.output.shape) == 4:
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
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{who}: batch_size must be a positive int, got {batch_size!r}")


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
