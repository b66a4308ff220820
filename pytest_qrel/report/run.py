"""Writing a run's report files: results.json, results.csv, the PNG plots, report.md."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..properties import CATALOG
from ..schema import RunInfo, VariantEntry
from ..summary import RunSummary, attempt
from .markdown import write_csv, write_markdown
from .plots import plot_confidence_shift, plot_metric_vs_bits, plot_pruned_vs_quantized, plot_robustness_radar
from .results_json import write_results_json

if TYPE_CHECKING:
    from ..config import QrelConfig


def write_run(report_dir: Path, summary: RunSummary, variants: list[VariantEntry], save_baseline: Path | None = None,
              run: RunInfo | None = None, fitted: tuple[str, ...] = CATALOG.fitted()) -> Path:
    """Write results.json, results.csv, one PNG per fitted metric (and the other plots) and report.md to
    ``report_dir`` (and results.json to ``save_baseline`` too); ``variants`` are every
    variant of the run (the summary's are those that reported), ``run`` its settings and named
    models (results.json's ``settings`` and ``models_named``), ``fitted`` the properties whose
    values the laws are fitted on (the catalog's); returns results.json's path."""
    path = write_results_json(report_dir, variants, summary.records, summary.fits, drift=summary.drift, run=run,
                              pruned_vs_quantized=[c.as_dict() for c in summary.pruned_vs_quantized])
    errors = dict(summary.errors)  # each file or plot that cannot be drawn: its one-line error in report.md
    attempt(errors, "results.csv", lambda: write_csv(report_dir, variants, summary.records))
    metrics = dict.fromkeys(f["metric"] for f in summary.fits if "@" not in f["metric"])  # per-task metrics: in report.md
    plots = attempt(errors, "scaling plots", lambda: [
        p for m in metrics if (p := plot_metric_vs_bits(report_dir, m, variants, summary.records, summary.fits, fitted))], [])
    plots += attempt(errors, "confidence shift plots", lambda: plot_confidence_shift(report_dir, summary.drift), [])
    plots += attempt(errors, "robustness radar plots", lambda: plot_robustness_radar(report_dir, summary.records), [])
    plots += attempt(errors, "pruned vs quantized plots",
                     lambda: plot_pruned_vs_quantized(report_dir, summary.pruned_vs_quantized), [])
    attempt(errors, "report.md", lambda: write_markdown(report_dir, summary, variants, plots, errors))
    if "report.md" in errors:
        (report_dir / "report.md").write_text(f"# pytest-qrel reliability report\n\n- the report could not be drawn: "
                                              f"{errors['report.md']}; results.json has every result\n")
    # the report's own results.json named as the baseline is already saved: nothing to copy
    if save_baseline is not None and save_baseline.resolve() != path.resolve():
        save_baseline.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, save_baseline)
    return path


def run_info(config: QrelConfig) -> RunInfo:
    """What results.json records of a run for a later merge: its settings and the models it named."""
    info: RunInfo = {"settings": config.settings, "models_named": [n for n, _ in config.models] if config.models_given else None}
    if config.baseline is not None:  # the settings hold the path as given, relative to the run's directory
        info["baseline_used"] = config.baseline.identity()
    return info
