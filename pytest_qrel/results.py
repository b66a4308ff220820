"""Gated results: thresholds and the coverage gate, one record per test, each test's
records sent with its report (so an xdist worker that dies loses nothing finished), merged."""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Mapping, cast

from .baseline import record_problem as comparable_problem
from .baseline import regression, tolerance_for, value_bounds
from .errors import one_line
from .quant import backend_for
from .schema import BASELINE_KEYS, GATED_KEYS, OWN_KEYS, ResultEntry, Status, VariantEntry, VariantStatus, keys_of
from .schema_check import result_problem
from .variants import variant_record

if TYPE_CHECKING:
    from .config import QrelConfig
    from .measures import Gate, Measurement
    from .parsing import Tolerance
    from .properties import Property
    from .variants import Variant

REPORT_ATTR = "qrel"  # the attribute of a test report that carries its records


def coverage_problem(info: Mapping[str, Any] | None, min_coverage: float) -> str | None:
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


# the fields every record has (schema.ResultEntry); a measure's own details (task, p-values,
# comparison, ...) are kept in ``detail`` and written beside them in results.json
CORE_FIELDS = tuple(k for k in keys_of(ResultEntry) if k not in (*GATED_KEYS, *BASELINE_KEYS, *OWN_KEYS))
GATED_FIELDS = GATED_KEYS  # a gated record's (pass, fail)
BASELINE_FIELDS = BASELINE_KEYS  # a record compared with --qrel-baseline


def record_problem(record: object) -> str | None:
    """Why a results.json record cannot be read back as a Record, or None: what a baseline
    compares (baseline.record_problem), then every key of schema.ResultEntry, so that nothing
    read from a file fails later with a KeyError."""
    return comparable_problem(record) or result_problem(record)


@dataclass
class Record:
    """One metric of one test: what results.json's ``results`` holds, typed. ``as_dict`` is
    the results.json form (and what travels in a test report from an xdist worker);
    ``from_dict`` reads it back."""

    test: str
    property: str | None
    variant: str
    model: str
    method: str
    bits: int
    group_size: int | None
    metric: str | None
    status: Status
    reason: str | None = None
    value: float | None = None
    base_value: float | None = None
    threshold: float | None = None
    task: str | None = None  # the multiple-choice task of a per-task record
    higher_is_better: bool | None = None
    coverage: float | None = None
    min_coverage: float | None = None
    baseline_value: float | None = None
    change: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @builtins.property  # the field `property` hides the builtin here
    def passed(self) -> bool:
        return self.status == "pass"

    @builtins.property
    def gated(self) -> bool:
        """Whether the record holds a gated value (pass or fail), not an error or a skip."""
        return self.status in ("pass", "fail")

    def label(self) -> str:
        """The metric as the report names it: ``ece_increase@zoo_recall`` for a per-task one."""
        return (self.metric or "-") + (f"@{self.task}" if self.task else "")

    def as_dict(self) -> ResultEntry:
        out: dict[str, Any] = {k: getattr(self, k) for k in CORE_FIELDS}
        if self.gated:
            out.update({k: getattr(self, k) for k in GATED_FIELDS})
        if self.baseline_value is not None:
            out.update({k: getattr(self, k) for k in BASELINE_FIELDS})
        if self.task is not None:
            out["task"] = self.task
        return cast(ResultEntry, {**out, **self.detail})  # schema.ResultEntry and its measure's details

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Record:
        known = {f.name for f in fields(cls)} - {"detail"}
        return cls(**{k: v for k, v in d.items() if k in known},
                   detail={k: v for k, v in d.items() if k not in known and k != "passed"})


def gate_reasons(metric: str, measurement: Measurement, threshold: float, higher_is_better: bool,
                 baseline: float | None, tolerance: Tolerance | None, coverage: str | None,
                 baseline_bounds: tuple[float, float] | None = None) -> tuple[list[str], float | None]:
    """(why a gated measurement fails, empty when it passes; its change from ``baseline``): past
    its threshold (significantly, for a statistical gate), regressed from the baseline beyond
    ``tolerance`` (by the certified bounds of either value where it has them:
    baseline.regression), or ``coverage`` (why its variant quantized less than asked). A run's
    gate and a merge's re-decision of a record both decide here."""
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
        change, regressed = regression(baseline, value, higher_is_better, tolerance, baseline_bounds,
                                       value_bounds(metric, measurement.detail))
        if regressed and not measurement.problem:
            reasons.append(f"{metric} {regressed}")
    if coverage:
        reasons.append(coverage)
    return reasons, change


