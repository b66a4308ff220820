"""Comparing a run with a saved baseline (an earlier results.json): per-metric tolerances,
like pytest-benchmark's ``--benchmark-compare-fail``."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, cast

import pytest

from . import options
from .schema import GATED, SCHEMA_VERSION, BaselineUsed, Number, ResultsDocument
from .schema_check import result_problem, valueless_failure

if TYPE_CHECKING:
    from .parsing import Tolerance


@dataclass(frozen=True)
class Baseline:
    """The gated values of an earlier run, by test id and metric
    (``("test_kl_to_base[zoo-m-hqq-4b-g64]", "kl_to_base")``): a test may gate several."""

    path: Path
    values: dict[tuple[str, str], float]
    # a value known only within certified bounds (a KL decided by its top-k bounds), by test
    # and metric; and by (variant, property, metric), for the measure that decides whether to
    # recompute its own value exactly before comparing
    bounds: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    by_variant: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    sha256: str = ""  # of the file read: what a run records, so a merge re-reads the very same file

    def identity(self) -> BaselineUsed:
        """What results.json records of the baseline a run compared with (report.run.run_info)."""
        return {"path": str(self.path.resolve()), "sha256": self.sha256}

    def interval(self, variant: str, prop: str, metric: str) -> tuple[float, float] | None:
        """The baseline's ``metric`` of ``variant``'s ``prop`` test: its bounds (equal when exact)."""
        key = self.by_variant.get((variant, prop, metric))
        if key is None:
            return None
        return self.bounds.get(key, (self.values[key], self.values[key]))

    def undecided(self, variant: str, prop: str, metric: str, bounds: tuple[float, float], higher_is_better: bool,
                  tolerance: Tolerance | None) -> bool:
        """Whether comparing a value known within ``bounds`` with this baseline needs it exactly."""
        old = self.interval(variant, prop, metric)
        return old is not None and tolerance is not None and regressed(old, bounds, higher_is_better, tolerance) is None

    @classmethod
    def read(cls, path: Path) -> Baseline:
        """Read a results.json; a missing, unreadable or foreign file is a usage error."""
        doc = read_results_json(path, options.BASELINE)
        values: dict[tuple[str, str], float] = {}
        bounds: dict[tuple[str, str], tuple[float, float]] = {}
        by_variant: dict[tuple[str, str, str], tuple[str, str]] = {}
        for i, record in enumerate(doc["results"]):
            problem = record_problem(record)
            if problem:
                name = record.get("test") if isinstance(record, dict) else None
                raise pytest.UsageError(f"{options.BASELINE}: record {i} of {path}" + (f" ({name})" if name else "")
                                        + f" is not valid: {problem}")
            if record["status"] in GATED and not valueless_failure(record):  # no value: nothing to compare with
                # results.json writes a non-finite value as its name: it is read back, and compared, as such
                key = (record["test"], str(record["metric"]))
                values[key] = float(cast("Number", record["value"]))  # record_problem: a gated record's is a Number
                known = value_bounds(key[1], record)
                if known is not None and known[0] < known[1]:
                    bounds[key] = known
                variant, prop = record.get("variant"), record.get("property")
                if isinstance(variant, str) and isinstance(prop, str):
                    by_variant.setdefault((variant, prop, key[1]), key)
        return cls(path, values, bounds, by_variant, digest(path))


def digest(path: Path) -> str:
    """The sha256 of a file (read after read_results_json read it: a usage error if it went)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise pytest.UsageError(f"{options.BASELINE}: cannot read {path} ({exc.strerror or exc})") from None


