"""Drift of a quantized variant from its base on one multiple-choice task: the gated
hypotheses (a value in the harmful direction and its paired test's p-value), the
report-only comparisons, and the family-wise decision over many hypotheses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from .choices import N_BINS, ChoiceScores, summary

if TYPE_CHECKING:
    from .base import Measurement

# gated metrics per property: key in options (thresholds, levels) -> results.json metric
GATED: dict[str, dict[str, str]] = {
    "calibration": {"ece": "ece_increase", "ace": "ace_increase", "brier": "brier_increase"},
    "confidence": {"conf_true": "conf_true_drop", "entropy": "entropy_increase"},
}
BOOTSTRAP_RESAMPLES = 200  # enough for a standard error (the p-value: ~5% relative error) and a 95% interval


@dataclass(frozen=True)
class Hypothesis:
    """One gated metric of one variant on one task: ``value`` > 0 is harm (ECE up,
    true-class confidence down, ...); ``pvalue`` tests no change against change."""

    key: str  # ece, ace, brier, conf_true, entropy
    value: float
    base_value: float
    quant_value: float
    pvalue: float
    test: Literal["paired_ttest", "paired_bootstrap"]
    ci: tuple[float, float] | None = None  # bootstrap CI of the increase (ECE, ACE)


def _ece(probs: np.ndarray, correct: np.ndarray) -> float:
    from ..metrics import expected_calibration_error

    return expected_calibration_error(probs.max(axis=1), correct, n_bins=N_BINS)


def _ace(probs: np.ndarray, labels: np.ndarray) -> float:
    from ..metrics import adaptive_calibration_error

    return adaptive_calibration_error(probs, labels, n_bins=N_BINS)


def per_question_brier(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each question's term of the Brier score (paper 000 eq. 5); their mean is ``brier_score``."""
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    return ((probs - onehot) ** 2).sum(axis=1)


def hypotheses(base: ChoiceScores, quant: ChoiceScores, seed: int = 0) -> dict[str, Hypothesis]:
    """Every gated metric of ``quant`` against ``base`` on the same questions, with the
    paired test of paper 003 (t-test on per-question values, Tables 2, 4, 5) where the
    metric is a mean of per-question values, and a paired bootstrap where it is not (ECE,
    ACE: a question's term depends on the others in its bin)."""
    from ..metrics import entropy, paired_bootstrap, paired_ttest

    out: dict[str, Hypothesis] = {}
    bp, qp = base.probs, quant.probs
    for key, fn, a, b in (
        ("ece", _ece, (bp, base.correct), (qp, quant.correct)),
        ("ace", _ace, (bp, base.labels), (qp, quant.labels)),
    ):
        boot = paired_bootstrap(fn, a, b, n_resamples=BOOTSTRAP_RESAMPLES, seed=seed)
        out[key] = Hypothesis(key, boot.difference, fn(*a), fn(*b), boot.pvalue, "paired_bootstrap",
                              (boot.ci_low, boot.ci_high))
    pairs = {
        # key: (base per-question, quant per-question, sign: +1 when an increase is harm)
        "brier": (per_question_brier(bp, base.labels), per_question_brier(qp, quant.labels), 1.0),
        "conf_true": (base.true_class_confidence, quant.true_class_confidence, -1.0),
        "entropy": (entropy(base.log_probs, axis=1), entropy(quant.log_probs, axis=1), 1.0),
    }
    for key, (b_vals, q_vals, sign) in pairs.items():
        t = paired_ttest(q_vals, b_vals)
        out[key] = Hypothesis(key, sign * float(np.mean(q_vals - b_vals)), float(b_vals.mean()),
                              float(q_vals.mean()), t.pvalue, "paired_ttest")
    return out


def comparison(base: ChoiceScores, quant: ChoiceScores) -> dict:
    """What the report shows beside the gates (paper 003 Tables 1-2, Fig. 1, App. B): both
    models' numbers, their deltas, the Jensen-Shannon distance of true-class probabilities,
    and the mean confidence shift per bin of base confidence."""
    from ..metrics import confidence_shift_by_bin, js_distance, paired_ttest

    b, q = summary(base), summary(quant)
    shift = confidence_shift_by_bin(base.probs.max(axis=1), quant.probs.max(axis=1), n_bins=N_BINS)
    conf_t = paired_ttest(quant.probs.max(axis=1), base.probs.max(axis=1))
    return {
        "base": b,
        "quantized": q,
        "delta": {k: q[k] - b[k] for k in b},
        "conf_pvalue": conf_t.pvalue,
        "js_distance_true_class": js_distance(base.true_class_confidence, quant.true_class_confidence),
        "shift_by_bin": {
            "bin_edges": shift.bin_edges.tolist(),
            "counts": shift.counts.tolist(),
            "mean_base": [None if math.isnan(x) else x for x in shift.mean_base.tolist()],
            "mean_shift": [None if math.isnan(x) else x for x in shift.mean_shift.tolist()],
        },
    }


@dataclass(frozen=True)
class Decision:
    failed: bool
    adjusted_pvalue: float
    alpha: float
    threshold: float


def decide(
    family: dict[tuple, Hypothesis],
    thresholds: dict[str, float],
    alpha: dict[str, float],
    correction: Literal["holm", "bh"],
) -> dict[tuple, Decision]:
    """A hypothesis fails when its value exceeds its metric's threshold **and** its p-value,
    adjusted over the whole family (Holm: family-wise error; BH: false discovery rate), is
    at most its metric's level: noise alone does not fail, nor does a significant drift
    too small to matter."""
    from ..metrics import adjust_pvalues

    keys = list(family)
    if not keys:
        return {}
    adjusted = adjust_pvalues([family[k].pvalue for k in keys], correction)
    out = {}
    for k, p in zip(keys, adjusted.tolist()):
        h = family[k]
        out[k] = Decision(h.value > thresholds[h.key] and p <= alpha[h.key], p, alpha[h.key], thresholds[h.key])
    return out


def decided(h: Hypothesis, d: Decision, correction: str, family_size: int, **detail: object) -> Measurement:
    """A hypothesis and its family-wise decision as a gated measurement: the value, the
    base's, and what the report shows of the test (p-values, level, correction, interval)."""
    from .base import Measurement

    significant = d.adjusted_pvalue <= d.alpha
    return Measurement(h.value, h.base_value, None, {
        **detail,
        "quant_value": h.quant_value,
        "pvalue": h.pvalue,
        "adjusted_pvalue": d.adjusted_pvalue,
        "alpha": d.alpha,
        "correction": correction,
        "family_size": family_size,
        "stat_test": h.test,
        "significant": significant,
        **({"ci": list(h.ci)} if h.ci else {}),
    }, significant=significant)
