"""Data-parallel training throughput: images/s of the small CNN on 1 and on N MPI ranks, in one run.

    python -m cnnkit.bench.distributed --json bench/results/       # 1 and 2 CPU ranks
    python -m cnnkit.bench.distributed --ranks 1,2 --device cuda   # one GPU per rank

Each case is one ``mpirun -n R`` job of this module in worker mode: every rank builds
``small_cnn`` on random 1x28x28 images, trains a warm-up epoch, then times epochs of
``--steps`` steps of ``model.fit(..., distributed=True)`` (``--batch-size`` images per
rank and step, so a step of R ranks trains R times as many images). The figure is
images per second over all ranks, the median epoch, beside the reference measured in
the same run: one rank using every core. On the CPU the cores are split between the
ranks (threads per rank = cores / R), so on a 2-core machine 2 ranks share the same
two cores one rank uses; a 1-rank, 1-thread case shows what one core does alone.
The time of one all-reduce of the whole gradient is measured too.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

_THREAD_VARIABLES = ("CNNKIT_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_RECORDED_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") + _THREAD_VARIABLES


def _worker(args: argparse.Namespace) -> None:
    """One rank of one case; rank 0 prints the case's figures as one JSON line."""
    import cnnkit
    from cnnkit import distributed, losses, optimizers
    from cnnkit.models.zoo import small_cnn

    distributed.init()
    ranks = distributed.size()
    cnnkit.manual_seed(0)
    model = small_cnn((1, 28, 28), num_classes=10)
    model.compile(optimizers.Adam(learning_rate=1e-3), losses.SparseCategoricalCrossentropy(from_logits=True))
    samples = args.batch_size * args.steps * ranks
    rng = np.random.default_rng(1)
    x = rng.random((samples, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, samples)
    fit = dict(batch_size=args.batch_size, epochs=1, verbose=0, device=args.device, distributed=True)
    model.fit(x, y, **fit)  # warm-up: allocation, kernel compilation, first MPI connections
    seconds = []
    for _ in range(args.repeat):
        distributed.barrier()
        started = time.perf_counter()
        model.fit(x, y, **fit)
        distributed.barrier()
        seconds.append(time.perf_counter() - started)
    gradient = model.trainable_weights
    buffer = model.device.xp.zeros(sum(p.size for p in gradient), dtype=np.float32)
    distributed.allreduce(buffer)
    distributed.barrier()
    started = time.perf_counter()
    for _ in range(10):
        distributed.allreduce(buffer)
    float(buffer[0])  # waits for a GPU all-reduce
    allreduce_ms = (time.perf_counter() - started) / 10 * 1e3
    if distributed.is_main_process():
        median = statistics.median(seconds)
        print(json.dumps({"ranks": ranks, "epoch_seconds": seconds, "median_seconds": median,
                          "step_ms": median / args.steps * 1e3, "images_per_second": samples / median,
                          "gradient_values": int(buffer.size), "allreduce_ms": allreduce_ms}), flush=True)


def _cases(rank_counts: list[int], device: str, cores: int) -> list[tuple[int, int]]:
    """(ranks, threads per rank): the reference (1 rank on every core) first."""
    if device != "cpu":
        return [(r, 1) for r in rank_counts]
    cases = [(1, cores)] + [(r, max(1, cores // r)) for r in rank_counts if r > 1]
    if cores > 1:
        cases.append((1, 1))
    return cases


def _run_case(ranks: int, threads: int, args: argparse.Namespace) -> dict:
    from ..distributed import launch
    env = {**os.environ, **{name: str(threads) for name in _THREAD_VARIABLES}}
    command = launch.mpirun_command(ranks) + [sys.executable, "-m", "cnnkit.bench.distributed", "--worker",
                                              "--device", args.device, "--batch-size", str(args.batch_size),
                                              "--steps", str(args.steps), "--repeat", str(args.repeat)]
    job = subprocess.run(command, capture_output=True, text=True, env=env)
    if job.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({job.returncode}):\n{job.stdout}\n{job.stderr}")
    figures = json.loads(job.stdout.strip().splitlines()[-1])
    return {"ranks": ranks, "threads_per_rank": threads, **figures}


def run(args: argparse.Namespace) -> dict:
    from .hardware import LoadMonitor, collect, git_revision, iso_date
    cores = os.cpu_count() or 1
    results = []
    with LoadMonitor() as load:
        for ranks, threads in _cases(args.ranks, args.device, cores):
            case = _run_case(ranks, threads, args)
            results.append(case)
            print(f"  {ranks} rank(s) x {threads} thread(s): {case['images_per_second']:8.1f} images/s, "
                  f"step {case['step_ms']:.1f} ms, gradient all-reduce {case['allreduce_ms']:.2f} ms", flush=True)
    reference = results[0]["images_per_second"]
    for case in results:
        case["ratio_to_reference"] = case["images_per_second"] / reference
    return {
        "schema": "cnnkit-bench-distributed/1",
        "date": iso_date(),
        "git_revision": git_revision(),
        "hardware": collect(),
        "command": " ".join(sys.argv),
        "environment": {name: os.environ.get(name) for name in _RECORDED_VARIABLES},
        "options": {"device": args.device, "ranks": args.ranks, "batch_size_per_rank": args.batch_size,
                    "steps_per_epoch": args.steps, "timed_epochs": args.repeat, "model": "small_cnn 1x28x28"},
        "reference": "1 rank using every core (first case); ratio_to_reference = images/s / reference images/s",
        "cases": results,
        "load": load.result,
    }


def _rank_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected rank counts such as 1,2, got {text!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnkit.bench.distributed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=_rank_counts, default=[1, 2], help="rank counts to measure (default 1,2)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for one GPU per rank")
    parser.add_argument("--batch-size", type=int, default=64, help="images per rank and step (default 64)")
    parser.add_argument("--steps", type=int, default=8, help="steps per timed epoch (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="timed epochs; the median counts (default 3)")
    parser.add_argument("--json", metavar="PATH", help="write the results: a .json file, or a folder")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0
    document = run(args)
    if args.json:
        path = Path(args.json)
        if path.suffix != ".json":
            path = path / f"{document['date'][:10]}-distributed-{args.device}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
