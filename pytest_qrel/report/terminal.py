"""The end-of-run scaling tables: per model and property, the base first, then every variant
by total model bits with PASS, FAIL, SKIP or ERROR and its reason; the fitted laws, the sweet
spot per total-bit budget and the baseline comparison. Nothing here computes a metric."""

from __future__ import annotations

from pathlib import Path
from typing import AbstractSet

from ..properties import CATALOG, Catalog
from ..results import Record
from ..schema import FitEntry, VariantEntry
from ..summary import RunSummary, SweetSpot, Verdict, attempt, not_run_lines, shown
from ..variants import bits_label
from .drift import write_drift_tables
from .kl import text_notes, write_kl_tables
from .pruned import write_pruned_tables
from .robustness import write_robustness_tables

COLUMNS = ("variant", "method", "bits", "eff bits", "stored bits", "total bits", "layers", "metric", "value",
           "vs base", "threshold", "result")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec) if isinstance(value, (int, float)) else str(value)


def _outcome(record: Record) -> str:
    status, reason = record.status, record.reason
    return status.upper() + (f": {reason}" if reason and status != "pass" else "")


def _delta(record: Record, changes: AbstractSet[tuple[str | None, str | None]] = frozenset()) -> str:
    value, base = record.value, record.base_value
    if (record.property, record.metric) in changes and isinstance(base, (int, float)):
        # the value is already a change from the base: show the base's level, not value - level
        return f"base {base:.4g}"
    if isinstance(value, (int, float)) and isinstance(base, (int, float)):
        return format(value - base, "+.4g")
    predicted = record.detail.get("predicted")  # a fitted law's prediction stands in for the base
    return "-" if predicted is None else f"law {predicted:.4g}"


def _rows(model: str, variants: list[VariantEntry], results: list[Record], prop: str | None = None,
          changes: AbstractSet[tuple[str | None, str | None]] = frozenset()) -> list[tuple[str, ...]]:
    by_variant: dict[str, list[Record]] = {}
    for r in results:
        if prop is None or r.property in (prop, None):
            by_variant.setdefault(r.variant, []).append(r)
    rows: list[tuple[str, ...]] = []
    ordered = sorted(
        (v for v in variants if v["model"] == model),
        key=lambda v: (v["total_bits"] is None, v["total_bits"] or 0, v["method"], v["bits"]),
    )
    for v in ordered:
        head = (
            v["id"],
            v["method"],
            bits_label(v),
            _fmt(v["effective_bits"], ".3f"),
            _fmt(v.get("storage_bits"), ".3f"),
            _fmt(v["total_bits"], ".4g"),
            "-" if v.get("quantized_layers") is None else f"{v['quantized_layers']}/{v['linear_layers']}",
        )
        records = by_variant.get(v["id"], [])
        if records:
            for r in records:
                rows.append(head + (r.label(), _fmt(r.value, ".4g"), _delta(r, changes), _fmt(r.threshold, ".6g"),
                                    _outcome(r)))
        elif v.get("skip_reason"):
            rows.append(head + ("-", "-", "-", "-", f"SKIP: {v['skip_reason']}"))
        else:
            rows.append(head + ("-", "-", "-", "-", f"ERROR: {v['error']}" if v.get("error") else "NOT RUN"))
    return rows


def _base_row(model: str, variants: list[VariantEntry], records: list[Record]) -> tuple[str, ...] | None:
    total = next((v.get("base_total_bits") for v in variants if v["model"] == model and v.get("base_total_bits")), None)
    base = next((r for r in records if r.base_value is not None and r.variant in
                 {v["id"] for v in variants if v["model"] == model}), None)
    if total is None and base is None:
        return None
    return (f"{model} (base)", "-", "full", "-", "-", _fmt(total, ".4g"), "-",
            base.metric or "-" if base else "-", _fmt(base.base_value, ".4g") if base else "-", "-", "-", "")


