"""``--qrel-merge a.json b.json ...``: separate runs joined into one report (issue 17, item 4b).

Runs made apart (one per host, Slurm array task or CI matrix job, each with its own
``--qrel-models``) each write ``results.json``; merging them runs no test and writes the report
a single run over the union would have written: its records are the runs' records, and its
tables, fitted laws, sweet spots, plots and exit status are computed from them as at the end of
a run (``summary.summarize``, ``report.write_run``).

What makes the union equal a single run is checked, each a one-line usage error naming the
file and the difference:

- every file is a pytest-qrel ``results.json`` of this schema that records its settings;
- the settings are equal: every option except those that say which variants a run tests and
  where it writes (``options.PER_RUN``); a threshold, seed, task or sample count that differs
  would make the union a mixture no single run produces;
- each model is in one run only: its family-wise corrections, fitted-law bounds and paired
  tests are decided over all of its variants in the run that tested them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import options
from .baseline import read_results_json
from .report import write_run, write_tables
from .results import Record
from .summary import RunSummary, problem_of, summarize


@dataclass
class MergedRun:
    """The union of several runs' results.json: their variants, records and common settings."""

    paths: tuple[Path, ...]
    variants: list[dict]
    records: list[Record]
    settings: dict[str, Any]
    models_named: list[str]  # the models the runs named with --qrel-models (their unchecked gates fail)
    _summary: RunSummary | None = None

    def summary(self, catalog) -> RunSummary:  # noqa: ANN001 - properties.Catalog
        if self._summary is None:
            seen = {r.variant for r in self.records}
            self._summary = summarize([v for v in self.variants if v["id"] in seen], self.records, catalog)
        return self._summary

    def problem(self) -> str | None:
        """Why the merged run must not pass though no gate failed (as ``summary.run_problem``)."""
        return problem_of(self.records, self.models_named, bool(self.settings.get(options.key_of(options.ALLOW_UNCHECKED))),
                          self.settings.get(options.key_of(options.BASELINE)))

    def failed(self) -> bool:
        return any(r.status in ("fail", "error") for r in self.records) or self.problem() is not None

    def write(self, report_dir: Path, catalog) -> Path:  # noqa: ANN001 - properties.Catalog
        return write_run(report_dir, self.summary(catalog), self.variants,
                         run={"settings": self.settings, "models_named": self.models_named or None})

    def terminal_summary(self, terminalreporter, report_dir: Path, catalog) -> None:  # noqa: ANN001
        terminalreporter.write_sep("=", f"pytest-qrel: {len(self.paths)} runs merged "
                                        f"({', '.join(str(p) for p in self.paths)})")
        write_tables(terminalreporter, self.summary(catalog), report_dir, catalog, self.problem())


def run_info(config) -> dict[str, Any]:  # noqa: ANN001 - config.QrelConfig
    """What results.json records of a run for a later merge: its settings and the models it named."""
    return {"settings": config.settings, "models_named": [n for n, _ in config.models] if config.models_given else None}


def _read(path: Path) -> dict:
    doc = read_results_json(path, options.MERGE)
    if not isinstance(doc.get("settings"), dict):
        raise pytest.UsageError(f"{options.MERGE}: {path} records no settings (written by an older pytest-qrel): rerun it")
    return doc


def _number(value: Any) -> Any:
    """A value as the run held it: results.json writes NaN and infinities as strings."""
    return float(value) if isinstance(value, str) and value in ("nan", "inf", "-inf") else value


def read_runs(paths: tuple[Path, ...]) -> MergedRun:
    """The union of the runs in ``paths``; a usage error if they cannot make one run."""
    if len(paths) < 2:
        raise pytest.UsageError(f"{options.MERGE}: expected at least two results.json files, but got {len(paths)}")
    docs = [_read(p) for p in paths]
    first, settings = paths[0], docs[0]["settings"]
    for path, doc in zip(paths[1:], docs[1:]):
        for key in sorted(set(settings) | set(doc["settings"])):
            mine, theirs = settings.get(key), doc["settings"].get(key)
            if mine != theirs:  # strings, lists and tables as the runs read them (options.run_settings)
                raise pytest.UsageError(f"{options.MERGE}: {path} was run with --qrel-{key}={theirs!r}, {first} with "
                                        f"{mine!r}: runs with different settings cannot be merged")
    owner: dict[str, Path] = {}
    variants: list[dict] = []
    records: list[Record] = []
    named: list[str] = []
    for path, doc in zip(paths, docs):
        models = {v["model"] for v in doc.get("variants", [])} | {r["model"] for r in doc["results"]}
        for model in sorted(models):
            if model in owner:
                raise pytest.UsageError(f"{options.MERGE}: model {model} is in both {owner[model]} and {path}: each "
                                        "model must be tested in one run (its family-wise corrections and fitted laws "
                                        "are decided over all of its variants)")
            owner[model] = path
        variants += doc.get("variants", [])
        records += [Record.from_dict({k: _number(v) for k, v in r.items()}) for r in doc["results"]]
        named += [m for m in doc.get("models_named") or [] if m not in named]
    return MergedRun(tuple(paths), variants, records, settings, named)
