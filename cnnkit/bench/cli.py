"""``cnnkit bench``: what it measures where, its arguments, and the run that fills the results document.

The document (written by ``--json``, rendered by :mod:`.report` and :mod:`.plot`) has:
``schema``, ``cnnkit_version``, ``date``, ``git_revision``, ``hardware``,
``telemetry`` (per GPU), ``options``, ``gpu_status``, ``devices`` (per device: its
description, run settings, sizes, copy bandwidth, kernel compile times, machine
load), ``results`` (one :meth:`CaseResult.to_dict` per case), ``speedups``,
``summary`` and ``ratio_definition``.
"""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Callable

from .. import registry
from ..version import __version__
from . import hardware, report
from .device import BenchDevice, RunSettings
from .peaks import lookup_peak
from .results import RATIO_DEFINITION
from .suites import conv, gemm, pool, train
from .telemetry import Nvml, NvmlUnavailable, TelemetrySampler, describe_clock_event_reasons, summarize

SUITES = ("gemm", "conv", "pool", "train")
SCHEMA = "cnnkit-bench/1"


@dataclass(frozen=True)
class Plan:
    """What one device measures: run settings and sizes."""

    settings: RunSettings
    gemm_sizes: tuple[tuple[int, int, int], ...]
    conv_shapes: tuple[conv.ConvShape, ...]
    batch_sizes: tuple[int, ...]
    copy_bytes: int

    def to_dict(self) -> dict:
        return {"settings": asdict(self.settings), "gemm_sizes": [list(size) for size in self.gemm_sizes],
                "conv_shapes": [shape.label for shape in self.conv_shapes], "train_batch_sizes": list(self.batch_sizes),
                "copy_bytes": self.copy_bytes}


def _square(*sizes: int) -> tuple[tuple[int, int, int], ...]:
    return tuple((n, n, n) for n in sizes)


_MIB = 2**20
# The 2-core CPU runs the target conv shapes (bench/README.md) with an eighth of the batch under --quick.
DEFAULT_PLANS = {
    ("cpu", False): Plan(RunSettings(3, 20, 10.0), _square(512, 1024, 2048), conv.ANCHOR_SHAPES, (128, 512),
                         256 * _MIB),
    ("cpu", True): Plan(RunSettings(2, 10, 3.0), _square(512, 2048),
                        tuple(shape.with_batch_divided(8) for shape in conv.ANCHOR_SHAPES), (128,), 64 * _MIB),
    ("cuda", False): Plan(RunSettings(10, 50, 5.0), _square(1024, 2048, 4096, 8192), conv.ANCHOR_SHAPES, (128, 512),
                          1024 * _MIB),
    ("cuda", True): Plan(RunSettings(5, 20, 1.0), _square(1024, 4096), conv.ANCHOR_SHAPES, (128,), 256 * _MIB),
}


@dataclass(frozen=True)
class Options:
    """The parsed command line (see :func:`add_arguments`)."""

    suites: tuple[str, ...] = SUITES
    device: str = "all"
    gemm_sizes: tuple[tuple[int, int, int], ...] | None = None
    batch_sizes: tuple[int, ...] | None = None
    repeat: int | None = None
    warmup: int | None = None
    quick: bool = False
    kernels: str = "cuda"
    tf32: bool = True

    def plan(self, kind: str) -> Plan:
        plan = DEFAULT_PLANS[(kind, self.quick)]
        settings = RunSettings(plan.settings.warmup if self.warmup is None else self.warmup,
                               plan.settings.repeat if self.repeat is None else self.repeat, plan.settings.max_seconds)
        return Plan(settings, self.gemm_sizes or plan.gemm_sizes, plan.conv_shapes,
                    self.batch_sizes or plan.batch_sizes, plan.copy_bytes)

    def to_dict(self) -> dict:
        return {**asdict(self), "suites": list(self.suites)}


# ---------------------------------------------------------------- arguments

