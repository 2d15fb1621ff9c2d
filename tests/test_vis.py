"""Plots: each returns a figure showing the data it was given, and writes a PNG on request."""
import subprocess
import sys

import numpy as np
import pytest

import cnnkit
from cnnkit import Input, Sequential, vis
from cnnkit.callbacks import History, RunTracker
from cnnkit.layers import Conv2D, Dense, Flatten, ReLU

plt = pytest.importorskip("matplotlib.pyplot")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000


def shown_images(figure):
    return [image.get_array() for ax in figure.axes for image in ax.get_images()]


def small_model():
    return Sequential([Input((1, 8, 8)), Conv2D(6, 3, padding="same", name="conv"), ReLU(name="relu"), Flatten(),
                       Dense(3)])


def test_importing_cnnkit_vis_does_not_need_matplotlib():
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "import numpy as np\n"
            "import cnnkit, cnnkit.vis, cnnkit.explain, cnnkit.image_kernels, cnnkit.transfer\n"
            "try:\n    cnnkit.vis.plot_images(np.zeros((1, 4, 4)))\n"
            "except ImportError as error:\n    print(error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install 'cnnkit[plot]'" in result.stdout


def test_plot_filters_draws_every_kernel_on_a_symmetric_scale(tmp_path):
    model = small_model()
    figure = vis.plot_filters(model, cols=4, path=tmp_path / "sub" / "filters.png")
    assert_png(tmp_path / "sub" / "filters.png")
    kernels = model.get_layer("conv").kernel.numpy()
    images = [ax.get_images()[0] for ax in figure.axes if ax.get_images()]
    assert len(images) == 6
    for image, kernel in zip(images, kernels):
        np.testing.assert_allclose(image.get_array(), kernel[0], rtol=1e-6)
        low, high = image.get_clim()
        assert low == pytest.approx(-np.abs(kernel).max()) and high == pytest.approx(np.abs(kernel).max())
    assert "conv" in figure.get_suptitle()


def test_plot_filters_in_colour_and_by_channel(rng):
    kernels = rng.standard_normal((5, 3, 3, 3))
    colour = shown_images(vis.plot_filters(kernels))
    assert len(colour) == 5 and colour[0].shape == (3, 3, 3)
    assert all(0 <= image.min() and image.max() <= 1 for image in colour)
    by_channel = shown_images(vis.plot_filters(kernels, channel=2))
    np.testing.assert_allclose(by_channel[4], kernels[4, 2])
    with pytest.raises(ValueError, match="channel="):
        vis.plot_filters(rng.standard_normal((2, 4, 3, 3)))
    with pytest.raises(ValueError, match="no 2-D convolution kernel"):
        vis.plot_filters(Sequential([Input((3,)), Dense(2)]))


def test_plot_feature_maps_shows_the_layer_output(tmp_path, rng):
    model = small_model()
    x = rng.standard_normal((1, 8, 8)).astype(np.float32)
    figure = vis.plot_feature_maps(model, x, "relu", max_maps=4, path=tmp_path / "maps.png")
    assert_png(tmp_path / "maps.png")
    expected = model.extract_features(x[None], layer="relu")[0]
    shown = shown_images(figure)
    assert len(shown) == 4
    for index, image in enumerate(shown):
        np.testing.assert_allclose(image, expected[index], rtol=1e-6)
    with pytest.raises(ValueError, match="not feature maps"):
        vis.plot_feature_maps(model, x, model.layers[-1])


def lines_by_label(ax):
    return {line.get_label(): (line.get_xdata(), line.get_ydata()) for line in ax.get_lines()}


