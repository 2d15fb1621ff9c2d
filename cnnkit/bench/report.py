"""Reporting: the terminal (or Markdown) tables, CPU-vs-GPU speed-ups, and the JSON files.

Everything here reads the results *document*: the plain dict that is written as
JSON (see :func:`cnnkit.bench.cli.run_benchmarks` for its keys), so a saved file
renders exactly as the run that made it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

from .results import ABSENT, FAILED, OK, SKIPPED

SUITE_TITLES = {"gemm": "GEMM", "conv": "Convolution 3x3", "pool": "Max pooling 2x2", "train": "Small CNN training"}
_REASON_WIDTH = 160
# Other processes using more than this fraction of the CPUs make CPU timings untrustworthy.
BUSY_MACHINE = 0.1


# ---------------------------------------------------------------- derived figures

def speedups(results: Iterable[dict]) -> list[dict]:
    """GPU over CPU throughput for every case measured on both (matched by ``key``).

    Throughput rather than time, so a case run with a smaller batch on the CPU still
    compares; where the shapes are equal the two ratios are the same.
    """
    by_key: dict[str, dict[str, dict]] = {}
    for result in results:
        if result["status"] == OK:
            side = "cpu" if result["device"] == "cpu" else "gpu"
            by_key.setdefault(result["key"], {}).setdefault(side, result)
    rows = []
    for key, sides in by_key.items():
        if "cpu" in sides and "gpu" in sides:
            cpu, gpu = sides["cpu"], sides["gpu"]
            rows.append({"key": key, "suite": cpu["suite"], "case": cpu["case"], "unit": cpu["unit"],
                         "cpu_shape": cpu["shape"], "gpu_shape": gpu["shape"], "gpu_device": gpu["device"],
                         "cpu_throughput": cpu["ours"]["throughput"], "gpu_throughput": gpu["ours"]["throughput"],
                         "speedup": gpu["ours"]["throughput"] / cpu["ours"]["throughput"]})
    return rows


def summarize(results: Iterable[dict]) -> dict:
    """Counts of cases by status and of references absent or failed."""
    results = list(results)
    references = [reference for result in results for reference in result["references"]]
    return {
        "cases": len(results),
        "ok": sum(result["status"] == OK for result in results),
        "failed": sum(result["status"] == FAILED for result in results),
        "skipped": sum(result["status"] == SKIPPED for result in results),
        "references_failed": sum(reference["status"] == FAILED for reference in references),
        "references_absent": sum(reference["status"] == ABSENT for reference in references),
    }


def something_failed(document: dict) -> bool:
    """True when a device, a case or a reference failed (absent references and skipped cases are not failures)."""
    summary = summarize(document["results"])
    device_failed = any("error" in device for device in document.get("devices", {}).values())
    return bool(summary["failed"] or summary["references_failed"] or device_failed)


# ---------------------------------------------------------------- formatting

def format_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def format_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _REASON_WIDTH else text[:_REASON_WIDTH - 3] + "..."


class _Notes:
    """Numbered footnotes for failures and absences, one number per distinct text."""

    def __init__(self):
        self.texts: list[str] = []

    def mark(self, label: str, text: str) -> str:
        text = _one_line(text)
        if text not in self.texts:
            self.texts.append(text)
        return f"{label} [{self.texts.index(text) + 1}]"

    def lines(self) -> list[str]:
        return [f"  [{number}] {text}" for number, text in enumerate(self.texts, 1)]


def _status_cell(figure: dict, notes: _Notes, absent: str = "absent") -> str:
    """The cell of a figure that did not run: FAILED, or ``absent`` (what an absent one is called here)."""
    label = "FAILED" if figure["status"] == FAILED else absent
    return notes.mark(label, f"{figure['name']}: {figure['reason']}")


def _check_cell(result: dict, notes: _Notes) -> str:
    checked = result.get("check")
    if not checked:
        return "-"
    if checked.get("ok"):
        return "ok"
    detail = ", ".join(f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}"
                       for name, value in checked.items() if name not in ("name", "ok"))
    return notes.mark("FAIL", f"{result['case']} {result['shape']}: {checked['name']}: {detail}")


def _rows(results: list[dict], notes: _Notes) -> list[list[str]]:
    rows = []
    for result in results:
        ours, timing = result["ours"], result["ours"]["timing"]
        peaks = result["peaks"]
        fraction = peaks[0]["fraction"] if peaks else None
        missing = None if ours["status"] == OK else _status_cell(ours, notes, absent="skipped")
        references = result["references"] or [None]
        for index, reference in enumerate(references):
            if index == 0:
                row = [result["case"], result["shape"], ours["name"]]
                if missing is not None:
                    row += [missing, "-", "-", "-", "-", "-"]
                else:
                    row += [format_ms(timing["median_ms"]), f"{100 * timing['spread']:.1f}%", str(timing["repeats"]),
                            format_rate(ours["throughput"]), "-" if fraction is None else f"{100 * fraction:.0f}%",
                            format_ms(timing["first_call_ms"])]
                row.append(_check_cell(result, notes))
            else:
                row = [""] * 10
            if reference is None:
                row += ["-", "-", "-", "-"]
            elif reference["status"] != OK:
                row += [reference["name"], _status_cell(reference, notes), "-", "-"]
            else:
                row += [reference["name"], format_ms(reference["timing"]["median_ms"]),
                        format_rate(reference["throughput"]), format_ratio(reference["ratio"])]
            rows.append(row)
    return rows


def _render(header: list[str], rows: list[list[str]], markdown: bool, numeric: set[int]) -> list[str]:
    """A table as Markdown, or as aligned text with the ``numeric`` columns right-justified."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return lines + ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]

    def line(row):
        return "  ".join(cell.rjust(width) if i in numeric else cell.ljust(width)
                         for i, (cell, width) in enumerate(zip(row, widths))).rstrip()
    return [line(header), line(["-" * width for width in widths])] + [line(row) for row in rows]