class Results:
    """The records of a run. A test's records are pending until its report takes them;
    the process that reports (the controller, or the only process) merges them."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.variant_info: dict[str, dict] = {}  # by variant id (ids are unique in a run)
        self._pending: list[Record] = []

    def gate(
        self,
        test: str,
        variant: Variant,
        prop: str,
        metric: str,
        measurement: Measurement,
        threshold: float,
        higher_is_better: bool,
        info: Mapping[str, Any] | None,
        min_coverage: float,
        baseline: float | None = None,
        tolerance: Tolerance | None = None,
        baseline_bounds: tuple[float, float] | None = None,
    ) -> Record:
        """Record one gated measurement: it passes when its value is within the threshold,
        has not regressed from the ``baseline`` value beyond ``tolerance``, and the variant
        quantized what was asked; returns the record."""

        coverage = coverage_problem(info, min_coverage)
        reasons, change = gate_reasons(metric, measurement, threshold, higher_is_better, baseline, tolerance, coverage,
                                       baseline_bounds)
        value = measurement.value
        detail = {**measurement.detail, **({"baseline_bounds": list(baseline_bounds)} if baseline_bounds else {})}
        task = detail.pop("task", None)
        record = Record(test, prop, variant.id, variant.model, variant.method, variant.bits, variant.group_size, metric,
                        "pass" if not reasons else "fail", "; ".join(reasons) or None, value, measurement.base_value,
                        threshold, task, higher_is_better, (info or {}).get("coverage"), min_coverage,
                        baseline, change, detail)
        self._pending.append(record)
        return record

    def record_gates(self, test: str, variant: Variant, spec: Property, gated: list[Gate], info: dict | None,
                     config: QrelConfig) -> tuple[list[str], list[str]]:
        """Record every gate of one test: (reasons of the failed ones, of the not checked ones)."""
        failed: list[str] = []
        unchecked: list[str] = []
        prop = spec.records_as
        for g in gated:
            if g.measurement.unchecked:
                record = self.skip(test, variant, prop, g.metric, g.measurement.unchecked, info, config.min_coverage,
                                   g.measurement, g.threshold)
                # a failed or skipped record always has its reason
                (unchecked if record.status == "skip" else failed).append(cast(str, record.reason))
                continue
            baseline = config.baseline.values.get((test, g.metric)) if config.baseline else None
            record = self.gate(test, variant, prop, g.metric, g.measurement, g.threshold,
                               spec.metric(g.metric).higher_is_better, info, config.min_coverage,
                               baseline, tolerance_for(config.compare_fail, prop, g.metric),
                               config.baseline.bounds.get((test, g.metric)) if config.baseline else None)
            if config.baseline is not None and baseline is None:
                # a metric the baseline does not hold is listed, and fails with --qrel-baseline-strict
                record.detail["baseline"] = "not in the baseline"
                if config.baseline_strict:
                    why = f"{g.metric} is not in the baseline {config.baseline.path} (--qrel-baseline-strict)"
                    record.status, record.reason = "fail", "; ".join(filter(None, (record.reason, why)))
            if not record.passed:
                failed.append(cast(str, record.reason))
        return failed, unchecked

    def skip(self, test: str, variant: Variant, prop: str, metric: str, reason: str, info: Mapping[str, Any] | None = None,
             min_coverage: float = 0.0, measurement: Measurement | None = None, threshold: float | None = None) -> Record:
        """Record a metric that could not be checked (the reason says why), with what was
        measured of it: not checked, unless the variant quantized less than asked, which
        fails it whatever the metric says."""
        coverage = coverage_problem(info, min_coverage)
        if coverage:
            record = self._add(test, variant, prop, metric, "fail", f"{coverage} ({metric} not checked: {reason})")
        else:
            record = self._add(test, variant, prop, metric, "skip", reason)
        if measurement is not None:
            detail = dict(measurement.detail)
            record.task = detail.pop("task", None)
            record.detail = detail
            record.value = measurement.value if math.isfinite(measurement.value) else None
            record.base_value = measurement.base_value
            record.threshold = threshold if threshold is not None and math.isfinite(threshold) else None
        return record

    def error(self, test: str, variant: Variant, prop: str | None, metric: str | None, reason: str) -> Record:
        """Record a test that could not measure its variant (base or quantization failed, a crash)."""
        return self._add(test, variant, prop, metric, "error", reason)

    def _add(self, test: str, variant: Variant, prop: str | None, metric: str | None, status: Status,
             reason: str) -> Record:
        record = Record(test, prop, variant.id, variant.model, variant.method, variant.bits, variant.group_size,
                        metric, status, reason)
        self._pending.append(record)
        return record

    def failed_unrecorded(self, test: str, variant: Variant, measuring: tuple[str, str | None] | None,
                          exc: BaseException | None) -> None:
        """A test that failed before recording anything, or after what it recorded passed
        (``measuring``: the property and metric it was at, no metric for the latter): an ERROR
        record with a one-line reason, so no variant vanishes from the report, none passes."""
        import pytest

        reason = "unknown failure" if exc is None else one_line(exc) if isinstance(exc, pytest.fail.Exception) \
            else f"{type(exc).__name__}: {one_line(exc)}"
        prop, metric = measuring or (None, None)
        self.error(test, variant, prop, metric, reason.removeprefix(f"{variant.id}: "))

    def lost(self, test: str, variant: Variant | None, report: str, what: str = "",
             prop: str | None = None) -> dict[str, Any] | None:
        """The payload of a test whose worker died before it reported (or whose teardown failed:
        ``what`` says which; ``prop``: its property, where known): an ERROR, never a pass (None
        for a test of no variant)."""
        if variant is None:
            return None
        first = report.strip().splitlines()[0] if report.strip() else "no report"
        self.error(test, variant, prop, None, f"{what or f'worker crashed during {test}'} ({first})")
        return {**self.take_pending({}), "variant": variant.id, "test": test}

    def recorded_value(self, variant_id: str, metric: str) -> float | None:
        """The measured ``metric`` of a variant whose test ran in this process, if any."""
        for r in (*self.records, *self._pending):
            if r.variant == variant_id and r.metric == metric and r.gated:
                return float(r.value) if isinstance(r.value, (int, float)) else None
        return None

    def has_pending(self, test: str, failed: bool = False) -> bool:
        """Whether ``test`` recorded something in this process (``failed``: a failed or errored record)."""
        return any(r.test == test and (not failed or r.status in ("fail", "error")) for r in self._pending)

    def take_pending(self, variant_info: dict[str, dict]) -> dict[str, Any]:
        """The finished test's payload (its records in results.json form and its variant's
        info), for its report: plain data, as an xdist worker's report carries it."""
        payload = {"results": [r.as_dict() for r in self._pending], "variant_info": variant_info}
        self._pending = []
        return payload

    def merge(self, payload: dict[str, Any] | None) -> bool:
        """Add a test report's payload; False if the report carried none."""
        if not payload:
            return False
        self.records.extend(Record.from_dict(r) for r in payload.get("results", []))
        for variant_id, info in payload.get("variant_info", {}).items():
            # key by key, as one process's store keeps them (store.quantized): a later test of the
            # variant on another xdist worker (a fitted-law test) has not what its KL test added
            # (kl_base_forward_passes); a quantization error replaces them, a success clears it
            kept = {k: v for k, v in self.variant_info.get(variant_id, {}).items() if k != "error"}
            self.variant_info[variant_id] = info if "error" in info else {**kept, **info}
        return True


