"""The Markdown report and the CSV of every result: the same tables as the terminal, with the
fitted laws and links to the plots. Only presents."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping

from ..results import Record
from ..schema import VariantEntry
from ..summary import RunSummary, attempt, not_run_lines, shown
from ..variants import bits_label
from .drift import drift_markdown_lines
from .kl import kl_markdown_lines
from .pruned import pruned_markdown_lines
from .robustness import markdown_lines
from .table import markdown_table
from .terminal import verdict_rows

CSV_COLUMNS = ("test", "property", "variant", "model", "method", "bits", "group_size", "metric", "value",
               "base_value", "threshold", "status", "reason", "total_bits", "effective_bits", "storage_bits")


def write_csv(report_dir: Path, variants: list[VariantEntry], records: list[Record]) -> Path:
    by_id: dict[str, VariantEntry] = {v["id"]: v for v in variants}
    path = report_dir / "results.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in records:
            v: Mapping[str, Any] = by_id.get(r.variant) or {}
            writer.writerow({**{k: v.get(k) for k in ("total_bits", "effective_bits", "storage_bits")}, **r.as_dict()})
    return path


def _cell(value: object, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec) if isinstance(value, (int, float)) else str(value).replace("|", "\\|")


def write_markdown(report_dir: Path, summary: RunSummary, variants: list[VariantEntry], plots: list[Path],
                   errors: dict[str, str] | None = None) -> Path:
    """report.md: ``variants`` (every variant of the run) with their records, the robustness
    tables, the pruned-vs-quantized comparison, the fitted laws, the sweet spots and the plots."""
    records, fits, sweet = summary.records, summary.fits, summary.sweet
    lines = ["# pytest-qrel reliability report", ""]
    lines += [f"- the {name} could not be drawn: {error}" for name, error in (errors or summary.errors).items()]
    lines += [""] if errors or summary.errors else []
    head, rows = verdict_rows(summary.verdicts)
    if rows and len(head) > 1:
        lines += ["## Verdicts", "", *markdown_table(head, rows)]
    lines += [*(f"- {line}" for line in not_run_lines(summary.not_run)), ""] if summary.not_run else []
    by_variant: dict[str, list[Record]] = {}
    for r in shown(records):
        by_variant.setdefault(r.variant, []).append(r)
    for model in dict.fromkeys(v["model"] for v in variants):
        lines += [f"## {model}", "", "| variant | method | bits | eff bits | total bits | property | metric | value | "
                  "threshold | result |", "|---|---|---|---|---|---|---|---|---|---|"]
        ordered = sorted((v for v in variants if v["model"] == model),
                         key=lambda v: (v["total_bits"] is None, v["total_bits"] or 0))
        for v in ordered:
            lead = f"| {v['id']} | {v['method']} | {bits_label(v)} | {_cell(v['effective_bits'], '.3f')} | {_cell(v['total_bits'])} |"
            cells: list[tuple] = [(r.property, r.label(), r.value, r.threshold, r.status, r.reason) for r in by_variant.get(v["id"], [])]
            for prop, metric, value, threshold, status, reason in cells or [(None, None, None, None, v.get("status"), v.get("reason"))]:
                outcome = (status or "").upper() + (f": {reason}" if reason else "")
                lines.append(f"{lead} {_cell(prop)} | {_cell(metric)} | {_cell(value)} | {_cell(threshold)} | {_cell(outcome)} |")
        lines.append("")
    section_errors: dict[str, str] = {}
    lines += attempt(section_errors, "calibration and confidence tables", lambda: drift_markdown_lines(summary.drift), [])
    lines += attempt(section_errors, "KL statistics", lambda: kl_markdown_lines(records), [])
    lines += attempt(section_errors, "robustness tables", lambda: markdown_lines(summary.robustness), [])
    lines += attempt(section_errors, "pruned vs quantized tables",
                     lambda: pruned_markdown_lines(summary.pruned_vs_quantized), [])
    lines += [f"- the {name} could not be drawn: {error}" for name, error in section_errors.items()]
    if fits:
        lines += ["## Fitted laws", "", "| metric | law | family | form | coefficients | n | adjusted R² |",
                  "|---|---|---|---|---|---|---|"]
        for f in fits:
            if f.get("fitted"):
                coefs = ", ".join(f"{k} = {v:.4g}" for k, v in f["coefficients"].items())
                lines.append(f"| {f['metric']} | {f['law']} | {f['family']} | {f['form']} | {coefs} | {f['n']} | "
                             f"{_cell(f.get('adj_r2'), '.3f')} |")
            else:
                lines.append(f"| {f['metric']} | {f['law']} | {f['family']} | not fitted | {_cell(f['reason'])} | - | - |")
        lines.append("")
    for metric, frontier in sweet.items():
        if frontier:
            lines += [f"## Sweet spot: {metric}", "", "| total-bit budget | best variant | bits | method | value |",
                      "|---|---|---|---|---|"]
            lines += [f"| <= {s.total_bits:.4g} | {s.variant} | {s.bits} | {s.method} | {s.value:.4g} |"
                      for s in frontier]
            lines.append("")
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.name})", ""]
    path = report_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
