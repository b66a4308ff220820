"""Presenting results: terminal tables, results.json, Markdown, CSV and PNG plots. Nothing here
computes a metric."""

from .drift import drift_summary, write_drift_tables
from .markdown import write_csv, write_markdown
from .plots import plot_confidence_shift, plot_metric_vs_bits, plot_robustness_radar
from .results_json import SCHEMA_VERSION, write_results_json
from .terminal import write_tables


def write_run(report_dir, variants: list[dict], records: list[dict], fits: list[dict],
              sweet: dict[str, list[dict]], save_baseline=None, drift: dict | None = None):
    """Write results.json, results.csv, one PNG per fitted metric and report.md to
    ``report_dir`` (and results.json to ``save_baseline`` too); returns results.json's path."""
    import shutil

    path = write_results_json(report_dir, variants, records, fits, drift=drift)
    write_csv(report_dir, variants, records)
    metrics = dict.fromkeys(f["metric"] for f in fits if "@" not in f["metric"])  # per-task metrics: in report.md
    plots = [p for m in metrics if (p := plot_metric_vs_bits(report_dir, m, variants, records, fits))]
    plots += plot_confidence_shift(report_dir, drift)
    plots += plot_robustness_radar(report_dir, records)
    write_markdown(report_dir, variants, records, fits, sweet, plots)
    if save_baseline is not None:
        save_baseline.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, save_baseline)
    return path


__all__ = ["SCHEMA_VERSION", "drift_summary", "plot_confidence_shift", "plot_metric_vs_bits", "plot_robustness_radar", "write_csv", "write_drift_tables",
           "write_markdown", "write_results_json", "write_run", "write_tables"]
