"""The small CNN on Fashion-MNIST: Conv32-BN-ReLU-Pool, Conv64-BN-ReLU-Pool, Dense128, Dropout, Dense10, Adam.

Needs the Fashion-MNIST IDX files (on Debian: `apt-get install dataset-fashion-mnist`,
or put them in $CNNKIT_DATA/fashion-mnist).

    python examples/fashion_mnist_cnn.py                  # 10 epochs, ~92 % test accuracy
    python examples/fashion_mnist_cnn.py --device cuda
    python examples/fashion_mnist_cnn.py --quick          # 1 epoch on 6,000 images
"""
import argparse
import time

import cnnkit
from cnnkit.datasets import FASHION_MNIST_CLASS_NAMES, load_fashion_mnist
from cnnkit.metrics import ConfusionMatrix
from cnnkit.models.zoo import small_cnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one epoch on a tenth of the training set")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-path", default=None)
    args = parser.parse_args()

    cnnkit.manual_seed(0)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(args.data_path)
    epochs = args.epochs
    if args.quick:
        x_train, y_train, x_test, y_test, epochs = x_train[:6000], y_train[:6000], x_test[:2000], y_test[:2000], 1

    model = small_cnn(input_shape=(1, 28, 28), num_classes=10)
    model.compile(cnnkit.optimizers.Adam(learning_rate=1e-3),
                  cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs, validation_data=(x_test, y_test),
              device=args.device, verbose=1)
    seconds = time.perf_counter() - started
    logits = model.predict(x_test, batch_size=512)
    matrix = ConfusionMatrix(num_classes=10)
    matrix.update_state(y_test, logits)
    print(f"test accuracy {(logits.argmax(axis=1) == y_test).mean():.2%} after {epochs} epochs; "
          f"training took {seconds:.1f} s ({epochs * len(x_train) / seconds:,.0f} images/s on {model.device})")
    print(matrix.format(class_names=list(FASHION_MNIST_CLASS_NAMES)))


if __name__ == "__main__":
    main()
