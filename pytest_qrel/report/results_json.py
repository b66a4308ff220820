"""results.json: the machine-readable record of a run (schema in DESIGN.md)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

SCHEMA_VERSION = 1


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them readable, never silently null
    return value


def write_results_json(report_dir: Path, variants: list[dict], results: list[dict], fits: list[dict]) -> Path:
    """Write ``report_dir/results.json`` atomically (temp file + rename): a reader never
    sees half a file and an earlier complete report survives a crash mid-write."""
    report_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema": SCHEMA_VERSION,
        "variants": variants,
        "results": [{k: _jsonable(v) for k, v in r.items()} for r in results],
        "fits": fits,
    }
    path = report_dir / "results.json"
    fd, tmp = tempfile.mkstemp(prefix=".results.", suffix=".json", dir=report_dir)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return path
