"""The KL suite's text (--qrel-kl-text): a local file (plain text, or JSONL with a ``text``
field) or an lm-eval perplexity task (by name or YAML), read as one stream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .files import data_dir
from .lmeval import lmeval_docs


@dataclass(frozen=True)
class KLText:
    """The text and what it is, for the report (``file x.txt``, ``lm-eval task wikitext``)."""

    text: str
    source: str


def resolve_kl_text(spec: str, invocation_dir: Path) -> str:
    """The --qrel-kl-text value as given: an existing file's absolute path, else a task name."""
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = invocation_dir / path
    if path.exists():
        return str(path.resolve())
    if spec.endswith((".txt", ".jsonl", ".json", ".yaml", ".yml")) or "/" in spec:
        raise ValueError(f"Expected a file (plain text, or JSONL with a 'text' field) or an lm-eval task, but "
                         f"{spec!r} does not exist")
    return spec


def read_kl_text(spec: str, allow_code: bool = False) -> KLText:
    """The text of a resolved --qrel-kl-text value; ValueError naming the file, row or task."""
    path = Path(spec)
    if path.is_file() and path.suffix not in (".yaml", ".yml"):
        try:
            raw = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"Expected {path} to be UTF-8 text, but byte {exc.start} is not") from None
        if path.suffix in (".jsonl", ".json"):
            parts = []
            for lineno, line in enumerate(raw.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"Expected JSON on line {lineno} of {path}, but got: {exc}") from None
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    raise ValueError(f"Expected a 'text' string on line {lineno} of {path}, but got {str(row)[:80]!r}")
                parts.append(row["text"])
            raw = "\n\n".join(parts)
        source = f"file {path.name}"
    else:
        shipped = data_dir().parent / "tasks" / f"{spec}.yaml"
        raw, source = "\n\n".join(lmeval_docs(str(shipped) if shipped.is_file() else spec, allow_code)), f"lm-eval task {path.stem if path.is_file() else spec}"
    if not raw.strip():
        raise ValueError(f"Expected some text in {source}, but it is empty")
    return KLText(raw, source)