def variant_outcome(variant: VariantEntry, records: list[Record]) -> tuple[VariantStatus, str | None]:
    """A variant's overall status and one-line reason for results.json: ``skip`` (a pair its
    backend lacks), ``error``, ``fail`` or ``pass`` from its tests' records (the worst one
    wins; the reason is the first such record's by test and metric), or ``not run`` when none
    of its tests ran."""
    if variant.get("skip_reason"):
        return "skip", variant["skip_reason"]
    # in test order, not arrival order: the same reason whether the tests ran in one process or
    # on xdist workers, whose reports arrive interleaved
    own = sorted((r for r in records if r.variant == variant["id"]), key=lambda r: (r.test, r.metric or ""))
    errors, failures = [r for r in own if r.status == "error"], [r for r in own if r.status == "fail"]
    if errors:
        return "error", errors[0].reason
    if failures:
        return "fail", failures[0].reason
    if any(r.passed for r in own):
        return "pass", None
    if own:
        return "skip", own[0].reason
    if variant.get("error"):
        return "error", variant["error"]
    return "not run", None


def variant_records(variants: list[Variant], info: dict[str, dict], records: list[Record]) -> list[VariantEntry]:
    """results.json's ``variants``: each variant with what its quantization measured, its
    backend's formats, and its overall status and reason."""
    out = []
    for v in variants:
        backend = backend_for(v)
        known = {"weight_format": backend.weight_format, "activation_bits": backend.activation_bits}
        record = variant_record(v, {**known, **info.get(v.id, {})})
        record["status"], record["reason"] = variant_outcome(record, records)
        out.append(record)
    return out
