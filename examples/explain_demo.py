"""Where does a CNN look? Saliency, occlusion and Grad-CAM for a small CNN trained on the digits.

Writes three pictures to --output:

    explanations.png     six test digits, and each method's map over them, side by side
    training_curves.png  loss and accuracy per epoch, training and validation
    confusion_matrix.png which digits the network confuses

    python examples/explain_demo.py --output pictures/
    python examples/explain_demo.py --quick
"""
import argparse
from pathlib import Path

import numpy as np

import cnnkit
from cnnkit import explain, vis
from cnnkit.datasets import load_digits
from cnnkit.layers import ReLU
from cnnkit.metrics import confusion_matrix
from cnnkit.models.zoo import small_cnn


def ink_share(maps: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The fraction of each map's (positive) mass that lies on the digit's strokes."""
    mass = np.clip(maps, 0, None)
    return (mass * ink).sum(axis=(1, 2)) / np.maximum(mass.sum(axis=(1, 2)), 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="train for 5 epochs only")
    parser.add_argument("--output", default=".", help="folder for the PNG files (default: here)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    cnnkit.manual_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    model = small_cnn(input_shape=(1, 8, 8), num_classes=10)
    model.compile(optimizer="adam", loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=5 if args.quick else 20,
                        validation_data=(x_test, y_test), device=args.device, verbose=0)
    logits = model.predict(x_test)
    print(f"test accuracy {np.mean(logits.argmax(axis=1) == y_test):.2%}")
    vis.plot_history(history, title="small CNN on the digits", path=output / "training_curves.png")
    vis.plot_confusion_matrix(confusion_matrix(y_test, logits, num_classes=10), path=output / "confusion_matrix.png",
                              title="test digits: true (rows) against predicted (columns)")

    # The first test image of each of six classes.
    chosen = [int(np.argmax(y_test == digit)) for digit in (0, 2, 3, 4, 7, 9)]
    x = x_test[chosen]
    probabilities = np.exp(logits[chosen] - logits[chosen].max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    predicted = probabilities.argmax(axis=1)

    # Grad-CAM looks at the last convolutional block before pooling: 64 maps of 4x4.
    last_conv_block = [layer for layer in model.layers if isinstance(layer, ReLU)][-1]
    maps = {
        "saliency": explain.saliency(model, x),
        "occlusion (3x3)": explain.occlusion(model, x, patch_size=3),
        f"Grad-CAM ({last_conv_block.name})": explain.grad_cam(model, x, layer=last_conv_block),
    }
    labels = [f"true {y_test[i]}, said {p} ({probabilities[row, p]:.0%})"
              for row, (i, p) in enumerate(zip(chosen, predicted))]
    vis.plot_explanations(x, maps, labels=labels, path=output / "explanations.png",
                          title="what the CNN looks at when it names a digit (explained: its prediction)")

    ink = x[:, 0] > 0.25
    print(f"the strokes cover {ink.mean():.0%} of the pixels; share of each map's mass on the strokes:")
    for name, value in maps.items():
        print(f"  {name:<24} {np.mean(ink_share(value, ink)):.0%}")
    for name in ("explanations.png", "training_curves.png", "confusion_matrix.png"):
        print(f"wrote {output / name}")


if __name__ == "__main__":
    main()
