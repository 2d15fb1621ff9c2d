"""Pictures of what a CNN learned and how it trained.

Filters of a convolution layer, feature maps for an input, training curves from a
:class:`~cnnkit.callbacks.History` or a :class:`~cnnkit.callbacks.RunTracker` folder, a
confusion matrix, image grids and explanation overlays (:mod:`cnnkit.explain`).

matplotlib is optional (``pip install 'cnnkit[plot]'``) and imported only when a plot
is drawn, so ``import cnnkit.vis`` works without it. Without a display (a server, CI)
the non-interactive Agg backend is selected. Every function returns the matplotlib
``Figure``; with ``path=`` it is also written to that file (PNG unless the suffix says
otherwise; missing folders are created). Figures are made with ``pyplot``, so
``plt.show()`` displays them and ``plt.close(figure)`` frees them.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import backend
from .autograd import Tensor

PLOT_INSTALL_HINT = "pip install 'cnnkit[plot]'"
_DPI = 100


def _pyplot():
    """``matplotlib.pyplot``, choosing Agg first when nothing can show a window."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(f"cnnkit.vis needs matplotlib to draw plots: {PLOT_INSTALL_HINT}") from error
    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND") and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _finish(figure, path: "str | os.PathLike | None"):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=_DPI, bbox_inches="tight")
    return figure


def _host(array: Any) -> np.ndarray:
    return backend.to_numpy(array.data if isinstance(array, Tensor) else array)


