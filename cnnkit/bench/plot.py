"""``--plot``: ours-vs-reference bars per suite and device, and a roofline per device (matplotlib).

Bars show the throughput (GFLOP/s, GB/s or images/s, log scale) of ours beside the
primary reference of each case. The roofline puts each case with a FLOP count (and
its reference where that does the same computation, unlike the copy that pooling is
set against) at its arithmetic intensity (FLOPs per minimum byte moved) against its
achieved rate, under two ceilings: the measured copy bandwidth (a slope) and the
compute peak (the GPU's datasheet FP32 rate, or on the CPU the best GEMM rate
measured in the run).
"""
from __future__ import annotations

import math
from pathlib import Path

from .report import SUITE_TITLES


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise RuntimeError(f"--plot needs matplotlib ({error}); install it with `pip install 'cnnkit[plot]'`") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _bars(axis, results: list[dict], title: str) -> None:
    labels = [f"{r['case']}\n{r['shape']}" for r in results]
    ours = [r["ours"]["throughput"] or 0.0 for r in results]
    reference = [(r["references"][0]["throughput"] or 0.0) if r["references"] else 0.0 for r in results]
    names = sorted({r["references"][0]["name"] for r in results if r["references"]})
    positions = range(len(results))
    axis.bar([p - 0.2 for p in positions], ours, width=0.4, label="cnnkit")
    axis.bar([p + 0.2 for p in positions], reference, width=0.4, label=" / ".join(names)[:60] or "reference")
    for position, result in zip(positions, results):
        marks = [(position - 0.2, result["status"])]
        if result["references"]:
            marks.append((position + 0.2, result["references"][0]["status"]))
        for x, status in marks:
            if status != "ok":
                axis.annotate(status, (x, 0), xycoords=("data", "axes fraction"), textcoords="offset points",
                              xytext=(0, 4), ha="center", rotation=90, color="red", fontsize=6)
    axis.set_xticks(list(positions))
    axis.set_xticklabels(labels, rotation=60, ha="right", fontsize=6)
    if any(value > 0 for value in ours + reference):
        axis.set_yscale("log")
    axis.set_ylabel(results[0]["unit"])
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=6)


def _roofline_points(results: list[dict]) -> list[tuple[float, float, dict, str]]:
    """(FLOPs per byte, GFLOP/s, result, "cnnkit" or "reference") for every measured figure with a FLOP count."""
    points = []
    for result in results:
        if not result.get("flops") or not result.get("bytes"):
            continue
        sides = [("cnnkit", result["ours"])]
        if result["references"] and result["references"][0].get("same_work", True):
            sides.append(("reference", result["references"][0]))
        for label, figure in sides:
            if figure["status"] == "ok":
                rate = result["flops"] / (figure["timing"]["median_ms"] / 1e3) / 1e9
                points.append((result["flops"] / result["bytes"], rate, result, label))
    return points


def _roofline(axis, results: list[dict], device: str, section: dict) -> None:
    points = _roofline_points(results)
    if not points:
        axis.set_visible(False)
        return
    for label, marker in (("cnnkit", "o"), ("reference", "x")):
        chosen = [(x, y) for x, y, _, which in points if which == label]
        if chosen:
            axis.scatter(*zip(*chosen), marker=marker, label=label, s=14)
    xs = [x for x, *_ in points]
    low, high = min(xs) / 2, max(xs) * 2
    copy = section.get("copy_bandwidth")
    peaks = [r["peaks"][0]["value"] for r in results if r["suite"] in ("gemm", "conv") and r["peaks"]
             and r["params"].get("precision", "fp32") == "fp32"]
    if peaks:
        roof, roof_label = max(peaks), "FP32 datasheet peak"
    else:
        gemm_rates = [y for _, y, r, _ in points if r["suite"] == "gemm"]
        roof, roof_label = (max(gemm_rates), "best GEMM measured") if gemm_rates else (None, "")
    grid = [low * (high / low) ** (i / 50) for i in range(51)]
    if copy:
        bandwidth = copy["gbps"]
        axis.plot(grid, [min(bandwidth * x, roof or math.inf) for x in grid], "k--", linewidth=0.8,
                  label=f"copy {bandwidth:,.0f} GB/s")
    if roof:
        axis.axhline(roof, color="grey", linewidth=0.8, label=f"{roof_label} {roof:,.0f} GFLOP/s")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("FLOPs per byte (minimum bytes moved)")
    axis.set_ylabel("GFLOP/s")
    axis.set_title(f"Roofline on {device}", fontsize=9)
    axis.legend(fontsize=6)


def plot_results(document: dict, path: str | Path) -> Path:
    """Draw the bars and rooflines of ``document`` into the PNG ``path``; returns the path."""
    plt = _pyplot()
    groups: dict[tuple[str, str], list[dict]] = {}
    for result in document["results"]:
        groups.setdefault((result["device"], result["suite"]), []).append(result)
    devices = list(dict.fromkeys(device for device, _ in groups))
    panels = len(groups) + len(devices)
    columns = 2
    rows = max(1, math.ceil(panels / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.2 * rows), squeeze=False)
    flat = [axis for row in axes for axis in row]
    for axis, ((device, suite), results) in zip(flat, groups.items()):
        _bars(axis, results, f"{SUITE_TITLES.get(suite, suite)} on {device}")
    for axis, device in zip(flat[len(groups):], devices):
        _roofline(axis, [r for r in document["results"] if r["device"] == device], device,
                  document.get("devices", {}).get(device, {}))
    for axis in flat[panels:]:
        axis.set_visible(False)
    figure.suptitle(f"cnnkit bench {document['date'][:10]} ({document.get('git_revision') or 'no git revision'})",
                    fontsize=10)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