def _positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def _gemm_sizes(text: str) -> tuple[tuple[int, int, int], ...]:
    try:
        return tuple(gemm.parse_size(part) for part in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``cnnkit bench`` options."""
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"what to measure: {', '.join(SUITES)} or all (default: all)")
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                        help="cpu, cuda, or all: the CPU and, when one is usable, the GPU (default)")
    parser.add_argument("--sizes", type=_gemm_sizes, help="GEMM sizes, comma-separated: N (square) or MxNxK "
                                                          "(default: 1024..8192 on a GPU, 512..2048 on the CPU)")
    parser.add_argument("--batch-sizes", type=_positive_ints, help="training batch sizes (default: 128,512)")
    parser.add_argument("--repeat", type=int, help="timed calls per measurement (default: 50 GPU, 10 CPU)")
    parser.add_argument("--warmup", type=int, help="untimed calls after the first (default: 10 GPU, 2 CPU)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer sizes and repeats: about a minute on a GPU, under two on 2 CPU cores")
    parser.add_argument("--kernels", choices=("cuda", "reference"), default="cuda",
                        help="on the GPU, run our CUDA kernels (default) or the references through CuPy")
    parser.add_argument("--no-tf32", dest="tf32", action="store_false", help="skip the TF32 GEMM cases")
    parser.add_argument("--json", metavar="PATH", help="write the results: a .json file, or a folder to get "
                                                       "one <date>-<machine>-<cpu|gpu>.json per device")
    parser.add_argument("--plot", metavar="PATH", help="draw ours-vs-reference bars and a roofline to a PNG "
                                                       "(needs matplotlib: the 'plot' extra)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--load", nargs="+", metavar="FILE", help="report saved results files instead of measuring")


def options_from_args(args: argparse.Namespace) -> Options:
    suites = tuple(args.suites) or ("all",)
    unknown = [name for name in suites if name not in SUITES + ("all",)]
    if unknown:
        raise ValueError(f"cnnkit bench: unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)} or all")
    if (args.repeat is not None and args.repeat < 1) or (args.warmup is not None and args.warmup < 0):
        raise ValueError(f"cnnkit bench: --repeat must be at least 1 and --warmup at least 0, "
                         f"got --repeat {args.repeat} and --warmup {args.warmup}")
    return Options(suites=SUITES if "all" in suites else tuple(dict.fromkeys(suites)), device=args.device,
                   gemm_sizes=args.sizes, batch_sizes=args.batch_sizes, repeat=args.repeat, warmup=args.warmup,
                   quick=args.quick, kernels=args.kernels, tf32=args.tf32)


# ---------------------------------------------------------------- running

def _progress_line(result: dict) -> str:
    ours = result["ours"]
    if ours["status"] != "ok":
        text = f"{ours['status'].upper()}: {ours['reason']}"
    else:
        text = f"{report.format_ms(ours['timing']['median_ms'])} ms, {report.format_rate(ours['throughput'])} " \
               f"{result['unit']}"
        reference = result["references"][0] if result["references"] else None
        if reference is not None and reference["status"] == "ok":
            text += f"; {reference['name']} {report.format_ms(reference['timing']['median_ms'])} ms, " \
                    f"ours/ref {report.format_ratio(reference['ratio'])}"
        if result["status"] == "failed":
            text += "; CHECK FAILED"
    return f"  {result['device']:7s} {result['suite']:5s} {result['case']:18s} {result['shape']:22s} {text}"


def _precompile() -> dict:
    """Compile (or load from the disk cache) every kernel file now, so compile time stays out of the timings."""
    from ..cuda import launcher
    cache = launcher.kernel_cache_dir()
    warm = cache.is_dir() and any(cache.iterdir())
    try:
        compiled = [asdict(result) for result in launcher.precompile_all()]
    except Exception as error:  # e.g. the kernel sources are missing from this install
        return {"kernel_cache": str(cache), "cache_had_files": warm, "error": f"{type(error).__name__}: {error}",
                "files": []}
    return {"kernel_cache": str(cache), "cache_had_files": warm, "files": compiled}


def _start_telemetry(bench: BenchDevice, device_info: dict, stack: ExitStack) -> tuple[TelemetrySampler | None, dict]:
    """An NVML sampler running until ``stack`` closes, or None and the reason NVML is unavailable."""
    try:
        nvml = Nvml(bench.device.index, device_info.get("pci_bus_id"))
    except NvmlUnavailable as error:
        return None, {"available": False, "reason": str(error)}
    stack.callback(nvml.close)
    sampler = stack.enter_context(TelemetrySampler(nvml.sample))
    return sampler, {"available": True, "interval_s": sampler.interval_s}


def _suite_results(name: str, bench: BenchDevice, plan: Plan, options: Options, peak, copy_gbps):
    if name == "gemm":
        return gemm.run(bench, list(plan.gemm_sizes), peak, tf32=options.tf32)
    if name == "conv":
        return conv.run(bench, plan.conv_shapes, peak)
    if name == "pool":
        return pool.run(bench, tuple(shape.output_shape for shape in plan.conv_shapes), copy_gbps, peak)
    return train.run(bench, plan.batch_sizes)


def run_device(spec: str, options: Options, gpu_info: dict | None, log: Callable[[str], None]) -> tuple:
    """Every chosen suite on one device: ``(results, device section, telemetry section or None)``."""
    plan = options.plan("cuda" if spec.startswith("cuda") else "cpu")
    bench = BenchDevice(spec, plan.settings)
    if bench.is_cuda:
        description, peak = gpu_info["name"], lookup_peak(gpu_info["name"])
    else:
        cpu = hardware.cpu_info()
        description, peak = f"{cpu['model']}, {cpu['usable_cores']} cores", None
    section: dict = {"description": description, **plan.to_dict()}
    results: list[dict] = []
    telemetry = None
    log(f"Measuring on {spec} ({description})")
    with ExitStack() as stack:
        load = stack.enter_context(hardware.LoadMonitor())
        sampler = None
        if bench.is_cuda:
            stack.enter_context(registry.use_cuda_kernels(options.kernels == "cuda"))
            section["kernels"] = options.kernels
            if options.kernels == "cuda":
                section["compile"] = _precompile()
            sampler, telemetry = _start_telemetry(bench, gpu_info, stack)
        started = time.perf_counter()
        copy_gbps = None
        try:
            section["copy_bandwidth"] = pool.copy_bandwidth(bench, plan.copy_bytes)
            copy_gbps = section["copy_bandwidth"]["gbps"]
            log(f"  copy bandwidth: {copy_gbps:,.1f} GB/s")
        except Exception as error:  # reported; the suites still run
            section["copy_bandwidth_error"] = f"{type(error).__name__}: {error}"
            log(f"  copy bandwidth: FAILED ({section['copy_bandwidth_error']})")
        for name in options.suites:
            if sampler is not None:
                sampler.set_phase(name)
            for result in _suite_results(name, bench, plan, options, peak, copy_gbps):
                results.append(result.to_dict())
                log(_progress_line(results[-1]))
            bench.release_memory()
        section["seconds"] = time.perf_counter() - started
    section["load"] = load.result
    if sampler is not None:
        summary = summarize(sampler.samples)
        telemetry.update(summary=summary, samples=sampler.samples, sample_errors=sampler.errors,
                         clock_event_reasons=describe_clock_event_reasons(
                             summary["overall"].get("clocks_event_reasons_any", 0)))
    return results, section, telemetry


def run_benchmarks(options: Options, devices: list[str], log: Callable[[str], None] = print) -> dict:
    """Measure ``options.suites`` on each of ``devices`` and return the results document."""
    gpu_index = next((int(spec.partition(":")[2] or 0) for spec in devices if spec.startswith("cuda")), None)
    document = {
        "schema": SCHEMA, "cnnkit_version": __version__, "date": hardware.iso_date(),
        "git_revision": hardware.git_revision(), "hardware": hardware.collect(gpu_index),
        "options": options.to_dict(), "ratio_definition": RATIO_DEFINITION,
        "devices": {}, "telemetry": {}, "results": [],
    }
    for spec in devices:
        try:
            results, section, telemetry = run_device(spec, options, document["hardware"].get("gpu"), log)
        except Exception as error:  # outside any case (device set-up): reported, and the other device still runs
            log(f"  {spec}: FAILED ({type(error).__name__}: {error})")
            results, section, telemetry = [], {"description": spec, "error": f"{type(error).__name__}: {error}"}, None
        document["results"] += results
        document["devices"][spec] = section
        if telemetry is not None:
            document["telemetry"][spec] = telemetry
    document["speedups"] = report.speedups(document["results"])
    document["summary"] = report.summarize(document["results"])
    return document


def run_bench(args: argparse.Namespace) -> int:
    """The ``cnnkit bench`` command: measure (or ``--load``), print, write JSON and plot; 1 if anything failed."""
    if args.load:
        document = report.load_json(args.load)
    else:
        try:
            options = options_from_args(args)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
        available, reason = hardware.gpu_status()
        devices = ["cpu"] if options.device in ("cpu", "all") else []
        if options.device in ("cuda", "all"):
            if available:
                devices.append("cuda:0")
            elif options.device == "cuda":
                print(f"cnnkit bench: no GPU found ({reason})", file=sys.stderr)
                return 2
            else:
                print(f"No GPU found, measuring the CPU ({reason}).", flush=True)
        document = run_benchmarks(options, devices, log=lambda line: print(line, flush=True))
        document["gpu_status"] = {"available": available, "reason": reason or None}
    print()
    print(report.format_tables(document, markdown=args.markdown), end="")
    if args.json:
        for path in report.write_json(document, args.json):
            print(f"Wrote {path}")
    if args.plot:
        from .plot import plot_results
        print(f"Wrote {plot_results(document, args.plot)}")
    return 1 if report.something_failed(document) else 0
