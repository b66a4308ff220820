"""results.json: the machine-readable record of a run (schema in DESIGN.md)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..results import Record

SCHEMA_VERSION = 1


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them readable, never silently null
    return value


def _nan_free(value):
    if isinstance(value, dict):
        return {k: _nan_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_free(v) for v in value]
    return _jsonable(value)


def write_results_json(
    report_dir: Path, variants: list[dict], results: list[Record], fits: list[dict], drift: dict | None = None,
    run: dict | None = None,
) -> Path:
    """Write ``report_dir/results.json`` atomically (temp file + rename): a reader never
    sees half a file and an earlier complete report survives a crash mid-write."""
    report_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema": SCHEMA_VERSION,
        "variants": variants,
        "results": [{k: _nan_free(v) for k, v in r.as_dict().items()} for r in results],
        "fits": _nan_free(fits),
        **({"drift": _nan_free(drift)} if drift else {}),
        **_nan_free(run or {}),  # settings (what --qrel-merge compares) and models_named
    }
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
