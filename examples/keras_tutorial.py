"""The classic Keras tutorial, written for cnnkit: Sequential + add, compile with adam and
categorical cross-entropy on one-hot labels, fit with batch_size=32 and validation_data.

    python examples/keras_tutorial.py
    python examples/keras_tutorial.py --quick
"""
import argparse

import cnnkit
from cnnkit.data import to_categorical
from cnnkit.datasets import load_digits
from cnnkit.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    cnnkit.manual_seed(42)
    (x_train, y_train), (x_test, y_test) = load_digits()
    y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)

    model = cnnkit.Sequential()
    model.add(Conv2D(32, kernel_size=(3, 3), activation="relu", padding="same", input_shape=(1, 8, 8)))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Conv2D(64, kernel_size=(3, 3), activation="relu", padding="same"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    model.summary()

    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=3 if args.quick else 20, verbose=1,
              validation_data=(x_test, y_test))
    score = model.evaluate(x_test, y_test, verbose=0)
    print("Test loss:", score[0])
    print("Test accuracy:", score[1])


if __name__ == "__main__":
    main()
