"""Why a run must not pass (exit status 1) though no gate failed: it checked nothing, or nothing
of a model the user named, or its baseline compared nothing. The session asks at the end of a run,
--qrel-merge for a merged one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .results import Record

if TYPE_CHECKING:
    from .config import QrelConfig


def run_problem(records: list[Record], config: QrelConfig, skipped: str | None = None) -> str | None:
    """Why a run must not pass though no gate failed: it checked nothing, or nothing of a model
    the user named (unless --qrel-allow-unchecked), or its baseline compared nothing.
    ``skipped``: why its tests were skipped, if they were (e.g. a variant its backend lacks)."""
    named = [name for name, _ in config.models] if config.models_given else []
    baseline = str(config.baseline.path) if config.baseline else None
    return problem_of(records, named, config.allow_unchecked, baseline, skipped)


def problem_of(records: list[Record], named: list[str], allow_unchecked: bool, baseline: str | None,
               skipped: str | None = None) -> str | None:
    """``run_problem`` from its parts (a merged run has them from its runs' settings)."""
    return (None if allow_unchecked else unchecked(records, named, skipped)) or baseline_unmatched(records, baseline)


def baseline_unmatched(records: list[Record], baseline: str | None) -> str | None:
    """Why a baseline compared nothing: it shares no gated metric with the run."""
    gated = [r for r in records if r.gated]
    if baseline is None or not gated or any(r.baseline_value is not None for r in gated):
        return None
    return f"the baseline {baseline} shares no test with this run: nothing was compared with it"


def unchecked(records: list[Record], models: list[str], skipped: str | None = None) -> str | None:
    """Why the run checked nothing, or checked nothing of a model in ``models`` (the ones the
    user named): a gate that never could fail must not let the run pass, whatever the reason
    (every variant one its backend lacks, a backend not installed: ``skipped`` says which).
    None when every model had at least one gate checked (passed or failed) or errored."""
    if not records:
        return f"nothing was checked: no test of this run recorded a gate ({skipped or 'every test was skipped'})"
    decided = [r for r in records if r.gated or r.status == "error"]
    if not decided:
        first = next((r for r in records if r.reason), records[0])
        return (f"nothing was checked: all {len(records)} gates of this run were not checked "
                f"(e.g. {first.variant} {first.label()}: {first.reason})")
    missing = [m for m in models if not any(r.model == m for r in decided)]
    if missing:
        own = next((r for r in records if r.model == missing[0] and r.reason), None)
        why = f" (e.g. {own.variant} {own.label()}: {own.reason})" if own else " (none of its tests ran)"
        return f"nothing was checked of {', '.join(missing)}{why}"
    return None
