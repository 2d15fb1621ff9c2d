"""Where does a CNN look? Eight explanation methods side by side for a LeNet-5 trained on the digits,
or for an ImageNet ResNet-18 when you give its weights and some pictures.

Digits (default): trains the zoo's LeNet-5 (ReLU, max pooling) on the UCI digits scaled up to
32x32 and writes to --output:

    explanations.png     six test digits, and each method's map over them, side by side
    training_curves.png  loss and accuracy per epoch, training and validation
    confusion_matrix.png which digits the network confuses

ResNet-18: with --weights (torchvision's file, e.g. ~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth)
and --pictures (a folder with subfolders of pictures, as load_image_folder reads), explains the
ImageNet class ResNet-18 predicts for the first --count pictures and writes explanations.png only.

    python examples/explain_demo.py --output pictures/
    python examples/explain_demo.py --weights resnet18-f37072fd.pth --pictures my_photos/
    python examples/explain_demo.py --quick
"""
import argparse
from pathlib import Path

import numpy as np

import cnnkit
from cnnkit import explain, vis
from cnnkit.applications import LeNet5, ResNet18, decode_predictions, preprocess_input
from cnnkit.datasets import load_digits, load_image_folder
from cnnkit.metrics import confusion_matrix


def per_pixel(attributions: np.ndarray) -> np.ndarray:
    """(N, C, H, W) attributions as (N, H, W) maps of evidence for the class: the positive part, summed over colours."""
    return np.clip(attributions, 0, None).sum(axis=1)


def explanations(model, x, layer: str, quick: bool) -> dict:
    """Every method's (N, H, W) map for the model's predicted classes; ``layer`` is the one the CAMs look at."""
    samples, steps = (8, 16) if quick else (32, 64)
    return {
        "saliency": explain.saliency(model, x),
        f"SmoothGrad ({samples})": explain.smooth_grad(model, x, samples=samples, seed=0),
        "guided backprop": per_pixel(explain.guided_backprop(model, x)),
        f"integrated gradients ({steps})": per_pixel(explain.integrated_gradients(model, x, steps=steps)),
        "occlusion": explain.occlusion(model, x, patch_size=max(3, x.shape[-1] // 8),
                                       stride=max(1, x.shape[-1] // 16)),
        f"Grad-CAM ({layer})": explain.grad_cam(model, x, layer=layer),
        "Guided Grad-CAM": per_pixel(explain.guided_grad_cam(model, x, layer=layer)),
        f"Score-CAM ({layer})": explain.score_cam(model, x, layer=layer),
    }


def ink_share(maps: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The fraction of each map's (positive) mass that lies on the digit's strokes."""
    mass = np.clip(maps, 0, None)
    return (mass * ink).sum(axis=(1, 2)) / np.maximum(mass.sum(axis=(1, 2)), 1e-12)


def explain_digits(args, output: Path) -> None:
    (x_train, y_train), (x_test, y_test) = load_digits()
    scale_up = np.ones((1, 1, 4, 4), np.float32)  # 8x8 digits to LeNet-5's 32x32
    x_train, x_test = np.kron(x_train, scale_up), np.kron(x_test, scale_up)
    model = LeNet5(input_shape=(1, 32, 32), variant="modern")
    model.compile(optimizer="adam", loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=3 if args.quick else 12,
                        validation_data=(x_test, y_test), device=args.device, verbose=0)
    logits = model.predict(x_test)
    print(f"LeNet-5 on the digits: test accuracy {np.mean(logits.argmax(axis=1) == y_test):.2%}")
    vis.plot_history(history, title="LeNet-5 on the digits", path=output / "training_curves.png")
    vis.plot_confusion_matrix(confusion_matrix(y_test, logits, num_classes=10), path=output / "confusion_matrix.png",
                              title="test digits: true (rows) against predicted (columns)")

    chosen = [int(np.argmax(y_test == digit)) for digit in (0, 2, 3, 4, 7, 9)]  # the first test image of each
    x = x_test[chosen]
    probabilities = np.exp(logits[chosen] - logits[chosen].max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    predicted = probabilities.argmax(axis=1)
    maps = explanations(model, x, "conv2", args.quick)  # conv2: 16 maps of 10x10
    labels = [f"true {y_test[i]}, said {p} ({probabilities[row, p]:.0%})"
              for row, (i, p) in enumerate(zip(chosen, predicted))]
    vis.plot_explanations(x, maps, labels=labels, path=output / "explanations.png",
                          title="what LeNet-5 looks at when it names a digit (explained: its prediction)")
    ink = x[:, 0] > 0.25
    print(f"the strokes cover {ink.mean():.0%} of the pixels; share of each map's mass on the strokes:")
    for name, value in maps.items():
        print(f"  {name:<32} {np.mean(ink_share(value, ink)):.0%}")
    for name in ("explanations.png", "training_curves.png", "confusion_matrix.png"):
        print(f"wrote {output / name}")


def explain_resnet(args, output: Path) -> None:
    pictures, _, _ = load_image_folder(args.pictures, 224)
    pictures = pictures[:args.count]
    model = ResNet18(weights=args.weights).to(args.device)
    x = preprocess_input(pictures)
    decoded = decode_predictions(model.predict(x), top=1)
    maps = explanations(model, x, "layer4.1.relu", args.quick)  # the last block: 512 maps of 7x7
    labels = [f"{name} ({score:.1f})" for ((_, name, score),) in decoded]
    vis.plot_explanations(pictures, maps, labels=labels, path=output / "explanations.png",
                          title="what ResNet-18 looks at (explained: its ImageNet prediction, logit in brackets)")
    print(f"wrote {output / 'explanations.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 epochs and fewer samples per method")
    parser.add_argument("--output", default=".", help="folder for the PNG files (default: here)")
    parser.add_argument("--weights", help="torchvision ResNet-18 weights (.pth or .safetensors)")
    parser.add_argument("--pictures", help="folder with subfolders of pictures to explain with ResNet-18 (with --weights)")
    parser.add_argument("--count", type=int, default=6, help="how many of those pictures (Score-CAM runs 512 "
                                                              "forward passes per picture)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if (args.weights is None) != (args.pictures is None):
        parser.error("--weights and --pictures go together")
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    cnnkit.manual_seed(0)
    if args.weights:
        explain_resnet(args, output)
    else:
        explain_digits(args, output)


if __name__ == "__main__":
    main()
