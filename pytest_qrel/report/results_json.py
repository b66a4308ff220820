"""results.json: the machine-readable record of a run, written through the TypedDicts of
``pytest_qrel/schema.py`` (its schema, written down once; docs/results-json.md documents it)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..schema import SCHEMA_VERSION, ResultsDocument

if TYPE_CHECKING:
    from ..results import Record
    from ..schema import DriftTable, FitEntry, PrunedVsQuantized, ResultEntry, RunInfo, VariantEntry

T = TypeVar("T")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them readable, never silently null (schema.Number)
    return value


def _nan_free(value: T) -> T:
    """``value`` with every non-finite float written as its name, nested in objects and lists."""
    if isinstance(value, dict):
        return {k: _nan_free(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [_nan_free(v) for v in value]  # type: ignore[return-value]
    return _jsonable(value)


def write_results_json(
    report_dir: Path, variants: list[VariantEntry], results: list[Record], fits: list[FitEntry],
    drift: DriftTable | None = None, run: RunInfo | None = None,
    pruned_vs_quantized: list[PrunedVsQuantized] | None = None,
) -> Path:
    """Write ``report_dir/results.json`` (schema.ResultsDocument) atomically (temp file +
    rename): a reader never sees half a file and an earlier complete report survives a crash
    mid-write."""
    report_dir.mkdir(parents=True, exist_ok=True)
    records: list[ResultEntry] = [_nan_free(r.as_dict()) for r in results]
    doc: ResultsDocument = {"schema": SCHEMA_VERSION, "variants": variants, "results": records, "fits": _nan_free(fits)}
    if drift:
        doc["drift"] = _nan_free(drift)
    if pruned_vs_quantized:  # only a run with pruned and quantized variants of a model
        doc["pruned_vs_quantized"] = _nan_free(pruned_vs_quantized)
    if run:  # settings (what --qrel-merge compares), models_named and the baseline compared with
        run = _nan_free(run)
        doc["settings"] = run["settings"]
        doc["models_named"] = run["models_named"]
        if "baseline_used" in run:
            doc["baseline_used"] = run["baseline_used"]
        if run.get("not_run"):
            doc["not_run"] = run["not_run"]
    path = report_dir / "results.json"
    fd, tmp = tempfile.mkstemp(prefix=".results.", suffix=".json", dir=report_dir)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide results.json from the other report files' readers
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return path