def format_tables(document: dict, markdown: bool = False) -> str:
    """Every suite's table per device, device figures, speed-ups and the summary, as text or Markdown."""
    lines: list[str] = []
    notes = _Notes()
    heading = "### " if markdown else "== "
    devices = document.get("devices", {})
    groups: dict[tuple[str, str], list[dict]] = {}
    for result in document["results"]:
        groups.setdefault((result["device"], result["suite"]), []).append(result)
    for (device, suite), results in groups.items():
        unit = results[0]["unit"]
        description = devices.get(device, {}).get("description", device)
        lines += ["", f"{heading}{SUITE_TITLES.get(suite, suite)} on {device} ({description})", ""]
        header = ["case", "shape", "ours", "ms", "IQR", "n", unit, "% peak", "1st call ms", "check",
                  "reference", "ref ms", f"ref {unit}", "ours/ref"]
        lines += _render(header, _rows(results, notes), markdown, numeric={3, 4, 5, 6, 7, 8, 11, 12, 13})
        peak_names = sorted({result["peaks"][0]["name"] + f" = {format_rate(result['peaks'][0]['value'])} {unit}"
                             for result in results if result["peaks"]})
        lines.append("")
        if peak_names:
            lines.append(f"% peak is of: {'; '.join(peak_names)}.")
    lines += [""] + _device_lines(document, heading)
    rows = document.get("speedups") or speedups(document["results"])
    if rows:
        lines += ["", f"{heading}GPU over CPU (throughput ratio, ours on both)", ""]
        lines += _render(["case", "CPU shape", "GPU shape", "CPU", "GPU", "unit", "GPU/CPU"],
                         [[row["case"], row["cpu_shape"], row["gpu_shape"], format_rate(row["cpu_throughput"]),
                           format_rate(row["gpu_throughput"]), row["unit"], f"{row['speedup']:.1f}x"]
                          for row in rows], markdown, numeric={3, 4, 6})
    if notes.texts:
        lines += ["", "Notes:"] + notes.lines()
    summary = summarize(document["results"])
    lines += ["", f"{summary['cases']} cases: {summary['ok']} ok, {summary['failed']} failed, {summary['skipped']} "
                  f"skipped; references: {summary['references_absent']} absent, {summary['references_failed']} failed. "
                  f"ms: median time per call; IQR: interquartile range / median; n: timed repeats; "
                  f"ours/ref: ours / reference in throughput (> 1: ours faster)."]
    return "\n".join(lines).strip("\n") + "\n"


