"""The KL suite's text (--qrel-kl-text): a local file (plain text, or JSONL with a ``text``
field) or an lm-eval perplexity task (by name or YAML), read as one stream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .files import data_dir
from .lmeval import lmeval_docs


@dataclass(frozen=True)
class KLText:
    """The KL text's source (the batches cut from it are ``measures.kl_base.KLBatches``) and
    what it is, for the report (``file x.txt``, ``lm-eval task wikitext``). A
    file is read from its start only as far as the KL windows need (``prefix``): a text of
    megabytes is neither held nor tokenized whole to score a few thousand tokens."""

    source: str
    path: Path | None = None  # a plain-text or JSONL file, read a prefix at a time
    docs: str = ""  # an lm-eval task's documents, joined (the dataset is in memory already)

    def prefix(self, chars: int) -> str:
        """The text's first ``chars`` characters; fewer only where the text has no more."""
        return self.read(chars)[0]

    def read(self, chars: int) -> tuple[str, bool]:
        """The text's first ``chars`` characters, and whether they are the whole text (said by
        the reader, not inferred from a length). ValueError naming the file and the line or
        byte that is not text."""
        if self.path is None:
            return self.docs[:chars], len(self.docs) <= chars
        try:
            with self.path.open(encoding="utf-8") as f:
                if self.path.suffix in (".jsonl", ".json"):
                    return _jsonl_prefix(self.path, f, chars)
                text = f.read(chars)
                return text, len(text) < chars or not f.read(1)
        except UnicodeDecodeError:
            raise ValueError(f"Expected {self.path} to be UTF-8 text, but byte {_bad_byte(self.path)} is not") from None


# the KL text of a model outside the zoo when --qrel-kl-text is not given: real English prose,
# public domain (Project Gutenberg eBook #11, its license header and footer stripped; docs/kl.md)
SHIPPED_PROSE = "alice_in_wonderland.txt"


def shipped_prose() -> KLText:
    """The shipped prose (Lewis Carroll's Alice's Adventures in Wonderland, 1865; public
    domain, about 26,000 words) as a KL text."""
    return KLText(f"the shipped prose {SHIPPED_PROSE} (Alice's Adventures in Wonderland, public domain)",
                  data_dir() / SHIPPED_PROSE)


def _jsonl_prefix(path: Path, lines: Iterable[str], chars: int) -> tuple[str, bool]:
    """The ``text`` fields of JSONL rows, joined by blank lines, read until more than ``chars``
    characters (so the reader knows whether the text goes on), and whether that is all of it."""
    parts: list[str] = []
    size = -2  # the joined length: each row's text and the blank line before it, none before the first
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"Expected JSON on line {lineno} of {path}, but got: {exc}") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise ValueError(f"Expected a 'text' string on line {lineno} of {path}, but got {str(row)[:80]!r}")
        parts.append(row["text"])
        size += len(row["text"]) + 2
        if size > chars:
            break
    return "\n\n".join(parts)[:chars], size <= chars


def _bad_byte(path: Path) -> int:
    """The offset of the first byte of ``path`` that is not UTF-8 (read a block at a time)."""
    import codecs

    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            pending = len(decoder.getstate()[0])  # an unfinished character carried from the last block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return offset - pending + exc.start
            offset += len(block)
    return offset - len(decoder.getstate()[0])  # the file ends inside a character


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
    """The resolved --qrel-kl-text value, checked at start-up as far as its first text (a
    missing file or task, a first line that is not JSON, a text that is empty): ValueError
    naming the file, row or task. A file's rest is read when the KL windows need it."""
    path = Path(spec)
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "a FIFO" if path.is_fifo() else "not a regular file"
        raise ValueError(f"Expected a file (plain text, JSONL with a 'text' field, or a task YAML) or an lm-eval "
                         f"task, but {path} is {kind}")
    if path.is_file() and path.suffix not in (".yaml", ".yml"):
        text, chars = KLText(f"file {path.name}", path), 1 << 12
        head, whole = text.read(chars)
        while not head.strip() and not whole:
            chars *= 4  # leading blank space: read on to the first text
            head, whole = text.read(chars)
    else:
        shipped = data_dir().parent / "tasks" / f"{spec}.yaml"
        docs = "\n\n".join(lmeval_docs(str(shipped) if shipped.is_file() else spec, allow_code))
        text = KLText(f"lm-eval task {path.stem if path.is_file() else spec}", docs=docs)
        head = docs
    if not head.strip():
        raise ValueError(f"Expected some text in {text.source}, but it is empty")
    return text
