"""The thread pool that runs batch shards, and its size."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

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


def run_all(tasks: Sequence[Callable[[], object]]) -> list:
    """Run the tasks on the pool (the first on the calling thread) and return their results in order."""
    global _executor
    if len(tasks) == 1:
        return [tasks[0]()]
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=_num_threads - 1, thread_name_prefix="cnnkit-cpu")
    futures = [_executor.submit(task) for task in tasks[1:]]
    first = tasks[0]()
    return [first] + [future.result() for future in futures]
