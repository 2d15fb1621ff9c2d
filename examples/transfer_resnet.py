"""Fine-tune an ImageNet-pretrained ResNet-18 on your own pictures: freeze the backbone and train a
new classifier, then unfreeze the last stage and fine-tune it at a low learning rate.

The pictures: a folder with one subfolder per class (flowers/daisy/*.jpg, flowers/tulip/*.jpg, ...).
The weights: torchvision's ResNet-18 file, e.g. the one PyTorch downloads to
~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth (reading .pth needs PyTorch; a
.safetensors file needs nothing more). cnnkit itself downloads nothing.

    python examples/transfer_resnet.py --data flowers/ --weights ~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth
    python examples/transfer_resnet.py --quick      # random weights, synthetic pictures, 32x32: a smoke test
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

import cnnkit
from cnnkit.applications import ResNet18, preprocess_input
from cnnkit.data import train_test_split
from cnnkit.datasets import load_image_folder
from cnnkit.layers import Dense
from cnnkit.transfer import replace_head, unfreeze


def write_synthetic_pictures(root: Path, per_class: int = 16, size: int = 40) -> None:
    """Three classes of noisy pictures: horizontal stripes, vertical stripes and a bright square."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:size, 0:size]
    for name in ("horizontal", "vertical", "square"):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(4, 8)
            if name == "square":
                top, left = rng.integers(0, size // 2, 2)
                pattern = ((rows >= top) & (rows < top + size // 2) & (cols >= left) & (cols < left + size // 2))
            else:
                along = rows if name == "horizontal" else cols
                pattern = np.sin(2 * np.pi * along / period + phase) > 0
            picture = 0.6 * pattern[..., None] * rng.uniform(0.5, 1, 3) + 0.4 * rng.uniform(0, 1, (size, size, 3))
            Image.fromarray((picture * 255).astype(np.uint8)).save(root / name / f"{index}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder with one subfolder of pictures per class")
    parser.add_argument("--weights", help="torchvision ResNet-18 weights (.pth or .safetensors)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--head-epochs", type=int, default=5)
    parser.add_argument("--tune-epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="random weights, synthetic pictures, 32x32, 2+2 epochs")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    cnnkit.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        if args.quick:
            args.data, args.weights, args.image_size = Path(scratch), None, 32
            args.head_epochs = args.tune_epochs = 2
            write_synthetic_pictures(args.data)
        elif args.data is None:
            parser.error("--data is required (or use --quick)")
        x, y, class_names = load_image_folder(args.data, args.image_size)
    print(f"{len(x)} pictures of {len(class_names)} classes: {', '.join(class_names)}")
    if args.weights is None and not args.quick:
        print("no --weights given: starting from random weights, so expect little from a small folder")
    x_train, x_val, y_train, y_val = train_test_split(preprocess_input(x), y, test_size=0.25, stratify=y, seed=0)

    pretrained = ResNet18(weights=args.weights, input_shape=(3, args.image_size, args.image_size))
    # A new classifier over the 512 pooled features; everything before it is frozen (batch norm included,
    # so it keeps ImageNet's statistics).
    model = replace_head(pretrained, Dense(len(class_names), name="classifier"), freeze_base=True)
    loss = cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=cnnkit.optimizers.Adam(learning_rate=1e-3), loss=loss, metrics=["accuracy"])
    fit = dict(batch_size=args.batch_size, validation_data=(x_val, y_val), device=args.device, verbose=0)
    history = model.fit(x_train, y_train, epochs=args.head_epochs, **fit)
    print(f"head only ({args.head_epochs} epochs): validation accuracy {history.history['val_accuracy'][-1]:.0%}")

    # Then fine-tune the last residual stage too, ten times more gently; batch norm stays frozen.
    unfreeze(model, from_layer="layer4.0.conv1")
    model.compile(optimizer=cnnkit.optimizers.Adam(learning_rate=1e-4), loss=loss, metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=args.tune_epochs, **fit)
    trainable = sum(w.size for w in model.trainable_weights)
    print(f"layer4 + head ({args.tune_epochs} epochs, {trainable:,} trainable parameters): "
          f"validation accuracy {history.history['val_accuracy'][-1]:.0%}")


if __name__ == "__main__":
    main()