def test_plot_history_from_a_history_and_from_a_run_folder(tmp_path, rng):
    model = small_model()
    model.compile("adam", cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x, y = rng.standard_normal((40, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 40)
    history = model.fit(x, y, epochs=3, batch_size=10, validation_split=0.25, verbose=0,
                        callbacks=[RunTracker(tmp_path / "runs", name="vis")])

    figure = vis.plot_history(history, path=tmp_path / "history.png")
    assert_png(tmp_path / "history.png")
    assert [ax.get_title() for ax in figure.axes] == ["loss", "accuracy"]
    loss = lines_by_label(figure.axes[0])
    np.testing.assert_array_equal(loss["train"][0], [1, 2, 3])
    np.testing.assert_allclose(loss["train"][1], history.history["loss"])
    np.testing.assert_allclose(loss["validation"][1], history.history["val_loss"])

    run_folder = next((tmp_path / "runs").iterdir())
    from_run = vis.plot_history(str(run_folder), metrics=["accuracy"])
    assert len(from_run.axes) == 1
    np.testing.assert_allclose(lines_by_label(from_run.axes[0])["validation"][1], history.history["val_accuracy"])
    from_dict = vis.plot_history(history.history, metrics=["loss"])
    np.testing.assert_allclose(lines_by_label(from_dict.axes[0])["train"][1], history.history["loss"])


def test_plot_history_compares_runs_and_continues_resumed_epochs():
    first, second = History(), History()
    for epoch, loss in enumerate([1.0, 0.8]):
        first.on_epoch_end(epoch, {"loss": loss})
    for epoch, loss in [(2, 0.6), (3, 0.5)]:
        second.on_epoch_end(epoch, {"loss": loss, "lr": 1e-4})
    figure = vis.plot_history([first, second], metrics=["loss"], labels=["head", "fine-tune"])
    lines = lines_by_label(figure.axes[0])
    np.testing.assert_array_equal(lines["fine-tune train"][0], [3, 4])
    with pytest.raises(ValueError, match="no values for accuracy"):
        vis.plot_history(first, metrics=["accuracy"])
    with pytest.raises(ValueError, match="labels has 1 entries for 2"):
        vis.plot_history([first, second], labels=["one"])


def test_plot_confusion_matrix_counts_and_normalisation(tmp_path):
    matrix = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 4]])
    figure = vis.plot_confusion_matrix(matrix, class_names=["a", "b", "c"], path=tmp_path / "cm.png")
    assert_png(tmp_path / "cm.png")
    ax = figure.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == [str(v) for v in matrix.ravel()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    normalised = vis.plot_confusion_matrix(matrix, normalize="true").axes[0]
    np.testing.assert_allclose(normalised.get_images()[0].get_array().sum(axis=1), 1)
    assert normalised.texts[0].get_text() == f"{5 / 6:.2f}"
    metric = cnnkit.metrics.ConfusionMatrix(num_classes=3)
    metric.update_state(np.array([0, 1, 1]), np.array([0, 1, 2]))
    np.testing.assert_array_equal(vis.plot_confusion_matrix(metric).axes[0].get_images()[0].get_array(),
                                  metric.result())
    with pytest.raises(ValueError, match="normalize"):
        vis.plot_confusion_matrix(matrix, normalize="rows")
    with pytest.raises(ValueError, match="class_names has 2 entries for 3"):
        vis.plot_confusion_matrix(matrix, class_names=["a", "b"])


def test_plot_images_and_explanations(tmp_path, rng):
    batch = rng.uniform(size=(3, 1, 5, 6))
    figure = vis.plot_images(batch, titles=["x", "y", "z"], path=tmp_path / "images.png")
    assert_png(tmp_path / "images.png")
    np.testing.assert_allclose(shown_images(figure)[1], batch[1, 0])
    maps = {"saliency": rng.uniform(size=(3, 5, 6)), "occlusion": rng.uniform(-1, 1, size=(3, 5, 6))}
    figure = vis.plot_explanations(batch, maps, labels=["0", "1", "2"], path=tmp_path / "explained.png")
    assert_png(tmp_path / "explained.png")
    assert len(figure.axes) == 9 and figure.axes[1].get_title() == "saliency"
    overlay = figure.axes[2].get_images()[1].get_array()  # row 0, occlusion: negative drops clipped, scaled to 1
    assert overlay.min() >= 0 and overlay.max() == pytest.approx(1)
    with pytest.raises(ValueError, match=r"'saliency' maps must have shape \(3, 5, 6\)"):
        vis.plot_explanations(batch, {"saliency": np.zeros((3, 5, 5))})
