"""The ``cnnkit`` command: ``demo``, ``train``, ``bench``, ``info`` and ``kernels``."""
from __future__ import annotations

import argparse
import platform
import sys
import time
from typing import Sequence

import numpy as np

DATASETS = ("digits", "fashion-mnist", "mnist")


def _load(dataset: str, path: str | None):
    from . import datasets
    if dataset == "digits":
        return datasets.load_digits()
    loader = datasets.load_fashion_mnist if dataset == "fashion-mnist" else datasets.load_mnist
    return loader(path)


def _class_names(dataset: str) -> list[str]:
    from . import datasets
    if dataset == "fashion-mnist":
        return list(datasets.FASHION_MNIST_CLASS_NAMES)
    return [str(i) for i in range(10)]


def _train_and_report(dataset: str, epochs: int, batch_size: int, device: str, seed: int, path: str | None = None,
                      save: str | None = None, verbose: int = 1) -> float:
    """Train the small CNN on ``dataset``; print accuracy, confusion matrix and timing; return test accuracy."""
    import cnnkit
    from .metrics import ConfusionMatrix

    cnnkit.manual_seed(seed)
    (x_train, y_train), (x_test, y_test) = _load(dataset, path)
    model = cnnkit.models.zoo.small_cnn(x_train.shape[1:], num_classes=10)
    model.compile(cnnkit.optimizers.Adam(learning_rate=1e-3),
                  cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.to(device)
    print(f"Training the small CNN on {dataset} ({len(x_train)} training and {len(x_test)} test images, "
          f"{x_train.shape[1:]} each) on {cnnkit.Device(device)} for {epochs} epochs", flush=True)
    started = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=verbose)
    seconds = time.perf_counter() - started
    logits = model.predict(x_test, batch_size=256)
    matrix = ConfusionMatrix(num_classes=10)
    matrix.update_state(y_test, logits)
    accuracy = float((logits.argmax(axis=1) == y_test).mean())
    print(f"\nTest accuracy: {accuracy:.2%}")
    print(f"Training time: {seconds:.1f} s ({epochs * len(x_train) / seconds:,.0f} images/s)")
    print("\nConfusion matrix (rows: true class, columns: predicted):")
    print(matrix.format(class_names=_class_names(dataset)))
    if save:
        print(f"\nSaved the model to {model.save(save)}")
    return accuracy


def _cmd_demo(args) -> int:
    _train_and_report("digits", args.epochs, args.batch_size, args.device, args.seed, verbose=args.verbose)
    return 0


def _cmd_train(args) -> int:
    _train_and_report(args.dataset, args.epochs, args.batch_size, args.device, args.seed, args.data_path,
                      args.save, verbose=args.verbose)
    return 0


def _cmd_bench(args) -> int:
    from .bench.cli import run_bench
    return run_bench(args)


def _cmd_info(args) -> int:
    import cnnkit
    from . import backend, cpu, cuda, registry

    print(f"cnnkit {cnnkit.__version__}")
    print(f"Python {platform.python_version()} on {platform.platform()}")
    print(f"NumPy {np.__version__}")
    print(f"CPU: {platform.processor() or platform.machine()}")
    module = backend._import_cupy()
    if module is None:
        print(f"CuPy: not available ({backend._cupy_import_error}); {backend.GPU_INSTALL_HINT}")
    else:
        print(f"CuPy {module.__version__}")
    count = cuda.device_count()
    print(f"CUDA devices: {count}")
    problems = backend.cuda_library_problems()
    for problem in problems:
        print(f"  CUDA library missing: {problem}")
    if problems:
        print(f"  To install every library: {backend.GPU_INSTALL_HINT}")
    for index in range(0 if problems else count):
        memory = cuda.memory_info(index)
        print(f"  cuda:{index}: {cuda.device_name(index)}, {memory.free / 2**30:.1f} GiB free "
              f"of {memory.total / 2**30:.1f} GiB")
    print(f"Kernel cache: {cuda.kernel_cache_dir()}")
    print(f"CUDA kernels: {'ours' if registry.cuda_kernels_enabled() else 'off (references on CuPy)'}; "
          f"CPU threads: {cpu.get_num_threads()}")
    print(f"Default device: {cnnkit.get_default_device()}")
    return 0


def _cmd_kernels(args) -> int:
    from . import registry
    if args.precompile:
        from .cuda import launcher
        results = launcher.precompile_all()
        for result in results:
            print(f"{result.file_name}: {'ok' if result.ok else 'FAILED'} ({result.seconds:.1f} s)")
            if not result.ok:
                print(result.message)
        return 0 if all(result.ok for result in results) else 1
    for op, backends in registry.registered_ops().items():
        print(f"{op:28s} {', '.join(backends)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnkit", description="Convolutional networks on NumPy and CuPy.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train a small CNN on the embedded digits and report accuracy")
    demo.add_argument("--epochs", type=int, default=15)
    demo.add_argument("--batch-size", type=int, default=32)
    demo.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    demo.set_defaults(run=_cmd_demo)

    train = commands.add_parser("train", help="train the small CNN on a dataset")
    train.add_argument("--dataset", choices=DATASETS, default="digits")
    train.add_argument("--data-path", help="folder holding the IDX files (searched in the usual places if omitted)")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--save", help="write the trained model to this .safetensors file")
    train.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    train.set_defaults(run=_cmd_train)

    bench = commands.add_parser("bench", help="time our GEMM, convolution, pooling and training against "
                                              "cuBLAS, cuDNN, NumPy and PyTorch")
    from .bench.cli import add_arguments
    add_arguments(bench)
    bench.set_defaults(run=_cmd_bench)

    info = commands.add_parser("info", help="versions, devices, CUDA and memory")
    info.set_defaults(run=_cmd_info)

    kernels = commands.add_parser("kernels", help="list the ops and their implementations, or compile the kernels")
    kernels.add_argument("--precompile", action="store_true", help="compile every CUDA kernel now")
    kernels.set_defaults(run=_cmd_kernels)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except Exception as error:  # a command-line tool reports, it does not dump a traceback at users
        from .backend import CudaUnavailableError
        from .datasets import DatasetNotFoundError
        if isinstance(error, (CudaUnavailableError, DatasetNotFoundError)):
            print(f"cnnkit {args.command}: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
