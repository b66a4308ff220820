"""Presenting results: terminal tables and results.json. Nothing here computes a metric."""

from .results_json import SCHEMA_VERSION, write_results_json
from .terminal import write_tables

__all__ = ["SCHEMA_VERSION", "write_results_json", "write_tables"]
