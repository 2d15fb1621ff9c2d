"""The thread pool that runs batch shards, its size, and the BLAS library's threads.

One level of parallelism per operation: an op either hands its cores to BLAS (one
large product) or shards the batch over this pool, and then every shard calls BLAS
single-threaded. Two levels at once put twice as many busy threads as cores, and on a
machine where another process holds a core the BLAS threads' spin-waiting made a
training run 20 times slower. BLAS threads are controlled through threadpoolctl.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import lru_cache
from typing import Callable, Sequence

from threadpoolctl import ThreadpoolController

_num_threads = int(os.environ.get("CNNKIT_NUM_THREADS", os.cpu_count() or 1))
_executor: ThreadPoolExecutor | None = None


def get_num_threads() -> int:
    return _num_threads


def set_num_threads(count: int) -> None:
    """Use ``count`` threads (shards) for the CPU ops; 1 runs everything on the calling thread."""
    global _num_threads, _executor
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"set_num_threads: count must be a positive int, got {count!r}")
    if _executor is not None and count != _num_threads:
        _executor.shutdown(wait=True)
        _executor = None
    _num_threads = count


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController | None:
    """The BLAS libraries loaded in this process (NumPy's), found once."""
    controller = ThreadpoolController().select(user_api="blas")
    return controller if controller.lib_controllers else None


def blas_threads() -> int | None:
    """The number of threads NumPy's BLAS uses now, or None when it cannot be told."""
    controller = _blas_controller()
    return None if controller is None else max(lib.num_threads for lib in controller.lib_controllers)


def single_threaded_blas():
    """A context in which BLAS runs on the calling thread only (for work already spread over the cores)."""
    controller = _blas_controller()
    return nullcontext() if controller is None else controller.limit(limits=1)


def run_all(tasks: Sequence[Callable[[], object]]) -> list:
    """Run the tasks on the pool (the first on the calling thread) and return their results in order.

    The tasks already use the cores, so BLAS runs single-threaded meanwhile.
    """
    global _executor
    if len(tasks) == 1:
        return [tasks[0]()]
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=_num_threads - 1, thread_name_prefix="cnnkit-cpu")
    with single_threaded_blas():
        futures = [_executor.submit(task) for task in tasks[1:]]
        first = tasks[0]()
        return [first] + [future.result() for future in futures]
