"""The run's journal: each finished test's records appended to ``journal.jsonl`` in the report
directory as they land, so a run killed mid-way (the whole run, or a worker) can be resumed
with --qrel-resume: the journaled tests are not run again, and the report ends as an
uninterrupted run's would.

Its first line records what the run's verdicts depend on (``config.effective_settings``: every
parsed setting but where it writes, the package version, and the digest of every input file or
directory by absolute path); a resume whose are others is a usage error naming the setting or
the input, as its journaled verdicts were made under those. A fresh run starts a fresh journal
at its start (``reset``), so no resume revives an older run's verdicts. Only the process that
reports (the controller, or the only one) writes it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from . import options
from .results import Record

JOURNAL = "journal.jsonl"
# the journal's format: 3 since issue 35 named the per-property settings after their property
# (kl.threshold, not kl_threshold): an older journal is refused as older, not as other settings
FORMAT = 3
HEADER = "qrel_journal"  # the first line: {"qrel_journal": FORMAT, "settings": {...}, "inputs": {...}, "version": ...}
STATUSES = ("pass", "fail", "skip", "error")
RESUMED = "qrel_resumed"  # an xdist worker's input: the tests the controller's journal held at the start


class Journal:
    """Test payloads (``Results.take_pending``'s, with their variant id), one JSON line each,
    after a header line with the run's settings."""

    def __init__(self, report_dir: Path, resume: bool, settings: dict[str, Any] | None = None,
                 done: list[str] | None = None) -> None:
        """``done``: an xdist worker's, the tests the controller read as done when the run began
        (the worker does not read the file, which the controller appends to meanwhile: a worker
        started later, in place of a lost one, must deselect what its run's first workers did)."""
        self.path = report_dir / JOURNAL
        if self.path.is_dir():  # checked now: not an INTERNALERROR after the first test
            raise pytest.UsageError(f"{options.REPORT_DIR}: cannot write the journal {self.path}: it is a directory")
        self.resume = resume
        self.settings = json.loads(json.dumps(settings or {}, default=str))  # as its header line holds them
        self._broken = False  # a write failed: warned once, the results still reach results.json
        self._complete: int | None = None  # resumed: the bytes of its complete lines (a torn last one cut)
        self._done = set(done) if done is not None else None
        self.loaded: list[dict[str, Any]] = self._read() if resume and done is None else []
        self._started = False

    def _read(self) -> list[dict[str, Any]]:
        """The journal's complete lines (a run killed mid-write leaves at most a torn last one,
        without its newline: it is dropped and its test runs again); a test with an error
        record (a crash, a lost worker) in its latest line is not done: it runs again. A usage
        error for a journal of other settings, or a complete line that is not one test's records."""
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        lines = data.split(b"\n")[:-1]  # the last piece has no newline: empty, or torn
        if not lines:
            return []
        self._complete = len(data) - len(data.split(b"\n")[-1])
        self._check_settings(self._line(lines[0], 1))
        payloads = [self._payload(self._line(line, n), n) for n, line in enumerate(lines[1:], start=2)]
        latest = {t: p for p in payloads for t in _tests(p)}  # a test run again after an error: its later line
        return [p for p in payloads if all(latest[t] is p for t in _tests(p))
                and not any(r["status"] == "error" for r in p["results"])]

    def _line(self, line: bytes, number: int) -> Any:
        try:
            return json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._error(number, f"is not JSON ({exc})") from None

    def _error(self, number: int, problem: str) -> pytest.UsageError:
        return pytest.UsageError(f"{options.RESUME}: line {number} of {self.path} {problem}: the journal was "
                                 "edited or written by something else; remove that line (its test runs again) "
                                 "or run without --qrel-resume")

    def _check_settings(self, header: Any) -> None:
        """The journaled run's settings, inputs and version are this run's: its verdicts hold here."""
        if not isinstance(header, dict) or header.get(HEADER) != FORMAT or not isinstance(header.get("settings"), dict) \
                or not isinstance(header.get("inputs"), dict):
            raise pytest.UsageError(f"{options.RESUME}: {self.path} records no settings on its first line (written "
                                    "by an older pytest-qrel, or not a journal): run without --qrel-resume")
        theirs, ours = header["settings"], self.settings.get("settings", {})
        why = next((f"with {key}={theirs.get(key)!r}, this run with {ours.get(key)!r}"
                    for key in sorted(set(theirs) | set(ours)) if theirs.get(key) != ours.get(key)), None)
        inputs, read = self.settings.get("inputs", {}), header["inputs"]
        why = why or next((f"on {path}, which this run does not read" if path not in inputs else
                           f"on {path}, which changed since (its content digest differs)"
                           for path in sorted(read) if read[path] != inputs.get(path)), None)
        why = why or next((f"without {path}, which this run reads" for path in sorted(set(inputs) - set(read))), None)
        if why is None and header.get("version") != self.settings.get("version"):
            why = f"by pytest-qrel {header.get('version')}, this run by {self.settings.get('version')}"
        if why:
            raise pytest.UsageError(f"{options.RESUME}: the journaled run {self.path} was run {why}: a resumed "
                                    "run must have the settings and inputs of the run it continues; run without "
                                    "--qrel-resume")

    def _payload(self, payload: Any, number: int) -> dict[str, Any]:
        """One test's payload, checked to be what ``append`` wrote: its records load as Records."""
        expected = 'expected {"variant": <id>, "test": <name>, "results": [<record>, ...], "variant_info": {...}}'
        if not (isinstance(payload, dict) and isinstance(payload.get("variant"), str)
                and isinstance(payload.get("test", ""), str)
                and isinstance(payload.get("results"), list) and isinstance(payload.get("variant_info", {}), dict)):
            raise self._error(number, f"is not one test's records ({expected})")
        for r in payload["results"]:
            try:
                record = Record.from_dict(r)
            except (TypeError, AttributeError) as exc:
                raise self._error(number, f"holds something that is not a record ({exc})") from None
            if not isinstance(record.test, str) or record.status not in STATUSES:
                raise self._error(number, f"holds a record without a test name or a status in {STATUSES}")
        return payload

    def done(self) -> set[str]:
        """The tests (by name) whose records the journal holds."""
        return self._done if self._done is not None else {t for p in self.loaded for t in _tests(p)}

    def reset(self) -> None:
        """A fresh run's start: an older run's journal goes (a resume after this run was killed
        before its first report must not revive that run's verdicts)."""
        if not self.resume:
            self._write(self._start)

    def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.resume and self._complete is not None:
            with self.path.open("r+b") as fh:  # cut a torn last line: the record goes on a line of its own
                fh.truncate(self._complete)
        else:
            self.path.write_text(json.dumps({HEADER: FORMAT, **self.settings}, default=str) + "\n")
        self._started = True

    def append(self, payload: dict[str, Any]) -> None:
        """Add one test's payload: a fresh run starts a fresh journal with its settings, a
        resumed one continues it after its last complete line."""
        def write() -> None:
            if not self._started:
                self._start()
            with self.path.open("a") as fh:
                fh.write(json.dumps(payload, default=str) + "\n")
                fh.flush()
        self._write(write)

    def _write(self, write: Any) -> None:
        """A journal that cannot be written (a full disk) costs the resume, not the run: one warning."""
        if self._broken:
            return
        try:
            write()
        except OSError as exc:
            self._broken = True
            warnings.warn(pytest.PytestWarning(f"qrel: cannot write the journal {self.path} ({exc}): this run "
                                               "cannot be resumed; its results still reach results.json"), stacklevel=2)


def _tests(payload: dict[str, Any]) -> set[str]:
    """The tests a payload is of: its test (one that recorded nothing, e.g. skipped, is done too),
    and its records' (a journal written before payloads named their test)."""
    return {r["test"] for r in payload["results"]} | ({payload["test"]} if "test" in payload else set())
