"""Comparing a run with a saved baseline (an earlier results.json): per-metric tolerances,
like pytest-benchmark's ``--benchmark-compare-fail``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from . import options

if TYPE_CHECKING:
    from .parsing import Tolerance


@dataclass(frozen=True)
class Baseline:
    """The gated values of an earlier run, by test id and metric
    (``("test_kl_to_base[zoo-m-hqq-4b-g64]", "kl_to_base")``): a test may gate several."""

    path: Path
    values: dict[tuple[str, str], float]

    @classmethod
    def read(cls, path: Path) -> Baseline:
        """Read a results.json; a missing, unreadable or foreign file is a usage error."""
        doc = read_results_json(path, options.BASELINE)
        values = {}
        for i, record in enumerate(doc["results"]):
            problem = _invalid(record)
            if problem:
                name = record.get("test") if isinstance(record, dict) else None
                raise pytest.UsageError(f"{options.BASELINE}: record {i} of {path}" + (f" ({name})" if name else "")
                                        + f" is not valid: {problem}")
            if record["status"] in ("pass", "fail"):
                # results.json writes a non-finite value as its name: it is read back, and compared, as such
                values[(record["test"], str(record["metric"]))] = float(record["value"])
        return cls(path, values)


SCHEMA = 1  # results.json's schema this module reads (report/results_json.py writes it)


def read_results_json(path: Path, flag: str) -> dict:
    """A pytest-qrel results.json of this schema, read for option ``flag``; a missing,
    unreadable or foreign file is a usage error naming it."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise pytest.UsageError(f"{flag}: cannot read {path} ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise pytest.UsageError(f"{flag}: {path} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list) or "schema" not in doc:
        raise pytest.UsageError(f"{flag}: {path} is not a pytest-qrel results.json (no schema and results)")
    if doc["schema"] != SCHEMA:
        raise pytest.UsageError(f"{flag}: {path} has schema {doc['schema']!r}, but this pytest-qrel reads schema {SCHEMA}")
    return doc
STATUSES = ("pass", "fail", "skip", "error")


def _invalid(record: object) -> str | None:
    """Why a results.json record cannot be compared with, or None."""
    if not isinstance(record, dict):
        return f"expected an object, but got {type(record).__name__}"
    for key in ("test", "status", "metric"):
        if key not in record:
            return f"it has no {key!r}"
    if not isinstance(record["test"], str) or record["status"] not in STATUSES:
        return f"expected a test name and a status in {STATUSES}, but got {record['test']!r}, {record['status']!r}"
    if record["status"] in ("pass", "fail"):
        value = record.get("value")
        if isinstance(value, bool) or not (isinstance(value, (int, float)) or value in ("nan", "inf", "-inf")):
            return f"expected a number as the value of a {record['status']}ed metric, but got {value!r}"
    return None


def tolerance_for(tolerances: dict[str, Tolerance], prop: str | None, metric: str | None) -> Tolerance | None:
    """The tolerance of ``metric`` (by metric name, else property name, else ``*``)."""
    for key in (metric, prop, "*"):
        if key is not None and key in tolerances:
            return tolerances[key]
    return None


def regression(old: float, new: float, higher_is_better: bool, tolerance: Tolerance | None) -> tuple[float, str | None]:
    """(change, why it fails or None): the change is new - old; it fails when it is worse
    than ``old`` by more than the tolerance (relative to ``old``, or absolute)."""
    change = new - old
    worse = -change if higher_is_better else change
    if tolerance is None or not math.isfinite(new):
        return change, None if math.isfinite(new) else "not finite"
    kind, limit = tolerance
    allowed = limit * abs(old) if kind == "relative" else limit
    if worse > allowed:
        pct = f" ({change / abs(old):+.1%})" if old else ""
        shown = f"{limit:.0%}" if kind == "relative" else f"{limit:g}"
        return change, f"regressed from the baseline {old:.6g} to {new:.6g}{pct}, more than the tolerated {shown}"
    return change, None