def _table(tr, title: str, rows: list[tuple[str, ...]]) -> None:
    tr.write_line("")
    tr.write_line(title)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS[:-1])]
    tr.write_line("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)) + "  " + COLUMNS[-1])
    for r in rows:
        line = ("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1]).rstrip()
        markup = ({"red": True} if r[-1].startswith(("FAIL", "ERROR")) else {"green": True} if r[-1] == "PASS"
                  else {"yellow": True} if r[-1] else {})
        tr.write_line(line, **markup)


def _regrouped_notes(model: str, variants: list[VariantEntry]) -> list[str]:
    """One line per variant that quantized some layers with another group size than asked
    (a row narrower than the group): quantized all the same, and said so."""
    notes = []
    for v in variants:
        regrouped = v.get("regrouped") or {}
        if v["model"] != model or not regrouped:
            continue
        reasons = sorted(set(regrouped.values()))
        notes.append(f"note: {v['id']}: {len(regrouped)} layer{'s' if len(regrouped) > 1 else ''} "
                     f"quantized with {reasons[0]}" + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""))
    return notes


def write_tables(terminalreporter, summary: RunSummary, report_dir: Path, catalog: Catalog = CATALOG,
                 problem: str | None = None) -> None:
    """The verdict matrix; per model, one table per property in catalog order; then the
    robustness tables, the fitted laws, sweet spots, the baseline comparison, the counts, the
    paper 003 tables and the pruned-vs-quantized comparison (paper 000 §4.2). A section that cannot be drawn is replaced by its one-line error."""
    tr = terminalreporter
    tr.write_sep("=", "qrel reliability report")
    for name, error in summary.errors.items():
        tr.write_line(f"qrel: the {name} could not be computed: {error}", red=True)
    sections = (
        ("verdict matrix", lambda: _write_verdicts(tr, summary.verdicts)),
        ("per-model tables", lambda: _write_model_tables(tr, summary, catalog)),
        ("KL statistics", lambda: write_kl_tables(tr, summary.records)),
        ("robustness tables", lambda: write_robustness_tables(tr, summary.robustness)),
        ("fitted laws", lambda: _write_fits(tr, summary.fits)),
        ("sweet spots", lambda: _write_sweet_spots(tr, summary.sweet)),
        ("baseline comparison", lambda: _write_baseline(tr, summary.records)),
        ("counts", lambda: _write_counts(tr, summary, report_dir)),
        ("calibration and confidence tables", lambda: write_drift_tables(tr, summary.drift)),
        ("pruned vs quantized tables", lambda: write_pruned_tables(tr, summary.pruned_vs_quantized)),
    )
    for name, draw in sections:
        errors: dict[str, str] = {}
        attempt(errors, name, draw)
        for error in errors.values():
            tr.write_line(f"qrel: the {name} could not be drawn: {error}", red=True)
    if problem:  # the one line saying why a run that failed no gate must not pass (run_status.run_problem)
        tr.write_line(f"qrel: FAILED, {problem}" + ("" if "baseline" in problem else
                      "; pass --qrel-allow-unchecked to accept it"), red=True)


def _write_model_tables(tr, summary: RunSummary, catalog: Catalog) -> None:
    variants, results = summary.variants, shown(summary.records, catalog)
    present = {r.property for r in results if r.property}
    props: list[str | None] = [*(p for p in catalog.recorded() if p in present), *sorted(present - set(catalog.recorded()))] or [None]
    # a property whose metrics are changes from the base (a drop, an increase) has no base row:
    # the base's value of such a metric is its level, not a value of the metric
    changes = {p.records_as for p in catalog if all(m.change for m in p.metrics)}
    change_metrics = {(p.records_as, m.name) for p in catalog for m in p.metrics if m.change}
    for model in dict.fromkeys(v["model"] for v in variants):
        params = next((v["params"] for v in variants if v["model"] == model and v["params"]), None)
        for prop in props:
            rows = _rows(model, variants, results, prop, change_metrics)
            if not rows:
                continue
            base = None if prop in changes else _base_row(
                model, variants, [r for r in results if prop is None or r.property == prop])
            title = (f"model {model}" + (f" ({params:,} parameters)" if params else "")
                     + (f", {prop}" if prop else "") + ", rows by total model bits:")
            _table(tr, title, ([base] if base else []) + rows)
        for note in _regrouped_notes(model, variants):
            tr.write_line(note)


def _write_counts(tr, summary: RunSummary, report_dir: Path) -> None:
    counts = {s: sum(r.status == s for r in summary.records) for s in ("pass", "fail", "error", "skip")}
    tr.write_line("")
    tr.write_line(
        f"qrel: {counts['pass']} passed, {counts['fail']} failed thresholds, {counts['error']} errors"
        + (f", {counts['skip']} not checked" if counts["skip"] else "") + f"; results in {report_dir / 'results.json'}"
    )
    for note in text_notes(summary.records):
        tr.write_line(f"qrel: warning: {note}", yellow=True)
    for line in not_run_lines(summary.not_run):  # a property of a model that was not run, and what would run it
        tr.write_line(f"qrel: {line}", yellow=True)
    for prop, c in summary.counts.items():
        tr.write_line(f"qrel {prop}: {c.passed + c.failed} checked ({c.passed} passed, {c.failed} failed), "
                      f"{c.not_checked} not checked, {c.errors} errors")


def _write_fits(tr, fits: list[FitEntry]) -> None:
    """Every law of a gated metric in full; one line per per-task metric (results.json and
    report.md have them all in full)."""
    if not fits:
        return
    tr.write_line("")
    tr.write_line("fitted laws (paper 000 eq. 6 per bit-width; paper 002 eq. 2 over all variants):")
    compact: dict[str, list[str]] = {}
    for f in fits:
        adj = "-" if f.get("adj_r2") is None else f"{f['adj_r2']:.3f}"
        if "@" in f["metric"]:
            compact.setdefault(f["metric"], []).append(f"{f['family']} {f['law']} {adj if f.get('fitted') else 'not fitted'}")
            continue
        head = f"  {f['metric']} {f['law']} {f['family']}:"
        if not f.get("fitted"):
            tr.write_line(f"{head} not fitted: {f['reason']}")
            continue
        coefs = ", ".join(f"{k}={v:.4g}" for k, v in f["coefficients"].items())
        tr.write_line(f"{head} {f['form']}; {coefs}; n={f['n']}, adjusted R²={adj}")
        for row in f.get("ablation") or []:
            r2 = "not fitted" if row["adj_r2"] is None else f"adjusted R²={row['adj_r2']:.3f}"
            tr.write_line(f"    factors {' x '.join(row['factors'])}: {r2}")
    for metric, laws in compact.items():
        tr.write_line(f"  {metric} (adjusted R²): {'; '.join(laws)}")


def _write_sweet_spots(tr, sweet: dict[str, list[SweetSpot]]) -> None:
    for metric, frontier in sweet.items():
        if not frontier:
            continue
        tr.write_line("")
        tr.write_line(f"sweet spot for {metric}: the best variant within each total-bit budget (paper 000's 4-bit question)")
        for s in frontier:
            tr.write_line(f"  <= {s.total_bits:.4g} bits: {s.variant} ({s.bits}-bit {s.method}), {metric} {s.value:.4g}")


def _write_baseline(tr, results: list[Record]) -> None:
    missing = [r for r in results if r.detail.get("baseline") == "not in the baseline"]
    if missing:
        tr.write_line("")
        tr.write_line(f"not in the baseline: {len(missing)} metrics, not compared (--qrel-baseline-strict fails them): "
                      + ", ".join(f"{r.test} {r.metric}" for r in missing[:5]) + (", ..." if len(missing) > 5 else ""))
    compared = [r for r in results if r.baseline_value is not None]
    if not compared:
        return
    tr.write_line("")
    tr.write_line("against the baseline (old, new, change):")
    for r in compared:
        old, new, change = r.baseline_value, r.value, r.change
        pct = f" ({change / abs(old):+.1%})" if old and isinstance(change, (int, float)) else ""
        tr.write_line(f"  {r.test}: {old:.4g} -> {_fmt(new, '.4g')}, {_fmt(change, '+.4g')}{pct}  "
                      f"{'PASS' if r.passed else _outcome(r)}")


def verdict_rows(verdicts: dict[str, dict[str, Verdict]]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the verdict matrix: a row per variant, a column per property."""
    props = list(dict.fromkeys(p for row in verdicts.values() for p in row))
    return ["variant", *props], [[vid, *(row.get(p, "-") for p in props)] for vid, row in verdicts.items()]


def _write_verdicts(tr, verdicts: dict[str, dict[str, Verdict]]) -> None:
    head, rows = verdict_rows(verdicts)
    if not rows or len(head) < 2:
        return
    tr.write_line("verdicts (which checkpoints may ship):")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        line = "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
        bad = any(c in ("FAIL", "ERROR") for c in r[1:])
        tr.write_line(line, **({"red": True} if bad else {}))
