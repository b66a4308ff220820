"""Each qrel test's records as JUnit XML properties: its metrics' values, thresholds and
statuses and its variant's bits, set on the test's ``user_properties`` (what
``record_property`` sets), so that ``--junitxml`` carries them, from an xdist worker too.

The names are an interface (docs/baselines-and-ci.md lists them): ``qrel.<field>`` for the
test and its variant, ``qrel.<metric>.<field>`` for each metric the test recorded. Values are
those results.json holds for the same records; a status is ``pass``, ``fail``,
``not checked`` or ``error`` (results.json's ``skip`` is written ``not checked``, as the
terminal says), and a test skipped before it recorded anything is ``skip``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pytest

from .matrix import PROPERTY_MARK
from .variants import Variant, variant_record

PREFIX = "qrel."  # every property this module sets starts with it; others' are left alone
STATUS = {"pass": "pass", "fail": "fail", "skip": "not checked", "error": "error"}
# the variant's fields, as results.json's ``variants`` entry has them (variants.variant_record)
VARIANT_FIELDS = ("id", "model", "method", "bits", "group_size", "effective_bits", "total_bits")
# each metric's fields, as results.json's record has them (a field a record lacks is left out)
METRIC_FIELDS = ("value", "base_value", "threshold", "status", "reason", "baseline_value", "change")

# the records of a test so far (its call's, then its teardown's if that failed), by item
_RECORDS = pytest.StashKey[list[dict[str, Any]]]()


def properties(variant: Variant, info: Mapping[str, Any] | None, records: Sequence[Mapping[str, Any]],
               skip_reason: str | None = None, prop: str | None = None) -> list[tuple[str, str]]:
    """The JUnit properties of one test of ``variant`` (``info``: what its quantization
    measured) from its ``records`` in results.json form: the variant, the test's status and
    reason (the worst of its records', as a variant's verdict is decided; ``skip`` with
    ``skip_reason`` when it recorded nothing), then each metric's fields. ``prop``: the
    property the test gates, for a test that recorded none."""
    entry: Mapping[str, Any] = variant_record(variant, info)
    out = [(PREFIX + ("variant" if k == "id" else k), entry[k]) for k in VARIANT_FIELDS]
    first = next(iter(records), {})
    out += [(PREFIX + "property", first.get("property") or prop), (PREFIX + "task", first.get("task"))]
    statuses = [r.get("status") for r in records]
    status = next((s for s in ("error", "fail", "pass", "skip") if s in statuses), None)
    if status is None and skip_reason is not None:
        out += [(PREFIX + "status", "skip"), (PREFIX + "reason", skip_reason)]
    elif status is not None:
        reason = next((r.get("reason") for r in records if r.get("status") == status), None)
        out += [(PREFIX + "status", STATUS[status]), (PREFIX + "reason", reason)]
    for r in records:
        if r.get("metric") is None:  # an error before any metric: the test's status and reason say it
            continue
        fields = {**r, "status": STATUS.get(str(r.get("status")), r.get("status"))}
        out += [(f"{PREFIX}{r['metric']}.{k}", fields.get(k)) for k in METRIC_FIELDS]
    # None is "not known": left out rather than written as the string "None"
    return [(name, str(value)) for name, value in out if value is not None]


def add(item: pytest.Item, report: pytest.TestReport, variant: Variant, info: Mapping[str, Any] | None,
        records: Sequence[Mapping[str, Any]]) -> None:
    """Set the test's qrel properties from every record it made so far (``records``: this
    report's) on the item and on ``report``: pytest's JUnit writer reads the teardown report,
    which takes the item's; replacing them keeps one set when a failed teardown adds an ERROR."""
    kept = item.stash.setdefault(_RECORDS, [])
    kept.extend(dict(r) for r in records)
    skip_reason = variant.skip_reason or (_reason(report) if report.skipped else None)
    mark = item.get_closest_marker(PROPERTY_MARK)
    props = properties(variant, info, kept, skip_reason, str(mark.args[0]) if mark and mark.args else None)
    for target in (item.user_properties, report.user_properties):
        target[:] = [*(p for p in target if not str(p[0]).startswith(PREFIX)), *props]


def _reason(report: pytest.TestReport) -> str | None:
    """A skipped report's reason (pytest keeps it as (path, line, "Skipped: why"))."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return None