def read_results_json(path: Path, flag: str) -> ResultsDocument:
    """A pytest-qrel results.json of this schema (schema.py), read for option ``flag``; a
    missing, unreadable or foreign file is a usage error naming it. Its entries are checked
    by their readers (``record_problem`` here, merge's variants and records)."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise pytest.UsageError(f"{flag}: cannot read {path} ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise pytest.UsageError(f"{flag}: {path} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list) or "schema" not in doc:
        raise pytest.UsageError(f"{flag}: {path} is not a pytest-qrel results.json (no schema and results)")
    if doc["schema"] != SCHEMA_VERSION:
        raise pytest.UsageError(f"{flag}: {path} has schema {doc['schema']!r}, but this pytest-qrel reads schema "
                                f"{SCHEMA_VERSION}")
    return cast(ResultsDocument, doc)  # its entries are checked by their readers


def record_problem(record: object) -> str | None:
    """Why a results.json record cannot be compared with, or None: what schema_check.result_problem
    checks of a compared record, and a value within its own certified bounds (results.
    record_problem reads it whole)."""
    problem = result_problem(record, whole=False)
    if problem is not None or not isinstance(record, dict) or record["status"] not in GATED:
        return problem
    value = record.get("value")
    known = value_bounds(str(record["metric"]), record)
    if known is not None and isinstance(value, (int, float)) and math.isfinite(value) and not within_bounds(float(value), *known):
        names = BOUND_FIELDS[str(record["metric"])]
        return f"expected its value {value!r} within its bounds {names[0]}..{names[1]} = [{known[0]!r}, {known[1]!r}]"
    return None


def within_bounds(value: float, lower: object, upper: object) -> bool:
    """Whether ``lower <= value <= upper`` (all finite numbers), up to float rounding of a midpoint."""
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (value, lower, upper)):
        return False
    slack = 1e-9 * max(1.0, abs(lower), abs(upper))  # type: ignore[arg-type]
    return lower - slack <= value <= upper + slack  # type: ignore[operator]


# the fields that hold a metric's certified bounds where its value is their midpoint (the KL
# measure's, when its top-k bounds decided it: measures/kl.py; schema.KLStatistics, KLTailDetail)
BOUND_FIELDS = {"kl_to_base": ("kl_lower", "kl_upper"), "kl_p99": ("kl_p99_lower", "kl_p99_upper")}


def value_bounds(metric: str | None, fields: Mapping[str, Any]) -> tuple[float, float] | None:
    """The certified bounds of a record's (or measurement detail's) value, or None: a value
    without bounds is exact."""
    names = BOUND_FIELDS.get(metric or "")
    if names is None:
        return None
    lo, hi = (fields.get(n) for n in names)
    if isinstance(lo, bool) or isinstance(hi, bool) or not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)):
        return None
    return float(lo), float(hi)


def regressed(old: tuple[float, float], new: tuple[float, float], higher_is_better: bool,
              tolerance: Tolerance) -> bool | None:
    """Whether a value in ``new`` regressed from one in ``old`` (each a (lower, upper) interval,
    equal ends when exact) beyond ``tolerance``: True if it did for every pair of values in the
    two, False if for none, None if the bounds cannot tell (a value must then be known exactly)."""
    kind, limit = tolerance

    def excess(o: float, n: float) -> float:  # how far past what is allowed: > 0 is a regression
        return (o - n if higher_is_better else n - o) - (limit * abs(o) if kind == "relative" else limit)

    # linear in the new value and piecewise linear in the old (a kink at 0): extremes at the corners
    olds = [old[0], old[1]] + ([0.0] if old[0] < 0 < old[1] else [])
    corners = [excess(o, n) for o in olds for n in new]
    return True if min(corners) > 0 else False if max(corners) <= 0 else None


def tolerance_for(tolerances: dict[str, Tolerance], prop: str | None, metric: str | None) -> Tolerance | None:
    """The tolerance of ``metric`` (by metric name, else property name, else ``*``)."""
    for key in (metric, prop, "*"):
        if key is not None and key in tolerances:
            return tolerances[key]
    return None


def regression(old: float, new: float, higher_is_better: bool, tolerance: Tolerance | None,
               old_bounds: tuple[float, float] | None = None,
               new_bounds: tuple[float, float] | None = None) -> tuple[float, str | None]:
    """(change, why it fails or None): the change is new - old; it fails when it is worse
    than ``old`` by more than the tolerance (relative to ``old``, or absolute). A value known
    only within certified bounds is compared by them: a regression for every value in them
    fails, one for none passes, and one the bounds cannot tell fails, saying so (the measure
    recomputes its own value exactly first, so only a baseline of bounds leaves it open)."""
    change = new - old
    if not math.isfinite(old):  # a baseline that measured nothing: not comparable, never a regression
        return change, None
    if tolerance is None or not math.isfinite(new):
        return change, None if math.isfinite(new) else "not finite"
    kind, limit = tolerance
    verdict = regressed(old_bounds or (old, old), new_bounds or (new, new), higher_is_better, tolerance)
    shown = f"{limit:.0%}" if kind == "relative" else f"{limit:g}"
    if verdict is None:
        lo, hi = old_bounds or (old, old)
        return change, (f"cannot be told from the baseline: it holds only bounds [{lo:.6g}, {hi:.6g}], and {new:.6g} "
                        f"is within the tolerated {shown} of some of them but not of others; save the baseline with "
                        f"--qrel-save-baseline, which records the exact value")
    if verdict:
        pct = f" ({change / abs(old):+.1%})" if old else ""
        return change, f"regressed from the baseline {old:.6g} to {new:.6g}{pct}, more than the tolerated {shown}"
    return change, None
