"""Hand-made image kernels, applied with cnnkit's convolution, next to the filters a CNN learns.

Writes three pictures to --output:

    image_kernels.png    the classic kernels (top row) and what they do to a test card and a digit
    learned_filters.png  the first-layer filters of a CNN trained on the digits
    feature_maps.png     what that layer makes of one digit

    python examples/image_kernels_demo.py --output pictures/
    python examples/image_kernels_demo.py --quick
"""
import argparse
from pathlib import Path

import numpy as np

import cnnkit
from cnnkit import explain, image_kernels, vis
from cnnkit.datasets import load_digits
from cnnkit.initializers import RandomNormal
from cnnkit.layers import Conv2D, Dense, Flatten, MaxPool2D


def test_card(size: int = 64) -> np.ndarray:
    """A grey image with a bright disc, a dark square, a thin diagonal line and a little noise."""
    rows, cols = np.mgrid[0:size, 0:size] / size
    image = 0.25 + 0.25 * cols                                   # a gentle left-to-right ramp
    image[(rows - 0.32) ** 2 + (cols - 0.32) ** 2 < 0.2 ** 2] = 0.9
    image[(rows > 0.56) & (rows < 0.86) & (cols > 0.56) & (cols < 0.86)] = 0.05
    image[np.abs(rows - (1 - cols)) < 0.012] = 1.0
    image += np.random.default_rng(0).normal(0, 0.03, image.shape)
    return image.astype(np.float32)


def upscaled_digit(image: np.ndarray, size: int = 48) -> np.ndarray:
    """An 8x8 digit, with a margin, as a bigger smooth picture: 3x3 kernels then see strokes rather than pixels."""
    framed = np.pad(image, 2)[None]
    return image_kernels.apply_kernel(explain.resize_bilinear(framed, (size, size))[0], image_kernels.gaussian(7, 1.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="train the CNN for 5 epochs only")
    parser.add_argument("--output", default=".", help="folder for the PNG files (default: here)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    cnnkit.manual_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()

    # 1. The classic kernels, each applied with conv2d (depthwise, zero padding) to two images.
    kernels = {
        "identity": image_kernels.identity(),
        "laplacian (4)": image_kernels.laplacian(4),
        "laplacian (8)": image_kernels.laplacian(8),
        "sobel x": image_kernels.sobel("x"),
        "sobel y": image_kernels.sobel("y"),
        "sharpen": image_kernels.sharpen(),
        "box blur 5x5": image_kernels.box_blur(5),
        "gaussian 5, σ=1": image_kernels.gaussian(5, 1.0),
        "gaussian 9, σ=2": image_kernels.gaussian(9, 2.0),
    }
    card, digit = test_card(), upscaled_digit(x_test[np.argmax(y_test == 2), 0])
    panels = list(kernels.values())
    panels += [image_kernels.apply_kernel(card, kernel) for kernel in kernels.values()]
    panels += [image_kernels.apply_kernel(digit, kernel) for kernel in kernels.values()]
    titles = list(kernels) + [""] * (2 * len(kernels))
    figure = vis.plot_images(panels, titles=titles, cols=len(kernels),
                             title="hand-made kernels (top row) applied to a test card and a digit")
    for ax, kernel in zip(figure.axes, kernels.values()):
        limit = np.abs(kernel).max()
        ax.get_images()[0].set_clim(-limit, limit)  # kernels on a scale where mid grey is 0, as plot_filters draws
        ax.set_axis_on()                            # a frame, so that the all-white box blur shows
        ax.set_xticks([])
        ax.set_yticks([])
    figure.savefig(output / "image_kernels.png", dpi=100, bbox_inches="tight")
    print(f"wrote {output / 'image_kernels.png'}")
    sobel_magnitude = np.hypot(image_kernels.apply_kernel(card, image_kernels.sobel("x")),
                               image_kernels.apply_kernel(card, image_kernels.sobel("y")))
    print(f"test card: strongest Sobel edge {sobel_magnitude.max():.2f}, mean {sobel_magnitude.mean():.2f}")

    # 2. A Conv2D layer whose weights are these kernels computes exactly the same thing.
    three_by_three = {name: k for name, k in kernels.items() if k.shape == (3, 3)}
    layer = image_kernels.conv2d_layer_from_kernels(list(three_by_three.values()), name="classic_kernels")
    model = cnnkit.Sequential([cnnkit.Input((1,) + card.shape), layer])
    by_layer = model.predict(card[None, None])[0]
    by_filter = np.stack([image_kernels.apply_kernel(card, k) for k in three_by_three.values()])
    print(f"a Conv2D layer holding the {len(three_by_three)} 3x3 kernels reproduces apply_kernel: "
          f"max difference {np.abs(by_layer - by_filter).max():.1e}")

    # 3. A CNN learns its own kernels. The first layer starts from tiny random weights, so that its
    #    picture shows what training put into the filters rather than the random start.
    cnn = cnnkit.Sequential([
        cnnkit.Input((1, 8, 8)),
        Conv2D(16, 3, padding="same", activation="relu", kernel_initializer=RandomNormal(stddev=0.01)),
        MaxPool2D(), Conv2D(32, 3, padding="same", activation="relu"), MaxPool2D(), Flatten(), Dense(10),
    ])
    cnn.compile(optimizer="adam", loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
    cnn.fit(x_train, y_train, batch_size=32, epochs=5 if args.quick else 30, device=args.device, verbose=0)
    _, accuracy = cnn.evaluate(x_test, y_test, verbose=0)
    print(f"CNN test accuracy on the digits: {accuracy:.2%}")
    first_conv = cnn.layers[0]
    vis.plot_filters(first_conv, path=output / "learned_filters.png",
                     title=f"first-layer filters learned on the digits ({first_conv.kernel.shape[0]} of 3x3)")
    print(f"wrote {output / 'learned_filters.png'}")
    vis.plot_feature_maps(cnn, x_test[0], first_conv, path=output / "feature_maps.png",
                          title=f"what those filters (with ReLU) make of a test '{y_test[0]}'")
    print(f"wrote {output / 'feature_maps.png'}")


if __name__ == "__main__":
    main()