def _device_lines(document: dict, heading: str) -> list[str]:
    lines = []
    for name, device in document.get("devices", {}).items():
        lines.append(f"{heading}{name}: {device.get('description', '')}")
        if device.get("error"):
            lines.append(f"- FAILED before any case ran: {_one_line(device['error'])}")
        copy = device.get("copy_bandwidth")
        if copy:
            lines.append(f"- copy bandwidth: {copy['gbps']:,.1f} GB/s (copying {copy['buffer_bytes'] / 2**20:,.0f} "
                         f"MiB, read + written)")
        elif device.get("copy_bandwidth_error"):
            lines.append(f"- copy bandwidth: FAILED ({_one_line(device['copy_bandwidth_error'])})")
        compiled = device.get("compile")
        if compiled:
            cache = "a warm" if compiled["cache_had_files"] else "an empty"
            if compiled.get("error"):
                lines.append(f"- kernel compile: FAILED ({_one_line(compiled['error'])})")
            for file in compiled["files"]:
                state = "ok" if file["ok"] else f"FAILED: {_one_line(file['message'])}"
                lines.append(f"- kernel compile/load of {file['file_name']} ({cache} disk cache): "
                             f"{file['seconds']:.2f} s ({state})")
        load = device.get("load")
        if load and load.get("other_cpu_fraction") is not None:
            busy = load["other_cpu_fraction"]
            lines.append(f"- machine load: load average {load['load_average_start']} -> {load['load_average_end']}; "
                         f"other processes used {100 * busy:.0f}% of the CPU capacity during the run")
            if name == "cpu" and busy > BUSY_MACHINE:
                lines.append("- WARNING: the machine was busy, so the CPU figures are unreliable (multi-threaded "
                             "BLAS and OpenMP lose most when a core is taken); rerun on a quiet machine")
        telemetry = document.get("telemetry", {}).get(name)
        if telemetry:
            lines += _telemetry_lines(telemetry)
        lines.append("")
    return lines


def _telemetry_lines(telemetry: dict) -> list[str]:
    if not telemetry.get("available"):
        return [f"- telemetry: unavailable ({_one_line(telemetry.get('reason', ''))})"]
    overall = telemetry["summary"]["overall"]
    parts = []
    for field, label, unit in (("sm_clock_mhz", "SM clock", "MHz"), ("power_w", "power", "W"),
                               ("temperature_c", "temperature", "C"), ("memory_used_mib", "memory used", "MiB")):
        stats = overall.get(field)
        if stats:
            parts.append(f"{label} {stats['min']:,.0f}-{stats['max']:,.0f} {unit} (median {stats['median']:,.0f})")
    lines = [f"- telemetry ({overall['samples']} samples): " + "; ".join(parts)]
    reasons = telemetry.get("clock_event_reasons")
    if reasons:
        lines.append(f"- clocks held back by: {', '.join(reasons)}")
    return lines


# ---------------------------------------------------------------- files

def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def result_file_name(document: dict, device: str) -> str:
    """``<date>-<gpu name or cpu model and cores>-<cpu|gpu>[-quick].json``."""
    date = document["date"][:10]
    hardware = document["hardware"]
    quick = "-quick" if document.get("options", {}).get("quick") else ""
    if device == "cpu":
        cpu = hardware["cpu"]
        return f"{date}-{_slug(cpu['model'])}-{cpu['usable_cores']}core-cpu{quick}.json"
    return f"{date}-{_slug(hardware['gpu']['name'])}-gpu{quick}.json"


def split_by_device(document: dict) -> dict[str, dict]:
    """One document per device (results, device figures and telemetry of that device only)."""
    parts = {}
    for device in document["devices"]:
        part = {key: value for key, value in document.items() if key not in ("results", "devices", "telemetry")}
        part["devices"] = {device: document["devices"][device]}
        part["telemetry"] = {name: value for name, value in document.get("telemetry", {}).items() if name == device}
        part["results"] = [result for result in document["results"] if result["device"] == device]
        part["summary"] = summarize(part["results"])
        if device == "cpu":
            part["hardware"] = {key: value for key, value in document["hardware"].items() if key != "gpu"}
        parts[device] = part
    return parts


def write_json(document: dict, path: str | Path) -> list[Path]:
    """Write the results: to ``path`` itself, or, when it is a folder (existing, or ending in
    a slash), one file per device named by :func:`result_file_name`, never overwriting one."""
    is_folder = str(path).endswith(("/", "\\")) or Path(path).is_dir()
    path = Path(path)
    if not is_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=1) + "\n")
        return [path]
    path.mkdir(parents=True, exist_ok=True)
    written = []
    for device, part in split_by_device(document).items():
        name = result_file_name(document, device)
        target, number = path / name, 2
        while target.exists():
            target, number = path / name.replace(".json", f"-{number}.json"), number + 1
        target.write_text(json.dumps(part, indent=1) + "\n")
        written.append(target)
    return written


def load_json(paths: Iterable[str | Path]) -> dict:
    """Read one or more results files into one document (results and devices merged, in order)."""
    merged: dict | None = None
    for path in paths:
        document = json.loads(Path(path).read_text())
        if merged is None:
            merged = document
            continue
        merged["results"] = merged["results"] + document["results"]
        merged["devices"] = {**merged.get("devices", {}), **document.get("devices", {})}
        merged["telemetry"] = {**merged.get("telemetry", {}), **document.get("telemetry", {})}
        merged["hardware"] = {**document["hardware"], **merged["hardware"]}
    if merged is None:
        raise ValueError("load_json: give at least one results file")
    merged["speedups"] = speedups(merged["results"])
    merged["summary"] = summarize(merged["results"])
    return merged
