"""The ``cnnkit`` command: ``demo``, ``train``, ``bench``, ``info`` and ``kernels``.

A mistake in how a command is called (a misspelled device, ``--epochs 0``, a data or
output path that cannot be used) is reported as argparse reports its own errors: one
line on stderr and exit status 2, before any training starts. Anything else is a bug
and keeps its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

DATASETS = ("digits", "fashion-mnist", "mnist")


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with every error on one line (usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, unless there is none or the help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        flag = action.nargs == 0  # --quick, --no-tf32: their default is "not given"
        if flag or action.default in (None, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


# ---------------------------------------------------------------- argument types

def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def _device(text: str) -> str:
    """A device spelled as cnnkit understands it (whether it exists is checked before the work starts)."""
    from .backend import _parse_device
    try:
        _parse_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).replace("device must be", "expected")) from None
    return text


def _check_device(device: str) -> None:
    from .backend import CudaUnavailableError, Device
    try:
        Device(device)
    except CudaUnavailableError as error:
        raise UsageError(f"--device {device}: {error}") from None


def _check_writable(path: str, option: str, folder: bool = False) -> None:
    """Refuse an output path that cannot be written, before any time is spent on the work.

    The nearest existing folder is probed by creating a file in it: permissions alone
    do not tell (root, read-only file systems, /proc).
    """
    target = Path(path).expanduser()
    if target.is_dir() and not folder:
        raise UsageError(f"{option} {path}: is a folder, give a file name")
    existing = target if folder else target.parent
    while not existing.exists():  # the missing folders are created when writing
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UsageError(f"{option} {path}: cannot write in {existing} ({error.strerror or error})") from None
    if target.is_file() and not os.access(target, os.W_OK):
        raise UsageError(f"{option} {path}: the file exists and is read-only")


def _check_save_path(path: str | None) -> None:
    if path is None:
        return
    from .models.saving import check_file_name
    try:
        check_file_name(path, "--save")
    except ValueError as error:
        raise UsageError(str(error)) from None
    _check_writable(path, "--save")


# ---------------------------------------------------------------- demo and train

def _load(dataset: str, path: str | None):
    from . import datasets
    if dataset == "digits":
        if path is not None:
            raise UsageError("--data-path: the digits ship with cnnkit; --data-path is for fashion-mnist and mnist")
        return datasets.load_digits()
    if path is not None and not Path(path).expanduser().is_dir():
        raise UsageError(f"--data-path {path}: no such folder")
    loader = datasets.load_fashion_mnist if dataset == "fashion-mnist" else datasets.load_mnist
    try:
        return loader(path)
    except datasets.DatasetNotFoundError as error:
        raise UsageError(" ".join(line.strip() for line in str(error).splitlines())) from None


def _class_names(dataset: str) -> list[str]:
    from . import datasets
    if dataset == "fashion-mnist":
        return list(datasets.FASHION_MNIST_CLASS_NAMES)
    return [str(i) for i in range(10)]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _train_and_report(dataset: str, epochs: int, batch_size: int, device: str, seed: int, path: str | None = None,
                      save: str | None = None, verbose: int = 1, validation_split: float = 0.0,
                      distributed: bool = False) -> float:
    """Train the small CNN on ``dataset``; print accuracy, confusion matrix and timing; return test accuracy.

    Everything the command line names (device, data, output path) is checked before training.
    """
    import cnnkit
    from .metrics import ConfusionMatrix

    _check_device(device)
    _check_save_path(save)
    cnnkit.manual_seed(seed)
    (x_train, y_train), (x_test, y_test) = _load(dataset, path)
    model = cnnkit.models.zoo.small_cnn(x_train.shape[1:], num_classes=10)
    model.compile(cnnkit.optimizers.Adam(learning_rate=1e-3),
                  cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.to(device)
    held_out = int(len(x_train) - int(len(x_train) * (1 - validation_split)))
    print(f"Training the small CNN on {dataset} ({len(x_train) - held_out} training and {len(x_test)} test images, "
          f"{x_train.shape[1:]} each) on {cnnkit.Device(device)} for {_plural(epochs, 'epoch')}", flush=True)
    if held_out:
        print(f"Holding out the last {held_out} training images ({validation_split:.0%}) for validation "
              f"(--validation-split 0 trains on all)", flush=True)
    started = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=verbose,
              validation_split=validation_split, distributed=distributed)
    seconds = time.perf_counter() - started
    logits = model.predict(x_test, batch_size=256)
    matrix = ConfusionMatrix(num_classes=10)
    matrix.update_state(y_test, logits)
    accuracy = float((logits.argmax(axis=1) == y_test).mean())
    print(f"\nTest accuracy: {accuracy:.2%}")
    print(f"Training time: {seconds:.1f} s ({epochs * (len(x_train) - held_out) / seconds:,.0f} images/s)")
    print("\nConfusion matrix (rows: true class, columns: predicted):")
    print(matrix.format(class_names=_class_names(dataset)))
    if save:
        print(f"\nSaved the model to {model.save(save)}")
    return accuracy


def _cmd_demo(args) -> int:
    _train_and_report("digits", args.epochs, args.batch_size, args.device, args.seed, verbose=args.verbose,
                      validation_split=args.validation_split)
    return 0


def _cmd_train(args) -> int:
    report, save = contextlib.nullcontext(), args.save
    if args.distributed:
        from . import distributed
        distributed.init()
        if not distributed.is_main_process():  # every rank trains; rank 0 alone reports and saves
            report, save = contextlib.redirect_stdout(io.StringIO()), None
    with report:
        _train_and_report(args.dataset, args.epochs, args.batch_size, args.device, args.seed, args.data_path,
                          save, verbose=args.verbose, validation_split=args.validation_split,
                          distributed=args.distributed)
    return 0


# ---------------------------------------------------------------- bench, info, kernels

def _cmd_bench(args) -> int:
    from .bench.cli import run_bench
    for name in args.load or []:
        if not Path(name).is_file():
            raise UsageError(f"--load {name}: no such file")
    if args.json:
        _check_writable(args.json, "--json", folder=not args.json.endswith(".json"))
    if args.plot:
        _check_writable(args.plot, "--plot")
    return run_bench(args)


def _cmd_info(args) -> int:
    import cnnkit
    from . import backend, cpu, cuda, registry
    from .bench import hardware

    print(f"cnnkit {cnnkit.__version__}")
    print(f"Python {platform.python_version()} on {platform.platform()}")
    numpy_info = hardware.numpy_info()
    blas = numpy_info["blas"] or {}
    print(f"NumPy {np.__version__}, BLAS: {blas.get('name', 'unknown')} {blas.get('version') or ''}".rstrip())
    cpu_info = hardware.cpu_info()
    memory = hardware.memory_info()
    print(f"CPU: {cpu_info['model']} ({cpu_info['architecture']}), {cpu_info['logical_cores']} logical cores, "
          f"{cpu_info['usable_cores']} usable by this process")
    if memory:
        print(f"Memory: {memory['total_gib']:.1f} GiB, {memory['available_gib']:.1f} GiB available")
    print(f"Threads: {cpu.get_num_threads()} for cnnkit's CPU ops (CNNKIT_NUM_THREADS), "
          f"BLAS {numpy_info.get('blas_threads') or 'unknown'}"
          + "".join(f", {name}={value}" for name, value in numpy_info["thread_environment"].items()))
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
    print(f"CUDA kernels: {'ours' if registry.cuda_kernels_enabled() else 'off (references on CuPy)'}")
    print(f"Default device: {cnnkit.get_default_device()}")
    return 0


def _implementation_name(function) -> str:
    return f"{function.__module__.removeprefix('cnnkit.')}.{function.__name__}"


def _cmd_kernels(args) -> int:
    from . import backend, registry
    if args.precompile:
        from .cuda import launcher
        results = launcher.precompile_all()
        for result in results:
            print(f"{result.file_name}: {'ok' if result.ok else 'FAILED'} ({result.seconds:.1f} s)")
            if not result.ok:
                print(result.message)
        return 0 if all(result.ok for result in results) else 1
    rows = [("op", "device", "runs now", "why")]
    for op in registry.registered_ops():
        for device, on_gpu in (("cpu", False), ("cuda", True)):
            function, reason = registry.choose(op, on_gpu)
            rows.append((op if device == "cpu" else "", device, _implementation_name(function), reason))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
        if index == 0:
            print("  ".join("-" * width for width in widths) + "  " + "-" * len(row[3]))
    gpu_reason = backend.cuda_unavailable_reason()
    if gpu_reason is not None:
        print(f"\nNo GPU here ({gpu_reason}); the cuda rows say what would run on one.")
    return 0


# ---------------------------------------------------------------- the parser

def _add_training_arguments(parser: argparse.ArgumentParser, epochs: int, batch_size: int) -> None:
    parser.add_argument("--epochs", type=_positive_int, default=epochs, help="passes over the training images")
    parser.add_argument("--batch-size", type=_positive_int, default=batch_size, help="images per step")
    parser.add_argument("--validation-split", type=_fraction, default=0.1,
                        help="fraction of the training images held out to report val_loss and val_accuracy "
                             "each epoch; 0 trains on all")
    parser.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling and dropout")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="0 silent, 1 a progress bar per epoch, 2 one line per epoch")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnkit", description="Convolutional networks on NumPy and CuPy.",
                     formatter_class=_HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=description, formatter_class=_HelpFormatter)

    demo = command("demo", "train a small CNN on the embedded digits and report accuracy",
                   "Train the small CNN (two conv blocks with batch norm, a dense head) on the 8x8 digits that "
                   "ship with cnnkit, showing validation metrics per epoch, then report test accuracy, a "
                   "confusion matrix and images/s.")
    _add_training_arguments(demo, epochs=15, batch_size=32)
    demo.set_defaults(run=_cmd_demo)

    train = command("train", "train the small CNN on a dataset",
                    "Train the small CNN on digits, Fashion-MNIST or MNIST, holding out part of the training "
                    "images for validation, then report test accuracy, a confusion matrix and images/s, and "
                    "optionally save the model. Paths and the device are checked before training starts.")
    train.add_argument("--dataset", choices=DATASETS, default="digits", help="what to train on")
    train.add_argument("--data-path", help="the folder holding the IDX files (if omitted: $CNNKIT_DATA, "
                                           "~/.cache/cnnkit/<dataset>, /usr/share/datasets/<dataset>)")
    _add_training_arguments(train, epochs=10, batch_size=128)
    train.add_argument("--save", metavar="PATH", help="write the trained model to this .safetensors file")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel over the ranks of `mpirun -n N cnnkit train ...`; --batch-size is per rank")
    train.set_defaults(run=_cmd_train)

    bench = command("bench", "time our GEMM, convolution, pooling and training against cuBLAS, cuDNN, NumPy "
                             "and PyTorch",
                    "Time cnnkit's GEMM, convolution, pooling and a training step beside the references "
                    "(BLAS/cuBLAS, cuDNN, PyTorch) measured in the same run. Without --device: the CPU, and "
                    "the GPU when there is one.")
    from .bench.cli import add_arguments
    add_arguments(bench)
    bench.set_defaults(run=_cmd_bench)

    info = command("info", "versions, CPU, memory, BLAS, threads, devices and CUDA",
                   "Show versions, the CPU (model, cores), memory, the BLAS library and thread counts, the "
                   "CUDA devices and the kernel cache.")
    info.set_defaults(run=_cmd_info)

    kernels = command("kernels", "which implementation of each op runs on each device and why, or compile the "
                                 "kernels",
                      "A table of every op: the implementation that runs now on the CPU and on a GPU, and why "
                      "(CNNKIT_KERNELS chooses our CUDA kernels or the references on CuPy).")
    kernels.add_argument("--precompile", action="store_true", help="compile every CUDA kernel now")
    kernels.set_defaults(run=_cmd_kernels)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader went away (cnnkit kernels | head): nothing left to say
        # Python's recipe: point stdout at devnull so the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # a user's mistake is one line; anything else is a bug and keeps its traceback
        from .backend import CudaUnavailableError
        if isinstance(error, (UsageError, CudaUnavailableError)):
            print(f"cnnkit {args.command}: error: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
