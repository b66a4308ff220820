"""The statistics of a family-wise gate (paper 003's paired tests, Holm / Benjamini-Hochberg,
power before PASS): one hypothesis per (variant, unit, gated metric), its test, the family's
decision on it, and the record a test reports (``judge``). ``family.py`` collects and decides
the hypotheses of a model; this module holds what each one is and how it is judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Hashable, Literal

import numpy as np

from ..metrics import adjust_pvalues, binomial_pvalue_above, binomial_upper_bound, paired_ttest
from .base import Measurement

BOOTSTRAP_RESAMPLES = 200  # enough for a standard error (the p-value: ~5% relative error) and a 95% interval
Unit = Hashable  # what one test of a variant is about: a task name, a (perturbation, intensity)


@dataclass(frozen=True)
class Hypothesis:
    """One gated metric of one variant on one unit: ``value`` > 0 is harm (ECE up,
    true-class confidence down, accuracy down, ...); ``pvalue`` tests no change against change,
    except for a share of samples (``exact_binomial``), whose null is its threshold (see
    ``share_hypothesis``)."""

    key: str  # the metric's catalog key: ece, conf_true, accuracy, ...
    value: float
    base_value: float
    quant_value: float
    pvalue: float
    test: Literal["paired_ttest", "paired_bootstrap", "exact_binomial"]
    ci: tuple[float, float] | None = None  # bootstrap CI of the harm
    se: float = math.nan  # standard error of ``value``: sd of the paired differences / sqrt(n), or the bootstrap's
    n: int = 0  # paired samples (questions, prompts) the test saw
    df: int | None = None  # the t-test's degrees of freedom (None: a normal approximation, the bootstrap)
    events: int | None = None  # for a share (exact_binomial): the samples that show the event


def paired_hypothesis(key: str, base: np.ndarray, quant: np.ndarray, sign: float) -> Hypothesis:
    """A metric that is a mean of per-sample values: its harm ``sign * mean(quant - base)``
    with the paired t-test of paper 003 (Tables 2, 4, 5) and its standard error."""
    t = paired_ttest(quant, base)
    d = quant - base
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.nan
    return Hypothesis(key, sign * float(d.mean()), float(base.mean()), float(quant.mean()), t.pvalue, "paired_ttest",
                      se=se, n=int(d.size), df=int(d.size) - 1)


def share_hypothesis(key: str, events: int, n: int, threshold: float) -> Hypothesis:
    """A metric that is the share of ``n`` samples showing an event (questions whose
    correctness flips, Dutta et al. 2024 §3), with the exact one-sided binomial test of
    H0: share <= threshold. Not a test of no change, as the other gates': the base against
    itself shows no event, so any one event would reject "share = 0"; against the threshold,
    a small p-value says the share is above what is tolerated. ``judge`` passes it only when
    the share is significantly below the threshold (its exact upper bound)."""
    share = events / n
    return Hypothesis(key, share, 0.0, share, binomial_pvalue_above(events, n, threshold), "exact_binomial",
                      se=math.sqrt(share * (1 - share) / n), n=n, events=events)


def share_sample_size(share: float, threshold: float, level: float, limit: int = 10**7) -> int | None:
    """The fewest samples with which a share of ``share`` would be decided at ``level``: its
    exact upper bound below ``threshold`` (PASS), or its exact test against ``threshold``
    significant (FAIL); None at the threshold itself, or beyond ``limit`` samples."""

    def decided(n: int) -> bool:
        k = round(share * n)
        if share < threshold:
            return binomial_upper_bound(k, n, level) < threshold
        return binomial_pvalue_above(k, n, threshold) <= level

    if share == threshold or not decided(limit):
        return None
    low, high = 1, 1
    while not decided(high):
        low, high = high, high * 2
    while high - low > 1:  # the rounding of share * n makes this nearly, not exactly, monotone
        mid = (low + high) // 2
        low, high = (low, mid) if decided(mid) else (mid, high)
    return high


POWER = 0.8  # a PASS says the gate would have caught a harm of its threshold's size this often


def minimum_detectable_effect(h: Hypothesis, level: float) -> float:
    """The smallest harm the two-sided test of ``h`` at ``level`` detects with probability
    ``POWER``: (q(1 - level/2) + q(POWER)) x se, q the t quantile with the test's degrees of
    freedom (the normal one for the bootstrap), as for a paired t-test's sample size (and
    TensorRT-LLM's accuracy gate: alpha, beta, sigma, n). Infinite with no spread to go by."""
    from scipy import stats

    if not h.se > 0:
        return math.inf
    q = stats.t(h.df) if h.df else stats.norm
    return float((q.ppf(1 - level / 2) + q.ppf(POWER)) * h.se)


