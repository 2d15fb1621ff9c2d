"""Train the small CNN on the digits data-parallel: one process per CPU core or per GPU.

    mpirun -n 2 python examples/distributed_mpi.py             # 2 CPU ranks
    mpirun -n 2 python examples/distributed_mpi.py --device cuda   # 2 GPUs, one per rank
    mpirun -n 2 python examples/distributed_mpi.py --quick     # 2 epochs, to check that it runs

(As root, or with more ranks than cores, Open MPI wants ``--allow-run-as-root --oversubscribe``.)
Every rank builds the same model; fit broadcasts rank 0's weights, gives each rank its
own shard of every epoch, averages the gradients over the ranks and reports global
loss and accuracy. Only rank 0 prints and saves.
"""
import argparse
import tempfile
from pathlib import Path

import cnnkit
from cnnkit import distributed
from cnnkit.callbacks import ModelCheckpoint
from cnnkit.datasets import load_digits
from cnnkit.models.zoo import small_cnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="train for 2 epochs only")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for one GPU per rank")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per rank and step")
    args = parser.parse_args()

    distributed.init()
    cnnkit.manual_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    model = small_cnn(input_shape=(1, 8, 8), num_classes=10)
    model.compile(optimizer="adam", loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    if distributed.is_main_process():
        print(f"{distributed.size()} rank(s), {args.batch_size} samples per rank and step "
              f"({args.batch_size * distributed.size()} per step)", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = ModelCheckpoint(Path(folder) / "digits.safetensors", monitor="val_accuracy",
                                     save_best_only=True)
        model.fit(x_train, y_train, batch_size=args.batch_size, epochs=2 if args.quick else 15,
                  validation_data=(x_test, y_test), device=args.device, verbose=2, callbacks=[checkpoint],
                  distributed=True)
        if distributed.is_main_process():
            print(f"best model saved by rank 0: {[p.name for p in checkpoint.saved][-1:]}")
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0, distributed=True)
    if distributed.is_main_process():
        print(f"test loss {loss:.4f}, test accuracy {accuracy:.2%} (over every rank's shard)")


if __name__ == "__main__":
    main()
