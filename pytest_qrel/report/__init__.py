"""Presenting results: terminal tables and results.json. Nothing here computes a metric."""

from .drift import drift_summary, write_drift_tables
from .results_json import SCHEMA_VERSION, write_results_json
from .terminal import write_tables

__all__ = ["SCHEMA_VERSION", "drift_summary", "write_drift_tables", "write_results_json", "write_tables"]
