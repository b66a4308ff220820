"""The JSONL fixtures shipped with pytest-qrel: where they are, how a JSONL file is read, the
held-out and calibration texts."""

from __future__ import annotations

import json
from pathlib import Path

from ..models import fixtures_dir


def data_dir() -> Path:
    return fixtures_dir() / "data"


def load_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file; a missing, corrupt or empty file is a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Expected a JSONL dataset at {path}, but it does not exist")
    rows = []
    for lineno, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"Expected UTF-8 text on {path}:{lineno}, but byte {exc.start + 1} of that line is "
                             f"{raw[exc.start:exc.start + 1]!r}") from None
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"Expected JSON on {path}:{lineno}, but got {line[:60]!r} ({exc.msg})") from None
    if not rows:
        raise ValueError(f"Expected at least one row in {path}, but got an empty dataset")
    return rows


def heldout_texts(path: str | Path | None = None) -> list[str]:
    """Plain held-out text for perplexity and KL (paper 000 eq. 7): the zoo's by default."""
    return _texts(path or data_dir() / "zoo_heldout.jsonl")


def calibration_texts(path: str | Path | None = None) -> list[str]:
    """Calibration documents for data-driven quantizers and mixed-precision search; drawn
    like the zoo's training text and disjoint from the held-out text."""
    return _texts(path or data_dir() / "zoo_calibration.jsonl")


def _texts(path: str | Path) -> list[str]:
    rows = load_jsonl(path)
    bad = [i for i, r in enumerate(rows, 1) if not isinstance(r.get("text"), str) or not r["text"].strip()]
    if bad:
        raise ValueError(f"Expected a non-empty 'text' field in every row of {path}, but rows {bad[:5]} have none")
    return [r["text"] for r in rows]
