"""Gated results: thresholds and the coverage gate, one record per test, each test's
records sent with its report (so an xdist worker that dies loses nothing finished), merged."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from .baseline import regression

if TYPE_CHECKING:
    from .measures import Measurement
    from .parsing import Tolerance
    from .variants import Variant

Status = Literal["pass", "fail", "error", "skip"]
REPORT_ATTR = "qrel"  # the attribute of a test report that carries its records


def coverage_problem(info: dict | None, min_coverage: float) -> str | None:
    """Why a variant quantized less than asked, or None. ``coverage`` is the share of the
    weights asked to be quantized (every linear layer, or a mixed-precision selection)
    that the backend really quantized; ``skipped`` says which layers stayed and why."""
    if not info or info.get("coverage") is None or info["coverage"] >= min_coverage - 1e-12:
        return None
    skipped: dict[str, str] = info.get("skipped") or {}
    by_reason: dict[str, list[str]] = {}
    for layer, reason in skipped.items():
        by_reason.setdefault(reason, []).append(layer)
    why = "; ".join(
        f"{len(layers)} layer{'s' if len(layers) > 1 else ''} ({', '.join(layers[:3])}{', ...' if len(layers) > 3 else ''}): {reason}"
        for reason, layers in by_reason.items()
    )
    return (
        f"quantized {info['coverage']:.1%} of the weights asked for, below the minimum coverage "
        f"{min_coverage:.0%}" + (f"; left at full precision: {why}" if why else "")
        + "; lower --qrel-min-coverage to accept it"
    )


class Results:
    """The records of a run. A test's records are pending until its report takes them;
    the process that reports (the controller, or the only process) merges them."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.variant_info: dict[str, dict] = {}  # by variant id (ids are unique in a run)
        self._pending: list[dict] = []

    def gate(
        self,
        test: str,
        variant: Variant,
        prop: str,
        metric: str,
        measurement: Measurement,
        threshold: float,
        higher_is_better: bool,
        info: dict | None,
        min_coverage: float,
        baseline: float | None = None,
        tolerance: Tolerance | None = None,
    ) -> dict:
        """Record one gated measurement: it passes when its value is within the threshold,
        has not regressed from the ``baseline`` value beyond ``tolerance``, and the variant
        quantized what was asked; returns the record."""

        value = measurement.value
        within = math.isfinite(value) and (value >= threshold if higher_is_better else value <= threshold)
        if math.isfinite(value) and measurement.significant is False:
            within = True  # past the threshold by noise alone: not significant after correction
        reasons = []
        if measurement.problem:
            reasons.append(measurement.problem)
        elif not within:
            reasons.append(f"{metric} = {value:.6g}, expected {'>=' if higher_is_better else '<='} {threshold:.6g}")
            if measurement.significant:
                d = measurement.detail
                reasons[-1] += f" on {d.get('task')}" if d.get("task") else ""
                reasons[-1] += f" (significant: adjusted p = {d.get('adjusted_pvalue', float('nan')):.3g} <= {d.get('alpha', float('nan')):g})"
        change = None
        if baseline is not None:
            change, regressed = regression(baseline, value, higher_is_better, tolerance)
            if regressed and not measurement.problem:
                reasons.append(f"{metric} {regressed}")
        coverage = coverage_problem(info, min_coverage)
        if coverage:
            reasons.append(coverage)
        record = self._record(test, variant, prop, metric, "pass" if not reasons else "fail", "; ".join(reasons) or None)
        record.update(
            value=value,
            base_value=measurement.base_value,
            threshold=threshold,
            higher_is_better=higher_is_better,
            coverage=(info or {}).get("coverage"),
            min_coverage=min_coverage,
            **({"baseline_value": baseline, "change": change} if baseline is not None else {}),
            **measurement.detail,
        )
        self._pending.append(record)
        return record

    def skip(self, test: str, variant: Variant, prop: str, metric: str, reason: str) -> dict:
        """Record a test that ran but had nothing to gate its value against (the reason says why)."""
        record = self._record(test, variant, prop, metric, "skip", reason)
        record.update(value=None, base_value=None, threshold=None)
        self._pending.append(record)
        return record

    def error(self, test: str, variant: Variant, prop: str | None, metric: str | None, reason: str) -> dict:
        """Record a test that could not measure its variant (base or quantization failed, a crash)."""
        record = self._record(test, variant, prop, metric, "error", reason)
        record.update(value=None, base_value=None, threshold=None)
        self._pending.append(record)
        return record

    @staticmethod
    def _record(test: str, variant: Variant, prop: str | None, metric: str | None, status: Status, reason: str | None) -> dict:
        return {
            "test": test,
            "property": prop,
            "variant": variant.id,
            "model": variant.model,
            "method": variant.method,
            "bits": variant.bits,
            "group_size": variant.group_size,
            "metric": metric,
            "status": status,
            "passed": status == "pass",
            "reason": reason,
        }

    def recorded_value(self, variant_id: str, metric: str) -> float | None:
        """The measured ``metric`` of a variant whose test ran in this process, if any."""
        for r in (*self.records, *self._pending):
            if r["variant"] == variant_id and r["metric"] == metric and r["status"] in ("pass", "fail"):
                value = r.get("value")
                return float(value) if isinstance(value, (int, float)) else None
        return None

    def has_pending(self, test: str) -> bool:
        return any(r["test"] == test for r in self._pending)

    def take_pending(self, variant_info: dict[str, dict]) -> dict[str, Any]:
        """The finished test's payload (its records and its variant's info), for its report."""
        payload = {"results": self._pending, "variant_info": variant_info}
        self._pending = []
        return payload

    def merge(self, payload: dict[str, Any] | None) -> bool:
        """Add a test report's payload; False if the report carried none."""
        if not payload:
            return False
        self.records.extend(payload.get("results", []))
        self.variant_info.update(payload.get("variant_info", {}))
        return True


def variant_outcome(variant: dict, records: list[dict]) -> tuple[str, str | None]:
    """A variant's overall status and one-line reason for results.json: ``skip`` (a pair its
    backend lacks), ``error``, ``fail`` or ``pass`` from its tests' records (the worst one
    wins), or ``not run`` when none of its tests ran."""
    if variant.get("skip_reason"):
        return "skip", variant["skip_reason"]
    own = [r for r in records if r.get("variant") == variant["id"]]
    for status in ("error", "fail"):
        bad = [r for r in own if r.get("status") == status]
        if bad:
            return status, bad[0].get("reason")
    if any(r.get("status") == "pass" for r in own):
        return "pass", None
    if own:
        return "skip", own[0].get("reason")
    if variant.get("error"):
        return "error", variant["error"]
    return "not run", None