def judge(h: Hypothesis, d: Decision, correction: str, family_size: int, sample_option: str,
          **detail: object) -> Measurement:
    """A hypothesis and its family-wise decision as a gated measurement. A harm past its
    threshold and significant fails; anything else passes only if the test could have
    detected a harm of the threshold's size at power ``POWER`` at the strictest level the
    correction gives a hypothesis of the family (Bonferroni's alpha / m: Holm's first step,
    BH's smallest); otherwise it is not checked, with the sample size that would suffice."""
    measurement = decided(h, d, correction, family_size, **detail)
    if d.failed:
        return measurement
    level = d.alpha / max(family_size, 1)
    if h.test == "exact_binomial":
        return _judge_share(h, d, measurement, level, correction, family_size, sample_option)
    mde = minimum_detectable_effect(h, level)
    if mde <= d.threshold:
        return replace(measurement, detail={**measurement.detail, "minimum_detectable": mde, "power": POWER})
    if math.isinf(mde):
        why = (f"{h.key}: base and variant do not differ on any of the {h.n or 'its'} samples, so the data show "
               f"nothing of the spread a harm of {d.threshold:g} would have")
    else:
        needed = math.ceil(h.n * (mde / d.threshold) ** 2) if h.n else None
        why = (f"{h.key}: with {h.n} samples the smallest harm this test detects at power {POWER:g} (level "
               f"{level:.2g}: {correction} over {family_size} hypotheses) is {mde:.3g}, above the threshold "
               f"{d.threshold:g}" + (f"; {sample_option} >= {needed} would suffice" if needed else ""))
    return replace(measurement, unchecked=why)


def _judge_share(h: Hypothesis, d: Decision, measurement: Measurement, level: float, correction: str,
                 family_size: int, sample_option: str) -> Measurement:
    """A share that did not fail passes only when the exact one-sided test rejects "share >=
    threshold" at ``level`` (the strictest level of the family, as for the other gates): its
    Clopper-Pearson upper bound is below the threshold, so a share of the threshold's size
    would pass at most that often. Otherwise it is not checked, with the sample size that would
    decide the observed share."""
    assert h.events is not None
    upper = binomial_upper_bound(h.events, h.n, level)
    if upper < d.threshold:
        return replace(measurement, detail={**measurement.detail, "upper_bound": upper, "bound_level": level})
    needed = share_sample_size(h.value, d.threshold, level)
    where = f"level {level:.2g}: {correction} over {family_size} hypotheses"
    if h.value < d.threshold:
        why = (f"{h.key}: with {h.n} samples the share {h.value:.3g} is below the threshold {d.threshold:g}, but "
               f"its exact upper bound {upper:.3g} ({where}) is not, so a share of {d.threshold:g} could not be ruled out")
    else:
        why = (f"{h.key}: with {h.n} samples the share {h.value:.3g} is not below the threshold {d.threshold:g}, nor "
               f"significantly above it (adjusted p = {d.adjusted_pvalue:.3g} > {d.alpha:g}; {where})")
    why += f"; {sample_option} >= {needed} would decide it" if needed else ""
    return replace(measurement, unchecked=why, detail={**measurement.detail, "upper_bound": upper, "bound_level": level})


@dataclass(frozen=True)
class Decision:
    failed: bool
    adjusted_pvalue: float
    alpha: float
    threshold: float


def decide(
    family: dict[tuple, Hypothesis],
    thresholds: dict,
    alpha: dict[str, float],
    correction: Literal["holm", "bh"],
) -> dict[tuple, Decision]:
    """A hypothesis fails when its value exceeds its metric's threshold **and** its p-value,
    adjusted over the whole family (Holm: family-wise error; BH: false discovery rate), is
    at most its metric's level: noise alone does not fail, nor does a significant drift
    too small to matter. ``thresholds`` holds a threshold by metric key, or by hypothesis
    key where it depends on the variant (a flip rate's, per bit-width)."""

    keys = list(family)
    if not keys:
        return {}
    adjusted = adjust_pvalues([family[k].pvalue for k in keys], correction)
    out = {}
    for k, p in zip(keys, adjusted.tolist()):
        h = family[k]
        threshold = thresholds[k] if k in thresholds else thresholds[h.key]
        out[k] = Decision(h.value > threshold and p <= alpha[h.key], p, alpha[h.key], threshold)
    return out


def decided(h: Hypothesis, d: Decision, correction: str, family_size: int, **detail: object) -> Measurement:
    """A hypothesis and its family-wise decision as a gated measurement: the value, the
    base's, and what the report shows of the test (p-values, level, correction, interval)."""
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
