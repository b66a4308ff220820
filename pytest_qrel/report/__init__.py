"""Presenting results: terminal tables, results.json, Markdown, CSV and PNG plots. Nothing here
computes a metric."""

from .drift import write_drift_tables
from .markdown import write_csv, write_markdown
from .plots import plot_confidence_shift, plot_metric_vs_bits, plot_robustness_radar
from .results_json import SCHEMA_VERSION, write_results_json
from .run import write_run
from .terminal import write_tables

__all__ = ["SCHEMA_VERSION", "plot_confidence_shift", "plot_metric_vs_bits", "plot_robustness_radar", "write_csv", "write_drift_tables",
           "write_markdown", "write_results_json", "write_run", "write_tables"]
