"""Transfer learning: a CNN trained on five classes learns five new ones from a handful of examples.

1. pretrain the small CNN on classes 0-4 (digits, or Fashion-MNIST when it is installed);
2. freeze its convolutional base and replace its classifier (the dense layers after Flatten) with
   a new Dense layer for classes 5-9;
3. train only that head on a few examples of each new class;
4. unfreeze the base (batch norm stays frozen) and fine-tune everything at a low learning rate;
5. compare with the same network trained from scratch on the same few examples.

Writes transfer_learning.png (the learning curves of both) to --output.

    python examples/transfer_learning.py --output pictures/
    python examples/transfer_learning.py --quick          # digits, a few epochs
"""
import argparse
import time
from pathlib import Path

import numpy as np

import cnnkit
from cnnkit import vis
from cnnkit.datasets import DatasetNotFoundError, load_digits, load_fashion_mnist
from cnnkit.layers import Dense, Flatten
from cnnkit.models.zoo import small_cnn
from cnnkit.transfer import replace_head, unfreeze


def load(dataset: str, quick: bool):
    """(name, (x_train, y_train), (x_test, y_test)); Fashion-MNIST only when asked for or installed."""
    if dataset in ("auto", "fashion-mnist") and not quick:
        try:
            return "Fashion-MNIST", *load_fashion_mnist()
        except DatasetNotFoundError:
            if dataset == "fashion-mnist":
                raise
    return "digits", *load_digits()


def few_per_class(x, y, count: int, seed: int = 0):
    """``count`` random examples of every class in ``y``."""
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(y == c), count, replace=False) for c in np.unique(y)])
    return x[keep], y[keep]


def compiled(model, learning_rate: float):
    model.compile(optimizer=cnnkit.optimizers.Adam(learning_rate=learning_rate),
                  loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the digits and few epochs")
    parser.add_argument("--dataset", choices=["auto", "digits", "fashion-mnist"], default="auto",
                        help="auto: Fashion-MNIST when installed (and not --quick), else the digits")
    parser.add_argument("--per-class", type=int, default=3, help="training examples of each new class")
    parser.add_argument("--output", default=".", help="folder for the PNG file (default: here)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    cnnkit.manual_seed(0)
    name, (x_train, y_train), (x_test, y_test) = load(args.dataset, args.quick)
    fashion = name == "Fashion-MNIST"
    old, new = y_train < 5, y_train >= 5
    x_old, y_old = x_train[old], y_train[old]
    if fashion:  # 12,000 images are plenty to learn useful features, and keep the example to minutes on a CPU
        x_old, y_old = x_old[:12000], y_old[:12000]
    x_few, y_few = few_per_class(x_train[new], y_train[new] - 5, args.per_class)
    test_new = y_test >= 5
    x_val, y_val = x_test[test_new][:1000], y_test[test_new][:1000] - 5
    test_old = y_test < 5
    pretrain_epochs = 8 if args.quick else (3 if fashion else 15)
    head_epochs, tune_epochs = (20, 10) if args.quick else (40, 20)
    fit = dict(batch_size=16, validation_data=(x_val, y_val), device=args.device, verbose=0)
    print(f"{name}: pretraining on {len(x_old)} images of classes 0-4, then learning classes 5-9 from "
          f"{len(x_few)} images ({args.per_class} per class); testing on {len(x_val)} images of classes 5-9")

    started = time.perf_counter()
    pretrained = compiled(small_cnn(input_shape=x_train.shape[1:], num_classes=5, name="pretrained"), 1e-3)
    pretrained.fit(x_old, y_old, batch_size=64, epochs=pretrain_epochs, device=args.device, verbose=0)
    _, accuracy = pretrained.evaluate(x_test[test_old], y_test[test_old], verbose=0)
    print(f"pretrained on classes 0-4: accuracy {accuracy:.1%} on their test images "
          f"({time.perf_counter() - started:.0f} s)")

    conv_base_end = next(layer for layer in pretrained.layers if isinstance(layer, Flatten))
    model = replace_head(pretrained, Dense(5, name="new_head"), cut_at=conv_base_end, freeze_base=True,
                         name="transferred")
    # The head is a linear model on fixed features: the 256 features of an 8x8 digit take a large step,
    # the 3,136 of a 28x28 Fashion-MNIST image need a smaller one not to overfit 15 images at once.
    head_learning_rate = 1e-3 if fashion else 1e-2
    compiled(model, head_learning_rate)
    trainable = sum(w.size for w in model.trainable_weights)
    head = model.fit(x_few, y_few, epochs=head_epochs, **fit)
    print(f"head only ({trainable:,} of {model.count_params():,} weights trained, learning rate "
          f"{head_learning_rate:g}): accuracy {head.history['val_accuracy'][-1]:.1%} on classes 5-9")

    unfreeze(model)
    compiled(model, 1e-4)
    tuned = model.fit(x_few, y_few, epochs=head_epochs + tune_epochs, initial_epoch=head_epochs, **fit)
    print(f"fine-tuned (all but batch norm, learning rate 1e-4): accuracy {tuned.history['val_accuracy'][-1]:.1%}")

    scratch_model = compiled(small_cnn(input_shape=x_train.shape[1:], num_classes=5, name="scratch"), 1e-3)
    scratch = scratch_model.fit(x_few, y_few, epochs=head_epochs + tune_epochs, **fit)
    print(f"from scratch on the same {len(x_few)} images: accuracy {scratch.history['val_accuracy'][-1]:.1%}")

    path = output / "transfer_learning.png"
    vis.plot_history([head, tuned, scratch], metrics=["loss", "accuracy"], path=path,
                     labels=["transfer: head", "transfer: fine-tune", "from scratch"],
                     title=f"{name}: classes 5-9 from {args.per_class} examples each (validation dashed)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
