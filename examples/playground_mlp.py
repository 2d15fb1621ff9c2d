"""A TensorFlow-Playground-style MLP on a 2-D toy problem: xor, circles, gaussians or spirals.

    python examples/playground_mlp.py --dataset spirals --plot spirals.png
    python examples/playground_mlp.py --quick
"""
import argparse

import numpy as np

import cnnkit
from cnnkit import Input, Sequential
from cnnkit.datasets import make_circles, make_gaussians, make_spirals, make_xor
from cnnkit.layers import Dense

DATASETS = {"xor": make_xor, "circles": make_circles, "gaussians": make_gaussians, "spirals": make_spirals}


def plot_decision_boundary(model, x, y, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(-1.2, 1.2, 200, dtype=np.float32)
    xx, yy = np.meshgrid(grid, grid)
    points = np.stack([xx.ravel(), yy.ravel()], axis=1)
    classes = model.predict(points, batch_size=4096).argmax(axis=1).reshape(xx.shape)
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.contourf(xx, yy, classes, alpha=0.3, cmap="coolwarm")
    axes.scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", s=8, edgecolors="k", linewidths=0.2)
    axes.set_title("decision boundary")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="spirals")
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 epochs only")
    parser.add_argument("--plot", help="save the decision boundary to this PNG (needs matplotlib)")
    args = parser.parse_args()

    cnnkit.manual_seed(0)
    x, y = DATASETS[args.dataset](600, noise=args.noise, seed=0)
    model = Sequential([Input((2,)), Dense(64, activation="relu"), Dense(64, activation="relu"),
                        Dense(int(y.max()) + 1)])
    model.compile(cnnkit.optimizers.Adam(learning_rate=0.01),
                  cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=20 if args.quick else args.epochs, validation_split=0.2, verbose=0)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    print(f"{args.dataset}: loss {loss:.4f}, accuracy {accuracy:.2%}")
    if args.plot:
        plot_decision_boundary(model, x, y, args.plot)


if __name__ == "__main__":
    main()
