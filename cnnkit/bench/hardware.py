"""What a result was measured on: CPU, BLAS, GPU, driver, library versions, git revision, date, load.

Everything here degrades to ``None`` or a reason rather than raising: a benchmark
on a machine without a GPU, NVML or git still records what it can.
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from .. import backend
from ..version import __version__
from .peaks import lookup_peak
from .telemetry import Nvml, NvmlUnavailable

_ENV_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def iso_date() -> str:
    """Now, in UTC, as ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_revision() -> str | None:
    """The commit of the cnnkit checkout in use, with ``-dirty`` when tracked files differ; None outside git."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if status else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_info() -> dict:
    """CPU model, logical cores and the cores this process may use."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": _cpu_model(), "architecture": platform.machine(), "logical_cores": os.cpu_count(),
            "usable_cores": usable}


def memory_info() -> dict | None:
    """Total and available memory in GiB (Linux's /proc/meminfo), or None elsewhere."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        total, available = (int(fields[key].split()[0]) / 2**20 for key in ("MemTotal", "MemAvailable"))
    except (OSError, KeyError, ValueError):
        return None
    return {"total_gib": total, "available_gib": available}


def numpy_info() -> dict:
    """NumPy's version, the BLAS it was built with, its threads and thread settings from the environment."""
    from ..cpu import blas_threads
    info = {"version": np.__version__, "blas": None, "blas_threads": blas_threads(),
            "thread_environment": {name: os.environ[name] for name in _ENV_THREAD_VARIABLES if name in os.environ}}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = {"name": blas.get("name"), "version": blas.get("version")}
    except Exception:  # older NumPy without mode="dicts", or a build without the section
        pass
    return info


def gpu_status() -> tuple[bool, str]:
    """``(True, "")`` when a CUDA GPU is usable, else ``(False, reason)``."""
    reason = backend.cuda_unavailable_reason()
    return reason is None, reason or ""


def gpu_info(index: int) -> dict:
    """CuPy, CUDA and device facts for ``cuda:index``, NVML's when available, and the datasheet peak."""
    cupy = backend.cupy()
    runtime = cupy.cuda.runtime
    props = runtime.getDeviceProperties(index)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    device = cupy.cuda.Device(index)
    info = {
        "index": index,
        "name": name,
        "compute_capability": f"{props['major']}.{props['minor']}",
        "sm_count": int(props["multiProcessorCount"]),
        "memory_total_gib": int(props["totalGlobalMem"]) / 2**30,
        "l2_cache_mib": int(props.get("l2CacheSize", 0)) / 2**20,
        "pci_bus_id": device.pci_bus_id,
        "cupy_version": cupy.__version__,
        "cuda_runtime_version": _version_text(runtime.runtimeGetVersion()),
        "cuda_driver_api_version": _version_text(runtime.driverGetVersion()),
    }
    try:
        nvml = Nvml(index, info["pci_bus_id"])
    except NvmlUnavailable as error:
        info["nvml"] = {"available": False, "reason": str(error)}
    else:
        info["nvml"] = {"available": True, **nvml.static_info()}
        nvml.close()
    peak = lookup_peak(name)
    info["datasheet_peak"] = None if peak is None else peak.to_dict()
    return info


def _version_text(version: int) -> str:
    return f"{version // 1000}.{(version % 1000) // 10}"


def collect(gpu_index: int | None = None) -> dict:
    """Everything above in one dict (the ``hardware`` section of a results file)."""
    from .torch_ref import torch_info

    hardware = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cnnkit": __version__,
        "cpu": cpu_info(),
        "memory": memory_info(),
        "numpy": numpy_info(),
        "torch": torch_info(),
    }
    if gpu_index is not None:
        hardware["gpu"] = gpu_info(gpu_index)
    return hardware


def _proc_stat_busy_and_steal() -> tuple[float, float] | None:
    """Seconds of busy CPU time (all processes) and of hypervisor steal since boot, from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    ticks = [int(value) for value in fields[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    hertz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hertz, steal / hertz


class LoadMonitor:
    """How busy the machine was while we measured: load averages and CPU time of other processes.

    ``other_cpu_fraction`` is the CPU time used by every process but this one, as a
    fraction of the machine's capacity over the interval (0.5 on a 2-core machine:
    one core's worth of other work, which slows CPU figures). Linux only; elsewhere
    only the load averages are kept.
    """

    def __enter__(self) -> "LoadMonitor":
        self.start_wall = time.perf_counter()
        self.start_stat = _proc_stat_busy_and_steal()
        self.start_own = sum(os.times()[:4])
        self.start_load = _load_average()
        self.result: dict = {}
        return self

    def __exit__(self, *exc_info) -> None:
        wall = time.perf_counter() - self.start_wall
        cores = os.cpu_count() or 1
        self.result = {"load_average_start": self.start_load, "load_average_end": _load_average(),
                       "logical_cores": cores, "seconds": wall}
        end_stat = _proc_stat_busy_and_steal()
        if self.start_stat is not None and end_stat is not None and wall > 0:
            own = sum(os.times()[:4]) - self.start_own
            busy = end_stat[0] - self.start_stat[0]
            # /proc/stat counts in clock ticks (10 ms), so short intervals are clamped into [0, 1]
            self.result["other_cpu_fraction"] = min(1.0, max(0.0, (busy - own) / (wall * cores)))
            self.result["steal_fraction"] = (end_stat[1] - self.start_stat[1]) / (wall * cores)


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None
