"""Train a small CNN on the UCI handwritten digits that ship with cnnkit, save it, and reload it.

    python examples/digits_cnn.py            # about 15 epochs, ~98 % test accuracy
    python examples/digits_cnn.py --quick    # a few epochs, to check that everything runs
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

import cnnkit
from cnnkit.datasets import load_digits
from cnnkit.models.zoo import small_cnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="train for 2 epochs only")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    cnnkit.manual_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    model = small_cnn(input_shape=(1, 8, 8), num_classes=10)
    model.compile(optimizer="adam", loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.summary()
    model.fit(x_train, y_train, batch_size=32, epochs=2 if args.quick else 15,
              validation_data=(x_test, y_test), device=args.device, verbose=2)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test loss {loss:.4f}, test accuracy {accuracy:.2%}")

    with tempfile.TemporaryDirectory() as folder:
        path = model.save(Path(folder) / "digits.safetensors")
        reloaded = cnnkit.load_model(path)
        same = np.allclose(reloaded.predict(x_test), model.predict(x_test), atol=1e-5)
        print(f"saved to {path.name} and reloaded: predictions {'match' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
