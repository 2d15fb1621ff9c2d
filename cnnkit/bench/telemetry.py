"""GPU telemetry through NVML (the ``nvidia-ml-py`` package): what the card did while we timed it.

A benchmark figure means little without the clocks, power and temperature it was
measured at: a card that hits its power limit or heats up lowers its clocks, and
the same kernel runs slower. :class:`Nvml` reads one GPU's fixed facts (name,
driver, CUDA driver version, maximum clocks, power limit) and one sample of its
state; :class:`TelemetrySampler` takes such samples on a background thread every
``interval_s`` seconds, tagged with the benchmark phase that was running, and
:func:`summarize` reduces them to min/median/max per field.

NVML needs the NVIDIA driver; without it (or without the package) :class:`Nvml`
raises :class:`NvmlUnavailable` with the reason, which the benchmark reports.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

SAMPLE_FIELDS = ("sm_clock_mhz", "memory_clock_mhz", "power_w", "temperature_c", "memory_used_mib",
                 "utilization_gpu_percent", "clocks_event_reasons")

# NVML's clocks-event-reason bits: why the clocks were below their maximum.
CLOCK_EVENT_REASONS = {
    0x1: "idle", 0x2: "application clocks setting", 0x4: "software power cap", 0x8: "hardware slowdown",
    0x10: "sync boost", 0x20: "software thermal slowdown", 0x40: "hardware thermal slowdown",
    0x80: "hardware power brake", 0x100: "display clock setting",
}


def describe_clock_event_reasons(mask: int) -> list[str]:
    """The names of the reasons set in an NVML clocks-event-reasons bit mask."""
    return [name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit]


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used here; the message says why."""


def _import_pynvml():
    try:
        import pynvml
    except ImportError as error:
        raise NvmlUnavailable(f"nvidia-ml-py is not installed ({error})") from None
    return pynvml


def _or_none(read: Callable[[], Any]) -> Any:
    """A value NVML may not support on this card or driver: None instead of an error."""
    try:
        return read()
    except Exception:  # pynvml.NVMLError_NotSupported and friends, or a missing symbol
        return None


def _cuda_version_text(version: int | None) -> str | None:
    """NVML and CUDA encode versions as 1000·major + 10·minor (12040 -> '12.4')."""
    if not version:
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


