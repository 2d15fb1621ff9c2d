"""Start a worker of ``workers.py`` on N MPI ranks with ``mpirun``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cnnkit.distributed.launch import missing_reason, mpirun_command

WORKERS = Path(__file__).with_name("workers.py")
ROOT = Path(__file__).resolve().parents[2]

MPI_MISSING = missing_reason()


def run_ranks(ranks: int, worker: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``mpirun -n ranks python workers.py worker args...``, one BLAS thread per rank (2 ranks share 2 cores)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "CNNKIT_NUM_THREADS": "1"}
    command = mpirun_command(ranks) + [sys.executable, str(WORKERS), worker, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
