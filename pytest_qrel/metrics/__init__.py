"""Reliability metrics: pure functions over numpy arrays or torch tensors.

Re-exports only; the implementations live in the submodules. Binned metrics
also come as additive sufficient statistics (``*Stats``) for streaming over
batches and merging across xdist workers.
"""

from __future__ import annotations

from .calibration import (
    CalibrationStats,
    ConfidenceShiftByBin,
    ConfidenceShiftStats,
    adaptive_calibration_error,
    adaptive_calibration_error_resamples,
    adaptive_calibration_error_rows,
    brier_score,
    confidence_shift_by_bin,
    expected_calibration_error,
    expected_calibration_error_rows,
)
from .divergence import js_distance, kl_divergence
from .graphical import (
    MultipleTestGraph,
    fixed_sequence_graph,
    graph_adjusted_pvalues,
    graph_reject,
    holm_graph,
    pooled_paired_test,
    primary_secondary_graph,
)
from .ranking import auprc, auroc, auroc_counts
from .stats import (
    BootstrapResult,
    Flips,
    MeanStats,
    TTestResult,
    adjust_pvalues,
    binomial_pvalue_above,
    binomial_upper_bound,
    correctness_flips,
    paired_bootstrap,
    paired_ttest,
    resample_counts,
)
from .topk import TokenStats, TopK, exact_stats, summarize_topk, topk_bounds
from .uncertainty import entropy, sequence_mean

__all__ = [
    "BootstrapResult",
    "CalibrationStats",
    "ConfidenceShiftByBin",
    "ConfidenceShiftStats",
    "Flips",
    "MeanStats",
    "MultipleTestGraph",
    "TTestResult",
    "TokenStats",
    "TopK",
    "adaptive_calibration_error",
    "adaptive_calibration_error_resamples",
    "adaptive_calibration_error_rows",
    "adjust_pvalues",
    "auprc",
    "auroc",
    "auroc_counts",
    "binomial_pvalue_above",
    "binomial_upper_bound",
    "brier_score",
    "confidence_shift_by_bin",
    "correctness_flips",
    "entropy",
    "exact_stats",
    "expected_calibration_error",
    "expected_calibration_error_rows",
    "fixed_sequence_graph",
    "graph_adjusted_pvalues",
    "graph_reject",
    "holm_graph",
    "js_distance",
    "kl_divergence",
    "paired_bootstrap",
    "paired_ttest",
    "pooled_paired_test",
    "primary_secondary_graph",
    "resample_counts",
    "sequence_mean",
    "summarize_topk",
    "topk_bounds",
]