class Nvml:
    """NVML handle for the GPU that CUDA calls ``cuda_index``.

    CUDA and NVML may number GPUs differently (``CUDA_VISIBLE_DEVICES``, ordering), so
    the card is found by its PCI bus id when one is given, else by index.

    Args:
        cuda_index: the CUDA device index, for the record.
        pci_bus_id: the card's PCI bus id as CUDA reports it (e.g. ``"0000:19:00.0"``).
    """

    def __init__(self, cuda_index: int, pci_bus_id: str | None = None):
        self.pynvml = _import_pynvml()
        try:
            self.pynvml.nvmlInit()
        except Exception as error:
            raise NvmlUnavailable(f"NVML could not start ({type(error).__name__}: {error}); "
                                  f"is the NVIDIA driver installed?") from None
        self.cuda_index = cuda_index
        self.matched_by = "index"
        handle = None
        if pci_bus_id:
            handle = _or_none(lambda: self.pynvml.nvmlDeviceGetHandleByPciBusId(pci_bus_id))
            self.matched_by = "pci_bus_id"
        if handle is None:
            self.matched_by = "index"
            try:
                handle = self.pynvml.nvmlDeviceGetHandleByIndex(cuda_index)
            except Exception as error:
                raise NvmlUnavailable(f"NVML has no device {cuda_index} ({error})") from None
        self.handle = handle

    def static_info(self) -> dict:
        """Facts that do not change during a run."""
        nvml, handle = self.pynvml, self.handle
        power_limit = _or_none(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
        memory = _or_none(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        return {
            "name": _or_none(lambda: nvml.nvmlDeviceGetName(handle)),
            "uuid": _or_none(lambda: nvml.nvmlDeviceGetUUID(handle)),
            "driver_version": _or_none(nvml.nvmlSystemGetDriverVersion),
            "cuda_driver_version": _cuda_version_text(_or_none(nvml.nvmlSystemGetCudaDriverVersion)),
            "max_sm_clock_mhz": _or_none(lambda: nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM)),
            "max_memory_clock_mhz": _or_none(lambda: nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_MEM)),
            "power_limit_w": None if power_limit is None else power_limit / 1e3,
            "memory_total_mib": None if memory is None else memory.total / 2**20,
            "nvml_matched_by": self.matched_by,
        }

    def sample(self) -> dict:
        """The card's state now (fields of :data:`SAMPLE_FIELDS`; None where unsupported)."""
        nvml, handle = self.pynvml, self.handle
        power = _or_none(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        memory = _or_none(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        utilization = _or_none(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
        reasons = _or_none(lambda: nvml.nvmlDeviceGetCurrentClocksEventReasons(handle))
        return {
            "sm_clock_mhz": _or_none(lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
            "memory_clock_mhz": _or_none(lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM)),
            "power_w": None if power is None else power / 1e3,
            "temperature_c": _or_none(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
            "memory_used_mib": None if memory is None else memory.used / 2**20,
            "utilization_gpu_percent": None if utilization is None else utilization.gpu,
            "clocks_event_reasons": reasons,
        }

    def close(self) -> None:
        _or_none(self.pynvml.nvmlShutdown)


class TelemetrySampler:
    """Calls ``sample()`` every ``interval_s`` seconds on a daemon thread, tagging each with the phase.

    Use as a context manager; :meth:`set_phase` names what runs now (e.g. ``"gemm"``).

    Args:
        sample: returns a dict of readings.
        interval_s: seconds between samples.
        now: the time source, in seconds (tests pass a fake one).
    """

    def __init__(self, sample: Callable[[], dict], interval_s: float = 0.2, now: Callable[[], float] = time.monotonic):
        self._sample, self.interval_s, self._now = sample, interval_s, now
        self.samples: list[dict] = []
        self.phase = "start"
        self.errors = 0
        self._started = now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cnnkit-bench-telemetry", daemon=True)

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.take()

    def take(self) -> None:
        """Take one sample now (the thread calls this; so can callers, at phase changes)."""
        try:
            reading = self._sample()
        except Exception:  # a failing reading must not stop the benchmark; the count is reported
            self.errors += 1
            return
        self.samples.append({"t_s": round(self._now() - self._started, 3), "phase": self.phase, **reading})

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.take()

    def __enter__(self) -> "TelemetrySampler":
        self.take()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.take()


def _stats(values: list) -> dict | None:
    numbers = [float(v) for v in values if v is not None]
    if not numbers:
        return None
    return {"min": min(numbers), "median": float(np.median(numbers)), "max": max(numbers)}


def summarize(samples: list[dict], fields: tuple = SAMPLE_FIELDS) -> dict:
    """min/median/max of each numeric field over all samples and per phase.

    Returns:
        ``{"samples": n, "overall": {field: stats}, "phases": {phase: {"samples": n, field: stats}}}``;
        ``clocks_event_reasons`` becomes the bitwise OR of every sample's reasons.
    """
    numeric = [f for f in fields if f != "clocks_event_reasons"]

    def reduce(rows: list[dict]) -> dict:
        out: dict[str, Any] = {"samples": len(rows)}
        for name in numeric:
            stats = _stats([row.get(name) for row in rows])
            if stats is not None:
                out[name] = stats
        if "clocks_event_reasons" in fields:
            reasons = [row.get("clocks_event_reasons") for row in rows if row.get("clocks_event_reasons") is not None]
            if reasons:
                combined = 0
                for value in reasons:
                    combined |= int(value)
                out["clocks_event_reasons_any"] = combined
        return out

    phases: dict[str, list[dict]] = {}
    for row in samples:
        phases.setdefault(row["phase"], []).append(row)
    return {"samples": len(samples), "overall": reduce(samples),
            "phases": {phase: reduce(rows) for phase, rows in phases.items()}}
