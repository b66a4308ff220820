"""Datasets: the JSONL fixtures shipped with pytest-qrel."""

from .files import calibration_texts, data_dir, heldout_texts, load_jsonl

__all__ = ["calibration_texts", "data_dir", "heldout_texts", "load_jsonl"]