def _grid(plt, count: int, cols: int, cell: float = 1.2, extra_height: float = 0.4):
    """A figure with ``count`` image axes on a grid (the spare ones hidden)."""
    cols = max(1, min(cols, count))
    rows = math.ceil(count / cols)
    figure, axes = plt.subplots(rows, cols, figsize=(cell * cols, cell * rows + extra_height), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    return figure, list(axes.ravel()[:count])


# ---------------------------------------------------------------- filters and feature maps

def plot_filters(source: Any, *, channel: int | None = None, cols: int = 8, title: str | None = None,
                 path: "str | os.PathLike | None" = None):
    """The kernels of a 2-D convolution layer as a grid of small images.

    Each filter is drawn on its own symmetric grey scale: mid grey is 0, white the
    largest positive weight, black the most negative, so edge and stroke detectors
    show as light-dark pairs. Filters over three input channels are drawn in colour.

    Args:
        source: a model (its first layer with a 4-D ``kernel`` is drawn), such a layer,
            or a kernel array (F, C, KH, KW) or (F, KH, KW).
        channel: the input channel to draw; needed when C is neither 1 nor 3.
        cols: filters per row.
        title: the figure title (the layer's name and the filter count by default).
        path: also save the figure there.

    Returns:
        The matplotlib Figure.
    """
    kernels, label = _kernels_of(source)
    F, C = kernels.shape[:2]
    if channel is not None:
        if not isinstance(channel, (int, np.integer)) or not 0 <= channel < C:
            raise ValueError(f"plot_filters: channel must be an int in [0, {C}), got {channel!r}")
        kernels, C = kernels[:, channel:channel + 1], 1
    elif C not in (1, 3):
        raise ValueError(f"plot_filters: the kernels have {C} input channels; pick one to draw with channel=")
    plt = _pyplot()
    figure, axes = _grid(plt, F, cols)
    for ax, kernel in zip(axes, kernels):
        scale = float(np.abs(kernel).max()) or 1.0
        if C == 3:
            ax.imshow(np.clip(0.5 + kernel.transpose(1, 2, 0) / (2 * scale), 0, 1), interpolation="nearest")
        else:
            ax.imshow(kernel[0], cmap="gray", vmin=-scale, vmax=scale, interpolation="nearest")
    size = "×".join(str(s) for s in kernels.shape[2:])
    figure.suptitle(title or f"{label}: {F} filters, {size}")
    return _finish(figure, path)


def _kernels_of(source: Any) -> tuple[np.ndarray, str]:
    from .layers.base import Layer  # the layers import the ops; keep `import cnnkit.vis` light
    if isinstance(source, Layer):
        candidates = [source] + list(getattr(source, "layers", []))
        for layer in candidates:
            kernel = getattr(layer, "kernel", None)
            if kernel is not None and kernel.ndim == 4:
                return _host(kernel).astype(np.float64), layer.name
        raise ValueError(f"plot_filters: {source.who} has no 2-D convolution kernel (F, C, KH, KW) to draw")
    kernels = _host(source).astype(np.float64)
    if kernels.ndim == 3:
        kernels = kernels[:, None]
    if kernels.ndim != 4:
        raise ValueError(f"plot_filters: kernels must have shape (F, C, KH, KW) or (F, KH, KW), got {kernels.shape}")
    return kernels, "kernels"


def plot_feature_maps(model: Any, x: Any, layer: Any, *, max_maps: int = 32, cols: int = 8, cmap: str = "viridis",
                      title: str | None = None, path: "str | os.PathLike | None" = None):
    """The output channels of ``layer`` for one input image, one small image per channel.

    Args:
        model: a Sequential or functional model.
        x: one image (C, H, W), or a batch holding one image (1, C, H, W).
        layer: the layer, by name or object; its output must be (N, K, h, w).
        max_maps: draw at most this many channels (the first ones).
        cols: maps per row.
        cmap: matplotlib colour map; each map is scaled to its own range.
        title: the figure title (the layer's name and output shape by default).
        path: also save the figure there.

    Returns:
        The matplotlib Figure.
    """
    image = _host(x)
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or len(image) != 1:
        raise ValueError(f"plot_feature_maps: x must be one image (C, H, W) or (1, C, H, W), got shape {image.shape}")
    maps = np.asarray(model.extract_features(image, layer=layer))
    name = layer if isinstance(layer, str) else layer.name
    if maps.ndim != 4:
        raise ValueError(f"plot_feature_maps: layer {name!r} gives outputs of shape {maps.shape}, not feature maps "
                         f"(N, K, h, w)")
    if not isinstance(max_maps, int) or max_maps < 1:
        raise ValueError(f"plot_feature_maps: max_maps must be a positive int, got {max_maps!r}")
    shown = maps[0, :max_maps]
    plt = _pyplot()
    figure, axes = _grid(plt, len(shown), cols)
    for index, (ax, feature) in enumerate(zip(axes, shown)):
        ax.imshow(feature, cmap=cmap, interpolation="nearest")
        ax.set_title(str(index), fontsize=7)
    K, h, w = maps.shape[1:]
    extra = f", first {len(shown)} shown" if len(shown) < K else ""
    figure.suptitle(title or f"feature maps of {name!r}: {K} × {h}×{w}{extra}")
    return _finish(figure, path)


# ---------------------------------------------------------------- training curves

def plot_history(history: Any, *, metrics: Sequence[str] | None = None, labels: Sequence[str] | None = None,
                 title: str | None = None, path: "str | os.PathLike | None" = None):
    """Training curves: one panel per metric, training solid and validation dashed.

    Args:
        history: what ``fit`` returned (a History), its ``history`` dict, a run folder
            written by ``RunTracker`` (a path), or a list of these to compare (each in
            its own colour; a fit resumed with ``initial_epoch`` continues the axis).
        metrics: the metrics to draw, without the ``val_`` prefix (e.g. ``["loss",
            "accuracy"]``); by default every one recorded.
        labels: a name per history, for the legend.
        title: the figure title.
        path: also save the figure there.

    Returns:
        The matplotlib Figure. Epochs are numbered from 1, as ``fit`` prints them.
    """
    runs = list(history) if isinstance(history, (list, tuple)) else [history]
    if not runs:
        raise ValueError("plot_history: history is an empty list")
    if labels is not None and len(labels) != len(runs):
        raise ValueError(f"plot_history: labels has {len(labels)} entries for {len(runs)} histories")
    curves = [_curves(run) for run in runs]
    recorded = [key for epochs, values in curves for key in values]
    names = list(metrics) if metrics is not None else list(dict.fromkeys(
        key.removeprefix("val_") for key in recorded))
    missing = [name for name in names if name not in recorded and "val_" + name not in recorded]
    if missing or not names:
        raise ValueError(f"plot_history: no values for {', '.join(missing) or 'any metric'}; "
                         f"recorded: {', '.join(dict.fromkeys(recorded)) or 'nothing'}")
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    marker = "." if max(len(epochs) for epochs, _ in curves) <= 30 else None
    for position, (ax, name) in enumerate(zip(axes[0], names)):
        for index, (epochs, values) in enumerate(curves):
            colour = colours[index % len(colours)]
            prefix = f"{labels[index]} " if labels is not None else ""
            for key, style, part in ((name, "-", "train"), ("val_" + name, "--", "validation")):
                if key in values:
                    ax.plot(np.asarray(epochs) + 1, values[key], style, color=colour, marker=marker,
                            label=f"{prefix}{part}")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if position == 0:  # one legend: every panel has the same lines
            ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _finish(figure, path)


def _curves(run: Any) -> tuple[list, dict[str, np.ndarray]]:
    """(epochs, {metric: values}) from a History, a history dict or a run folder; numeric metrics only."""
    if hasattr(run, "history") and hasattr(run, "epoch"):
        epochs, raw = list(run.epoch), run.history
    elif isinstance(run, Mapping):
        raw = run
        epochs = list(range(max((len(v) for v in raw.values()), default=0)))
    elif isinstance(run, (str, os.PathLike)):
        from .callbacks.tracker import load_run
        loaded = load_run(run)
        epochs, raw = loaded["epochs"], loaded["metrics"]
    else:
        raise TypeError(f"plot_history: expected a History, a history dict or a run folder, got {type(run).__name__}")
    values = {}
    for key, series in raw.items():
        if len(series) == len(epochs) and all(v is None or isinstance(v, (int, float, np.number)) for v in series):
            values[key] = np.array([np.nan if v is None else float(v) for v in series])
    return epochs, values


# ---------------------------------------------------------------- confusion matrix

def plot_confusion_matrix(matrix: Any, *, class_names: Sequence[str] | None = None, normalize: str | None = None,
                          cmap: str = "Blues", title: str | None = None, path: "str | os.PathLike | None" = None):
    """A confusion matrix as a heat map with the value in every cell: rows true class, columns predicted.

    Args:
        matrix: a (C, C) array (``cnnkit.metrics.confusion_matrix``) or a
            :class:`~cnnkit.metrics.ConfusionMatrix` metric.
        class_names: C labels for the axes (0 .. C−1 by default).
        normalize: None (counts), ``"true"`` (each row sums to 1: recall on the
            diagonal), ``"pred"`` (each column sums to 1: precision) or ``"all"``.
        cmap: matplotlib colour map.
        title: the figure title.
        path: also save the figure there.

    Returns:
        The matplotlib Figure.
    """
    counts = _host(matrix.result() if hasattr(matrix, "result") else matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"plot_confusion_matrix: matrix must be square (C, C), got shape {counts.shape}")
    C = len(counts)
    names = [str(c) for c in (class_names if class_names is not None else range(C))]
    if len(names) != C:
        raise ValueError(f"plot_confusion_matrix: class_names has {len(names)} entries for {C} classes")
    values = _normalized(counts.astype(np.float64), normalize)
    plt = _pyplot()
    side = max(3.5, 0.45 * C + 1.5)
    figure, ax = plt.subplots(figsize=(side + 0.8, side))
    image = ax.imshow(values, cmap=cmap, vmin=0)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(C), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right")
    ax.set_yticks(range(C), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = values.max() / 2 if values.size else 0
    for i in range(C):
        for j in range(C):
            text = f"{int(counts[i, j])}" if normalize is None else f"{values[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if values[i, j] > threshold else "black")
    ax.set_title(title or ("confusion matrix" if normalize is None else f"confusion matrix ({normalize}-normalised)"))
    figure.tight_layout()
    return _finish(figure, path)


def _normalized(counts: np.ndarray, normalize: str | None) -> np.ndarray:
    if normalize is None:
        return counts
    axis = {"true": 1, "pred": 0, "all": None}
    if normalize not in axis:
        raise ValueError(f"plot_confusion_matrix: normalize must be None, 'true', 'pred' or 'all', got {normalize!r}")
    totals = counts.sum(axis=axis[normalize], keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


# ---------------------------------------------------------------- images and explanations

def _displayable(image: np.ndarray, who: str) -> np.ndarray:
    """An image as matplotlib takes it: (H, W), or (H, W, 3) scaled into [0, 1]."""
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim == 3 and image.shape[0] == 3:
        image = image.transpose(1, 2, 0).astype(np.float64)
        low, high = image.min(), image.max()
        return (image - low) / (high - low) if high > low else np.zeros_like(image)
    if image.ndim != 2:
        raise ValueError(f"{who}: each image must be (H, W), (1, H, W) or (3, H, W), got shape {image.shape}")
    return image


def plot_images(images: Any, *, titles: Sequence[str] | None = None, cols: int = 8, cmap: str = "gray",
                title: str | None = None, path: "str | os.PathLike | None" = None):
    """A grid of images, each on its own colour scale.

    Args:
        images: a batch (N, C, H, W) with C = 1 or 3, a stack (N, H, W), or a list of
            (H, W) / (C, H, W) images.
        titles: one caption per image.
        cols: images per row.
        cmap: colour map of one-channel images.
        title: the figure title.
        path: also save the figure there.

    Returns:
        The matplotlib Figure.
    """
    pictures = [_displayable(_host(image), "plot_images") for image in images]
    if not pictures:
        raise ValueError("plot_images: no images given")
    if titles is not None and len(titles) != len(pictures):
        raise ValueError(f"plot_images: titles has {len(titles)} entries for {len(pictures)} images")
    plt = _pyplot()
    figure, axes = _grid(plt, len(pictures), cols, cell=1.6)
    for index, (ax, picture) in enumerate(zip(axes, pictures)):
        ax.imshow(picture, cmap=cmap if picture.ndim == 2 else None, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[index], fontsize=8)
    if title:
        figure.suptitle(title)
    return _finish(figure, path)


def plot_explanations(images: Any, explanations: Mapping[str, Any], *, labels: Sequence[str] | None = None,
                      alpha: float = 0.5, cmap: str = "jet", title: str | None = None,
                      path: "str | os.PathLike | None" = None):
    """Explanation maps side by side: one row per image, the image first, then each map over it.

    Args:
        images: the explained images (N, C, H, W) with C = 1 or 3.
        explanations: method name → maps (N, H, W), e.g. ``{"saliency": saliency(model, x)}``.
            Each map is scaled to [0, 1] on its own (negative occlusion drops clip to 0).
        labels: a caption per image (e.g. its true and predicted class).
        alpha: opacity of the maps over the (grey) image; 1 shows the maps alone.
        cmap: colour map of the maps.
        title: the figure title.
        path: also save the figure there.

    Returns:
        The matplotlib Figure.
    """
    pictures = _host(images)
    if pictures.ndim != 4:
        raise ValueError(f"plot_explanations: images must be (N, C, H, W), got shape {pictures.shape}")
    N, _, H, W = pictures.shape
    maps = {name: _host(value) for name, value in explanations.items()}
    for name, value in maps.items():
        if value.shape != (N, H, W):
            raise ValueError(f"plot_explanations: {name!r} maps must have shape {(N, H, W)}, got {value.shape}")
    if labels is not None and len(labels) != N:
        raise ValueError(f"plot_explanations: labels has {len(labels)} entries for {N} images")
    plt = _pyplot()
    cols = 1 + len(maps)
    figure, axes = plt.subplots(N, cols, figsize=(1.9 * cols, 1.9 * N + 0.4), squeeze=False)
    for row in range(N):
        picture = _displayable(pictures[row], "plot_explanations")
        grey = picture if picture.ndim == 2 else picture.mean(axis=2)
        axes[row, 0].imshow(picture, cmap="gray" if picture.ndim == 2 else None, interpolation="nearest")
        axes[row, 0].set_ylabel(labels[row] if labels is not None else "", fontsize=9)
        for col, (name, value) in enumerate(maps.items(), start=1):
            heat = np.clip(value[row].astype(np.float64), 0, None)
            peak = heat.max()
            axes[row, col].imshow(grey, cmap="gray", interpolation="nearest")
            axes[row, col].imshow(heat / peak if peak > 0 else heat, cmap=cmap, vmin=0, vmax=1, alpha=alpha,
                                  interpolation="bilinear")
            if row == 0:
                axes[row, col].set_title(name, fontsize=10)
        if row == 0:
            axes[row, 0].set_title("input", fontsize=10)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _finish(figure, path)
