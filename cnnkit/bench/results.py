"""One benchmark case and its derived figures: throughput, ratio to the reference, fraction of peak.

A :class:`CaseResult` holds our measurement and those of its references (each a
:class:`Figure`), the amount of work one call does (FLOPs, bytes or images) and
the peaks it may be set against. Everything derived is computed from those, and
:meth:`CaseResult.to_dict` writes the lot as plain data for the JSON file, which
the report and the plots read (so a saved file renders exactly like a fresh run).

A case fails when our measurement raised or its result was wrong, and is skipped
(with the reason) when it does not apply here, e.g. TF32 on a GPU without tensor
cores; a reference that is not installed is *absent*, one that raised has *failed*.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Callable

from .timing import Timing

OK, ABSENT, FAILED, SKIPPED = "ok", "absent", "failed", "skipped"
RATIO_DEFINITION = "ours / reference in throughput (same work per call, so reference time / our time); > 1: ours faster"


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


@dataclass
class Figure:
    """One measured side of a case: ours or a reference.

    Attributes:
        name: what ran, e.g. ``"cnnkit CUDA kernel"`` or ``"cuBLAS FP32 (cupy.matmul)"``.
        status: ``"ok"``, ``"absent"`` (not installed, or not applicable here) or ``"failed"``.
        timing: the measurement when ok.
        reason: why absent or failed.
        traceback: the last lines of the traceback of a failure.
        details: anything else worth keeping (implementation, numerical check).
    """

    name: str
    status: str
    timing: Timing | None = None
    reason: str | None = None
    traceback: str | None = None
    details: dict = field(default_factory=dict)

    @classmethod
    def absent(cls, name: str, reason: str) -> "Figure":
        return cls(name, ABSENT, reason=reason)

    @classmethod
    def failed(cls, name: str, error: BaseException) -> "Figure":
        lines = traceback.format_exception(type(error), error, error.__traceback__)
        return cls(name, FAILED, reason=describe_error(error), traceback="".join(lines[-6:]))

    @property
    def ok(self) -> bool:
        return self.status == OK


def measured(name: str, run: Callable[[], Timing], **details) -> Figure:
    """Run one measurement; an exception becomes a failed :class:`Figure` instead of escaping."""
    try:
        timing = run()
    except Exception as error:  # a benchmark reports a failing case and goes on with the others
        return Figure.failed(name, error)
    return Figure(name, OK, timing, details=dict(details))


@dataclass(frozen=True)
class PeakLabel:
    """A ceiling a figure is set against: ``value`` in the case's unit, from a datasheet or measured."""

    name: str
    value: float


@dataclass
class CaseResult:
    """Our figure and the references' for one case on one device.

    Attributes:
        suite: ``"gemm"``, ``"conv"``, ``"pool"`` or ``"train"``.
        case: the operation, e.g. ``"sgemm fp32"``, ``"conv fwd+bwd"``.
        device: ``"cpu"`` or ``"cuda:0"``.
        shape: a short text of the sizes, e.g. ``"4096x4096x4096"``.
        params: the sizes as data.
        unit: ``"GFLOP/s"``, ``"GB/s"`` or ``"images/s"``.
        work: the amount of ``unit`` one call does (GFLOP, GB or images).
        flops, bytes: FLOPs and minimum bytes moved per call, for the roofline (None if not meaningful).
        key: what identifies the case across devices (for CPU-vs-GPU speed-ups).
        ours: our measurement.
        references: the references, the primary one first.
        peaks: ceilings to report a fraction of.
        check: a numerical check of our result, e.g. ``{"rel_error": 3e-7, "tolerance": 1e-4}``.
    """

    suite: str
    case: str
    device: str
    shape: str
    params: dict
    unit: str
    work: float
    key: str
    ours: Figure
    references: list[Figure] = field(default_factory=list)
    peaks: list[PeakLabel] = field(default_factory=list)
    flops: float | None = None
    bytes: float | None = None
    check: dict | None = None

    @property
    def status(self) -> str:
        if self.ours.status == ABSENT:
            return SKIPPED
        if not self.ours.ok or (self.check is not None and not self.check.get("ok", True)):
            return FAILED
        return OK

    def throughput(self, figure: Figure) -> float | None:
        """``work`` per second at the median time, in ``unit``."""
        if not figure.ok or figure.timing.median_ms <= 0:
            return None
        return self.work / (figure.timing.median_ms / 1e3)

    def ratio(self, reference: Figure) -> float | None:
        ours, theirs = self.throughput(self.ours), self.throughput(reference)
        if ours is None or theirs is None:
            return None
        return ours / theirs

    def to_dict(self) -> dict:
        ours_throughput = self.throughput(self.ours)
        references = []
        for reference in self.references:
            references.append({**_figure_dict(reference), "throughput": self.throughput(reference),
                               "ratio": self.ratio(reference)})
        peaks = [{"name": peak.name, "value": peak.value,
                  "fraction": None if ours_throughput is None else ours_throughput / peak.value}
                 for peak in self.peaks]
        return {
            "suite": self.suite, "case": self.case, "device": self.device, "shape": self.shape,
            "params": self.params, "key": self.key, "unit": self.unit, "work_per_call": self.work,
            "flops": self.flops, "bytes": self.bytes,
            "status": self.status,
            "ours": {**_figure_dict(self.ours), "throughput": ours_throughput},
            "references": references,
            "ratio": references[0]["ratio"] if references else None,
            "ratio_definition": RATIO_DEFINITION,
            "peaks": peaks,
            "check": self.check,
        }


def _figure_dict(figure: Figure) -> dict:
    return {"name": figure.name, "status": figure.status, "reason": figure.reason, "traceback": figure.traceback,
            "timing": None if figure.timing is None else figure.timing.to_dict(), **figure.details}


def failed_case(suite: str, case: str, device: str, shape: str, params: dict, unit: str, key: str,
                error: BaseException) -> CaseResult:
    """A case whose set-up raised before anything could be measured."""
    return CaseResult(suite, case, device, shape, params, unit, 0.0, key, Figure.failed("cnnkit", error))
