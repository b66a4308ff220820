"""The run's journal: each finished test's records appended to ``journal.jsonl`` in the report
directory as they land, so a run killed mid-way (the whole run, or a worker) can be resumed
with --qrel-resume: the journaled tests are not run again, and the report ends as an
uninterrupted run's would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

JOURNAL = "journal.jsonl"


class Journal:
    """Test payloads (``Results.take_pending``'s, with their variant id), one JSON line each."""

    def __init__(self, report_dir: Path, resume: bool) -> None:
        self.path = report_dir / JOURNAL
        self.resume = resume
        self.loaded: list[dict[str, Any]] = self._read() if resume else []
        self._started = False

    def _read(self) -> list[dict[str, Any]]:
        """The journal's complete lines (a run killed mid-write leaves at most a torn last one);
        a test with an error record (a crash, a lost worker) is not done: it runs again."""
        if not self.path.is_file():
            return []
        payloads = []
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                payload = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(payload, dict) and isinstance(payload.get("results"), list):
                payloads.append(payload)
        failed = {r.get("test") for p in payloads for r in p["results"] if r.get("status") == "error"}
        return [p for p in payloads if not {r.get("test") for r in p["results"]} & failed]

    def done(self) -> set[str]:
        """The tests (by name) whose records the journal holds."""
        return {r["test"] for p in self.loaded for r in p["results"] if "test" in r}

    def append(self, payload: dict[str, Any]) -> None:
        """Add one test's payload; a fresh run starts a fresh journal, a resumed one continues it."""
        if not self._started:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.resume:
                self.path.write_text("")
            self._started = True
        with self.path.open("a") as fh:
            fh.write(json.dumps(payload, default=str) + "\n")
            fh.flush()
