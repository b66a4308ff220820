"""pytest_qrel.metrics against independent references (sklearn, scipy, torch, hand loops).

Every comparison is in float64 and must agree within 1e-9.
"""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import inspect
import json
import math
import pkgutil
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.special
import scipy.stats
import torch
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

import pytest_qrel.metrics as metrics
from pytest_qrel.metrics import (
    CalibrationStats,
    ConfidenceShiftStats,
    MeanStats,
    adaptive_calibration_error,
    auprc,
    auroc,
    brier_score,
    confidence_shift_by_bin,
    entropy,
    expected_calibration_error,
    js_distance,
    kl_divergence,
    paired_ttest,
    sequence_mean,
)

TOL = 1e-9


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240607)


def random_logprobs(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 3.0) -> np.ndarray:
    return scipy.special.log_softmax(rng.normal(scale=scale, size=shape), axis=-1)


# ---------------------------------------------------------------- naive references
# Written as plain loops, independent of the vectorised implementation.


def naive_bins(values: np.ndarray, n_bins: int) -> list[list[int]]:
    """Indices per bin (lo, hi]; the first bin also takes lo = 0 (003 App. B)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins: list[list[int]] = [[] for _ in range(n_bins)]
    for i, v in enumerate(values):
        for m in range(n_bins):
            if edges[m] < v <= edges[m + 1] or (m == 0 and v == 0.0):
                bins[m].append(i)
                break
    return bins


def naive_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    total = 0.0
    for members in naive_bins(conf, n_bins):
        if members:
            acc = sum(float(correct[i]) for i in members) / len(members)
            mean_conf = sum(float(conf[i]) for i in members) / len(members)
            total += len(members) / len(conf) * abs(acc - mean_conf)
    return total


def naive_ace(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    n, n_classes = probs.shape
    base, extra = divmod(n, n_bins)
    sizes = [base + 1 if m < extra else base for m in range(n_bins)]
    gaps = []
    for c in range(n_classes):
        order = sorted(range(n), key=lambda i: probs[i, c])  # Python's sort is stable
        start = 0
        for size in sizes:
            members = order[start : start + size]
            start += size
            if members:
                acc = sum(labels[i] == c for i in members) / size
                conf = sum(probs[i, c] for i in members) / size
                gaps.append(abs(acc - conf))
    return sum(gaps) / len(gaps)


def naive_shift(base: np.ndarray, quant: np.ndarray, n_bins: int) -> tuple[list[int], list[float], list[float]]:
    counts, mean_base, mean_shift = [], [], []
    for members in naive_bins(base, n_bins):
        counts.append(len(members))
        mean_base.append(sum(base[i] for i in members) / len(members) if members else math.nan)
        mean_shift.append(sum(quant[i] - base[i] for i in members) / len(members) if members else math.nan)
    return counts, mean_base, mean_shift


def with_edges(rng: np.random.Generator, n: int, n_bins: int) -> np.ndarray:
    """Random confidences plus every bin edge, so edge handling is exercised."""
    return rng.permutation(np.concatenate([rng.uniform(size=n), np.linspace(0.0, 1.0, n_bins + 1)]))


# ---------------------------------------------------------------- entropy


def test_entropy_matches_scipy(rng: np.random.Generator) -> None:
    logp = random_logprobs(rng, (4, 6, 50))
    np.testing.assert_allclose(entropy(logp), scipy.stats.entropy(np.exp(logp), axis=-1), rtol=0, atol=TOL)
    np.testing.assert_allclose(
        entropy(np.moveaxis(logp, -1, 0), axis=0), scipy.stats.entropy(np.exp(logp), axis=-1), rtol=0, atol=TOL
    )


def test_entropy_zero_probabilities_contribute_nothing() -> None:
    with np.errstate(divide="ignore"):
        logp = np.log(np.array([[0.5, 0.0, 0.5], [1.0, 0.0, 0.0]]))  # -inf where p = 0
    np.testing.assert_allclose(entropy(logp), [math.log(2.0), 0.0], rtol=0, atol=TOL)
    assert entropy(logp)[1] == 0.0


def test_entropy_accepts_float32_torch_tensor(rng: np.random.Generator) -> None:
    logits = torch.tensor(rng.normal(size=(3, 40)), dtype=torch.float32, requires_grad=True)
    logp = torch.log_softmax(logits, dim=-1)
    out = entropy(logp)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    # scipy.stats.entropy would renormalise p (float32 rows sum to 1 +- 1e-7); entr does not
    reference = scipy.special.entr(np.exp(logp.detach().double().numpy())).sum(axis=-1)
    np.testing.assert_allclose(out, reference, rtol=0, atol=TOL)


# ---------------------------------------------------------------- Brier score


def test_brier_binary_is_twice_sklearn(rng: np.random.Generator) -> None:
    # sklearn's binary Brier is (p1 - y)^2; eq. 5 sums both classes' squared gaps.
    p1 = rng.uniform(size=200)
    y = rng.integers(0, 2, size=200)
    probs = np.column_stack([1.0 - p1, p1])
    assert brier_score(probs, y) == pytest.approx(2.0 * brier_score_loss(y, p1), abs=TOL)


def test_brier_multiclass_matches_sklearn(rng: np.random.Generator) -> None:
    probs = np.exp(random_logprobs(rng, (300, 5)))
    y = rng.integers(0, 5, size=300)
    ref = brier_score_loss(y, probs, labels=np.arange(5), scale_by_half=False)
    assert brier_score(probs, y) == pytest.approx(ref, abs=TOL)


def test_brier_by_hand() -> None:
    # (0.75-1)^2 + (0.25-0)^2 = 0.125; (0.5-0)^2 + (0.5-1)^2 = 0.5; mean 0.3125
    assert brier_score([[0.75, 0.25], [0.5, 0.5]], [0, 1]) == 0.3125
    assert brier_score([[1.0, 0.0, 0.0]], [0]) == 0.0
    assert brier_score([[0.0, 1.0, 0.0]], [0]) == 2.0


# ---------------------------------------------------------------- ECE


@pytest.mark.parametrize("n_bins", [1, 2, 10, 15])
def test_ece_matches_naive_loop(rng: np.random.Generator, n_bins: int) -> None:
    conf = with_edges(rng, 300, n_bins)
    correct = rng.uniform(size=conf.size) < conf
    assert expected_calibration_error(conf, correct, n_bins) == pytest.approx(naive_ece(conf, correct, n_bins), abs=TOL)


def test_ece_by_hand() -> None:
    # 5 bins with edges 0, .2, .4, .6, .8, 1 and bins (lo, hi]:
    #   (0, .2]  {0.2 wrong}             |0 - 0.2|    = 0.2,  weight 1/5
    #   (.2, .4] {0.3 right}             |1 - 0.3|    = 0.7,  weight 1/5
    #   (.4, .6] {0.55 right}            |1 - 0.55|   = 0.45, weight 1/5
    #   (.8, 1]  {0.9 right, 1.0 wrong}  |0.5 - 0.95| = 0.45, weight 2/5
    # ECE = (0.2 + 0.7 + 0.45 + 2 * 0.45) / 5 = 0.45
    ece = expected_calibration_error([0.2, 0.3, 0.55, 0.9, 1.0], [0, 1, 1, 1, 0], n_bins=5)
    assert ece == pytest.approx(0.45, abs=TOL)
    # one bin: |mean(correct) - mean(conf)| = |3/5 - 2.95/5| = 0.01
    assert expected_calibration_error([0.2, 0.3, 0.55, 0.9, 1.0], [0, 1, 1, 1, 0], n_bins=1) == pytest.approx(
        0.01, abs=TOL
    )


def test_ece_accepts_torch_and_bool(rng: np.random.Generator) -> None:
    conf = rng.uniform(size=50)
    correct = rng.uniform(size=50) < 0.5
    expected = naive_ece(conf, correct, 15)
    assert expected_calibration_error(torch.tensor(conf), torch.tensor(correct)) == pytest.approx(expected, abs=TOL)


def test_calibration_stats_stream_and_json_round_trip(rng: np.random.Generator) -> None:
    conf = rng.uniform(size=500)
    correct = rng.uniform(size=500) < conf
    parts = [
        CalibrationStats.from_dict(json.loads(json.dumps(CalibrationStats.from_batch(c, k, 10).to_dict())))
        for c, k in zip(np.array_split(conf, 7), np.array_split(correct, 7))
    ]
    merged = sum(parts)
    whole = CalibrationStats.from_batch(conf, correct, 10)
    assert isinstance(merged, CalibrationStats)
    np.testing.assert_array_equal(merged.count, whole.count)
    np.testing.assert_array_equal(merged.n_correct, whole.n_correct)
    np.testing.assert_allclose(merged.sum_conf, whole.sum_conf, rtol=0, atol=TOL)
    assert merged.ece() == pytest.approx(whole.ece(), abs=TOL)
    assert merged.n_bins == 10


def test_stats_are_frozen_and_own_their_arrays() -> None:
    conf = np.array([0.25, 0.75])
    stats = CalibrationStats.from_batch(conf, [0, 1], n_bins=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.count = np.zeros(2)  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        stats.count[0] = 5
    counts = np.array([1, 1])
    built = CalibrationStats(count=counts, sum_conf=[0.25, 0.75], n_correct=[0, 1])
    counts[0] = 9
    assert built == stats and built.count.tolist() == [1, 1]


# ---------------------------------------------------------------- ACE


@pytest.mark.parametrize(("n", "n_classes", "n_bins"), [(200, 4, 15), (37, 3, 5), (7, 2, 10), (50, 5, 1)])
def test_ace_matches_naive_loop(rng: np.random.Generator, n: int, n_classes: int, n_bins: int) -> None:
    probs = np.exp(random_logprobs(rng, (n, n_classes), scale=2.0))
    labels = rng.integers(0, n_classes, size=n)
    got = adaptive_calibration_error(probs, labels, n_bins)
    assert got == pytest.approx(naive_ace(probs, labels, n_bins), abs=TOL)


def test_ace_with_ties_matches_naive_loop(rng: np.random.Generator) -> None:
    probs = np.array([[0.5, 0.5], [0.25, 0.75], [0.5, 0.5], [0.75, 0.25], [0.5, 0.5], [0.25, 0.75]] * 3)
    labels = rng.integers(0, 2, size=len(probs))
    assert adaptive_calibration_error(probs, labels, 4) == pytest.approx(naive_ace(probs, labels, 4), abs=TOL)


def test_ace_by_hand() -> None:
    # probs [[.75,.25],[.5,.5],[.25,.75],[1,0]], labels [0,1,0,0], 2 bins of 2 samples.
    # class 0 sorted by p0: .25(y0) .5(y1) | .75(y0) 1(y0)
    #   bin 1: acc 1/2, conf .375 -> .125;  bin 2: acc 1, conf .875 -> .125
    # class 1 sorted by p1: 0(y0) .25(y0) | .5(y1) .75(y0)
    #   bin 1: acc 0, conf .125 -> .125;    bin 2: acc 1/2, conf .625 -> .125
    # ACE = mean of the four gaps = 0.125
    probs = [[0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [1.0, 0.0]]
    assert adaptive_calibration_error(probs, [0, 1, 0, 0], n_bins=2) == 0.125
    # one bin per class: class 0: |3/4 - 2.5/4| = .125, class 1: |1/4 - 1.5/4| = .125
    assert adaptive_calibration_error(probs, [0, 1, 0, 0], n_bins=1) == 0.125


# ---------------------------------------------------------------- confidence shift


@pytest.mark.parametrize("n_bins", [1, 4, 10])
def test_confidence_shift_matches_naive_loop(rng: np.random.Generator, n_bins: int) -> None:
    base = with_edges(rng, 200, n_bins)
    quant = np.clip(base + rng.normal(scale=0.1, size=base.size), 0.0, 1.0)
    got = confidence_shift_by_bin(base, quant, n_bins)
    counts, mean_base, mean_shift = naive_shift(base, quant, n_bins)
    np.testing.assert_array_equal(got.counts, counts)
    np.testing.assert_allclose(got.mean_base, mean_base, rtol=0, atol=TOL)
    np.testing.assert_allclose(got.mean_shift, mean_shift, rtol=0, atol=TOL)
    np.testing.assert_array_equal(got.bin_edges, np.linspace(0.0, 1.0, n_bins + 1))


def test_confidence_shift_by_hand() -> None:
    # 4 bins (0,.25] (.25,.5] (.5,.75] (.75,1]; 0.0 joins the first bin, 0.25 closes it.
    #   bin 1: base {0.0, 0.25}, shifts {+0.5, -0.125} -> mean base .125, mean shift .1875
    #   bin 2: empty -> count 0, means nan
    #   bin 3: base {0.625}, shift -0.125;  bin 4: base {1.0}, shift -0.25
    got = confidence_shift_by_bin([0.0, 0.25, 0.625, 1.0], [0.5, 0.125, 0.5, 0.75], n_bins=4)
    assert got.counts.tolist() == [2, 0, 1, 1]
    np.testing.assert_array_equal(got.mean_base, [0.125, np.nan, 0.625, 1.0])
    np.testing.assert_array_equal(got.mean_shift, [0.1875, np.nan, -0.125, -0.25])


def test_confidence_shift_stats_stream(rng: np.random.Generator) -> None:
    base, quant = rng.uniform(size=(2, 300))
    parts = [
        ConfidenceShiftStats.from_dict(json.loads(json.dumps(ConfidenceShiftStats.from_batch(b, q).to_dict())))
        for b, q in zip(np.array_split(base, 4), np.array_split(quant, 4))
    ]
    merged, whole = sum(parts).by_bin(), confidence_shift_by_bin(base, quant)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_allclose(merged.mean_shift, whole.mean_shift, rtol=0, atol=TOL)
    np.testing.assert_allclose(merged.mean_base, whole.mean_base, rtol=0, atol=TOL)


# ---------------------------------------------------------------- AUROC / AUPRC


@pytest.mark.parametrize("tied", [False, True])
def test_auroc_auprc_match_sklearn(rng: np.random.Generator, tied: bool) -> None:
    y = rng.integers(0, 2, size=400)
    scores = rng.normal(size=400) + y
    if tied:
        scores = np.round(scores)  # a handful of distinct values: many ties
    assert auroc(scores, y) == pytest.approx(roc_auc_score(y, scores), abs=TOL)
    assert auprc(scores, y) == pytest.approx(average_precision_score(y, scores), abs=TOL)


def test_auroc_auprc_small_cases() -> None:
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert auroc([0.5, 0.5, 0.5], [0, 1, 1]) == 0.5  # all tied: every pair counts 1/2
    assert auprc([0.5, 0.5, 0.5], [0, 1, 1]) == pytest.approx(2 / 3, abs=TOL)  # one threshold: precision 2/3
    # the doctest example: 3.5 of 4 pairs ordered; AP = 0.5 * 1 + 0.5 * 2/3
    assert auroc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1]) == 0.875
    assert auprc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1]) == pytest.approx(5 / 6, abs=TOL)
    for y in ([0, 0, 1, 1], [1, 0, 1, 0]):
        s = [0.1, 0.4, 0.4, 0.8]
        assert auroc(s, y) == pytest.approx(roc_auc_score(y, s), abs=TOL)
        assert auprc(s, y) == pytest.approx(average_precision_score(y, s), abs=TOL)


def test_auroc_accepts_torch_and_bool(rng: np.random.Generator) -> None:
    y = rng.uniform(size=60) < 0.4
    s = rng.normal(size=60)
    assert auroc(torch.tensor(s), torch.tensor(y)) == pytest.approx(roc_auc_score(y, s), abs=TOL)


# ---------------------------------------------------------------- KL / JS


def test_kl_matches_scipy_and_torch(rng: np.random.Generator) -> None:
    logp = random_logprobs(rng, (3, 5, 64))
    logq = random_logprobs(rng, (3, 5, 64))
    got = kl_divergence(logp, logq)
    ref_scipy = scipy.special.rel_entr(np.exp(logp), np.exp(logq)).sum(axis=-1)
    # torch's kl_div(input, target) is KL(target || input)
    ref_torch = torch.nn.functional.kl_div(
        torch.from_numpy(logq), torch.from_numpy(logp), reduction="none", log_target=True
    ).sum(dim=-1)
    np.testing.assert_allclose(got, ref_scipy, rtol=0, atol=TOL)
    np.testing.assert_allclose(got, ref_torch.numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(kl_divergence(logp.T, logq.T, axis=0), ref_scipy.T, rtol=0, atol=TOL)
    assert np.all(kl_divergence(logp, logp) == 0.0)


def test_kl_zero_probabilities() -> None:
    p = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    q = np.array([[0.25, 0.25, 0.5], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    with np.errstate(divide="ignore"):
        got = kl_divergence(np.log(p), np.log(q))
    # p=0 terms vanish; q=0 where p>0 makes KL infinite (scipy's rel_entr agrees)
    np.testing.assert_array_equal(got, [math.log(2.0), np.inf, 0.0])
    np.testing.assert_array_equal(got, scipy.special.rel_entr(p, q).sum(axis=-1))


def test_kl_float32_and_underflow(rng: np.random.Generator) -> None:
    # Log-probs near -200 underflow to 0 in float32 exp but not in float64; the
    # function upcasts, so it must agree with the float64 computation on the same values.
    logits = rng.normal(size=(4, 30)) * 60.0
    logp32 = scipy.special.log_softmax(logits, axis=-1).astype(np.float32)
    logq32 = scipy.special.log_softmax(logits + rng.normal(size=logits.shape), axis=-1).astype(np.float32)
    assert logp32.min() < -150.0
    p64, q64 = logp32.astype(np.float64), logq32.astype(np.float64)
    ref = scipy.special.rel_entr(np.exp(p64), np.exp(q64)).sum(axis=-1)
    np.testing.assert_allclose(kl_divergence(logp32, logq32), ref, rtol=1e-9, atol=TOL)
    out = kl_divergence(torch.from_numpy(logp32), torch.from_numpy(logq32))
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, ref, rtol=1e-9, atol=TOL)


def test_js_distance_matches_scipy(rng: np.random.Generator) -> None:
    p, q = rng.uniform(size=(2, 100))
    p[:10] = 0.0
    q[5:15] = 0.0
    assert js_distance(p, q) == pytest.approx(scipy.spatial.distance.jensenshannon(p, q), abs=TOL)
    assert js_distance(torch.tensor(p), q) == pytest.approx(scipy.spatial.distance.jensenshannon(p, q), abs=TOL)


def test_js_distance_by_hand() -> None:
    assert js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.sqrt(math.log(2.0)), abs=TOL)
    assert js_distance([0.2, 0.4], [0.1, 0.2]) == 0.0  # equal after normalisation
    assert js_distance([1.0, 0.0], [1.0, 5e-324]) < 1e-100  # m = q/2 underflows; the result must not be inf
    # p=(1,0), q=(.5,.5), m=(.75,.25): JSD = (ln(4/3) + .5 ln(2/3) + .5 ln 2) / 2
    expected = math.sqrt((math.log(4 / 3) + 0.5 * math.log(2 / 3) + 0.5 * math.log(2)) / 2)
    assert js_distance([1.0, 0.0], [0.5, 0.5]) == pytest.approx(expected, abs=TOL)


# ---------------------------------------------------------------- paired t-test


def test_paired_ttest_matches_scipy(rng: np.random.Generator) -> None:
    a = rng.normal(size=40)
    b = a + rng.normal(loc=0.1, scale=0.3, size=40)
    ref = scipy.stats.ttest_rel(a, b)
    got = paired_ttest(a, b)
    assert got.statistic == pytest.approx(ref.statistic, abs=TOL)
    assert got.pvalue == pytest.approx(ref.pvalue, abs=TOL)


def test_paired_ttest_by_hand() -> None:
    # d = (1, 0, 2, 1): mean 1, s_d^2 = 2/3, t = 1 / sqrt((2/3)/4) = sqrt(6), df = 3.
    # Student-t CDF for 3 df in closed form: F(t) = 1/2 + (u/(1+u^2) + atan(u))/pi, u = t/sqrt(3),
    # so with u = sqrt(2): p = 2 (1 - F) = 1 - 2 (sqrt(2)/3 + atan(sqrt(2))) / pi.
    t, p = paired_ttest([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 1.0, 3.0])
    assert t == pytest.approx(math.sqrt(6.0), abs=TOL)
    assert p == pytest.approx(1.0 - 2.0 * (math.sqrt(2.0) / 3.0 + math.atan(math.sqrt(2.0))) / math.pi, abs=TOL)


def test_paired_ttest_degenerate_differences() -> None:
    assert paired_ttest([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == (0.0, 1.0)  # scipy: (nan, nan)
    assert paired_ttest([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]) == (math.inf, 0.0)  # as scipy
    assert paired_ttest([0.0, 1.0], [1.0, 2.0]) == (-math.inf, 0.0)


# ---------------------------------------------------------------- sequence mean / MeanStats


def test_sequence_mean_matches_loop(rng: np.random.Generator) -> None:
    values = rng.normal(size=(6, 9))
    lengths = rng.integers(1, 10, size=6)
    mask = np.arange(9)[None, :] < lengths[:, None]
    values[~mask] = np.nan  # padding may hold anything
    expected = [sum(values[i, :n]) / n for i, n in enumerate(lengths)]
    np.testing.assert_allclose(sequence_mean(values, mask), expected, rtol=0, atol=TOL)
    np.testing.assert_allclose(
        sequence_mean(torch.tensor(values), torch.tensor(mask.astype(np.int64))), expected, rtol=0, atol=TOL
    )


def test_mean_stats_stream_json_and_mask(rng: np.random.Generator) -> None:
    values = rng.exponential(size=(8, 12))
    mask = rng.uniform(size=values.shape) < 0.7
    parts = [
        MeanStats.from_dict(json.loads(json.dumps(MeanStats.from_batch(v, m).to_dict())))
        for v, m in zip(np.array_split(values, 3), np.array_split(mask, 3))
    ]
    merged = sum(parts)
    assert merged.count == int(mask.sum())
    assert merged.mean() == pytest.approx(values[mask].mean(), abs=TOL)
    assert MeanStats.from_batch([1.0, np.inf]).mean() == math.inf  # an infinite KL stays infinite
    assert MeanStats.from_batch([np.nan, 2.0], mask=[0, 1]) == MeanStats(count=1, total=2.0)


# ---------------------------------------------------------------- validation errors

ErrCase = tuple[Callable[..., Any], tuple[Any, ...], str]
NAN = float("nan")
GOOD2 = [[0.5, 0.5], [0.25, 0.75]]

ERROR_CASES: dict[str, ErrCase] = {
    "probs-sum": (brier_score, ([[0.25, 0.25], [0.35, 0.35]], [0, 1]),
                  "Expected `probs` to sum to 1 along the last axis (within 1e-4), but got sums in [0.5, 0.7]"),
    "probs-range": (brier_score, ([[1.5, -0.5]], [0]), "Expected `probs` to lie in [0, 1], but got values in [-0.5, 1.5]"),
    "probs-ndim": (brier_score, ([0.5, 0.5], [0]), "Expected `probs` to be a 2-D array of shape (n, K), but got shape (2,)"),
    "probs-nan": (brier_score, ([[NAN, 1.0]], [0]), "Expected `probs` to contain no NaN, but got 1 NaN values"),
    "probs-empty": (brier_score, (np.zeros((0, 2)), []), "Expected `probs` to be non-empty, but got shape (0, 2)"),
    "labels-range": (brier_score, (GOOD2, [0, 2]),
                     "Expected `labels` to lie in [0, 1] (one of 2 classes), but got values in [0, 2]"),
    "labels-negative": (adaptive_calibration_error, (GOOD2, [-1, 0]), "Expected `labels` to lie in [0, 1]"),
    "labels-int": (brier_score, (GOOD2, [0, 0.5]), "Expected `labels` to hold integer class indices"),
    "labels-length": (adaptive_calibration_error, (GOOD2, [0, 1, 1]),
                      "Expected `probs` and `labels` to have the same length, but got 2 and 3"),
    "ace-n_bins": (adaptive_calibration_error, (GOOD2, [0, 1], 0), "Expected `n_bins` to be a positive integer, but got 0"),
    "ece-n_bins": (expected_calibration_error, ([0.5], [1], -3), "Expected `n_bins` to be a positive integer, but got -3"),
    "ece-n_bins-float": (expected_calibration_error, ([0.5], [1], 2.5), "Expected `n_bins` to be a positive integer, but got 2.5"),
    "ece-n_bins-bool": (expected_calibration_error, ([0.5], [1], True), "Expected `n_bins` to be a positive integer, but got True"),
    "ece-empty": (expected_calibration_error, ([], []), "Expected `confidences` to be non-empty, but got shape (0,)"),
    "ece-range": (expected_calibration_error, ([1.2], [1]), "Expected `confidences` to lie in [0, 1], but got values in [1.2, 1.2]"),
    "ece-binary": (expected_calibration_error, ([0.5, 0.5], [0, 2]), "Expected `correct` to hold only 0/1 (or bool) values"),
    "ece-length": (expected_calibration_error, ([0.5, 0.5], [1]),
                   "Expected `confidences` and `correct` to have the same length, but got 2 and 1"),
    "ece-ndim": (expected_calibration_error, ([[0.5]], [1]), "Expected `confidences` to be a 1-D array, but got shape (1, 1)"),
    "ece-nan": (expected_calibration_error, ([NAN], [1]), "Expected `confidences` to contain no NaN"),
    "shift-length": (confidence_shift_by_bin, ([0.5, 0.5], [0.5]),
                     "Expected `base_conf` and `quant_conf` to have the same length, but got 2 and 1"),
    "shift-range": (confidence_shift_by_bin, ([0.5], [-0.1]), "Expected `quant_conf` to lie in [0, 1]"),
    "shift-n_bins": (confidence_shift_by_bin, ([0.5], [0.5], 0), "Expected `n_bins` to be a positive integer, but got 0"),
    "auroc-one-class": (auroc, ([0.1, 0.2], [1, 1]), "Expected `labels` to contain both classes (0 and 1), but got only positive labels"),
    "auprc-one-class": (auprc, ([0.1, 0.2], [0, 0]), "Expected `labels` to contain both classes (0 and 1), but got only negative labels"),
    "auroc-nan": (auroc, ([NAN, 0.2], [0, 1]), "Expected `scores` to contain no NaN"),
    "auroc-binary": (auroc, ([0.1, 0.2], [0, 3]), "Expected `labels` to hold only 0/1"),
    "auprc-length": (auprc, ([0.1, 0.2, 0.3], [0, 1]), "Expected `scores` and `labels` to have the same length, but got 3 and 2"),
    "entropy-sum": (entropy, (np.log([0.5, 0.2]),), "Expected `logprobs` to sum to 1 along the last axis (within 1e-4)"),
    "entropy-axis-sum": (entropy, (np.log([[0.5, 0.2], [0.5, 0.2]]), 0), "Expected `logprobs` to sum to 1 along axis 0"),
    "entropy-positive": (entropy, ([0.5, -2.0],), "Expected `logprobs` to be log-probabilities (<= 0), but got values in [-2, 0.5]"),
    "entropy-axis": (entropy, ([0.0], 1), "Expected `axis` to be in [-1, 0], but got 1"),
    "entropy-nan": (entropy, ([NAN, 0.0],), "Expected `logprobs` to contain no NaN"),
    "entropy-empty": (entropy, ([],), "Expected `logprobs` to be non-empty"),
    "kl-shape": (kl_divergence, (np.log([0.5, 0.5]), np.log([0.25, 0.25, 0.5])),
                 "Expected `p_logprobs` and `q_logprobs` to have the same shape, but got (2,) and (3,)"),
    "kl-sum": (kl_divergence, (np.log([0.5, 0.5]), np.log([0.5, 0.6])), "Expected `q_logprobs` to sum to 1"),
    "js-zero": (js_distance, ([0.0, 0.0], [0.5, 0.5]), "Expected `p` to have a positive sum, but got all zeros"),
    "js-range": (js_distance, ([0.5, 0.5], [0.5, -0.5]), "Expected `q` to lie in [0, 1]"),
    "js-shape": (js_distance, ([0.5, 0.5], [1.0]), "Expected `p` and `q` to have the same shape, but got (2,) and (1,)"),
    "ttest-few": (paired_ttest, ([1.0], [2.0]), "Expected `a` and `b` to hold at least 2 pairs, but got 1"),
    "ttest-inf": (paired_ttest, ([1.0, np.inf], [2.0, 3.0]), "Expected `a` to be finite, but got 1 infinite values"),
    "ttest-length": (paired_ttest, ([1.0, 2.0], [2.0]), "Expected `a` and `b` to have the same length, but got 2 and 1"),
    "seq-empty-row": (sequence_mean, ([[1.0, 2.0], [3.0, 4.0]], [[1, 0], [0, 0]]),
                      "Expected every sequence to have at least one unmasked token, but sequences [1] have none"),
    "seq-mask-shape": (sequence_mean, ([[1.0, 2.0]], [[1, 1, 1]]), "Expected `mask` to have shape (1, 2), but got shape (1, 3)"),
    "seq-mask-binary": (sequence_mean, ([[1.0, 2.0]], [[1, 2]]), "Expected `mask` to hold only 0/1"),
    "seq-nan": (sequence_mean, ([[1.0, NAN]], [[1, 1]]), "Expected `token_values` to contain no NaN, but got 1 NaN values"),
    "seq-ndim": (sequence_mean, ([1.0, 2.0], [1, 1]), "Expected `token_values` to be a 2-D array of shape (n, T), but got shape (2,)"),
    "stats-keys": (CalibrationStats.from_dict, ({"count": [1]},), "Expected keys ['count', 'n_correct', 'sum_conf'] for CalibrationStats"),
    "stats-shape": (CalibrationStats, ([1, 2], [0.5], [1, 0]), "Expected all fields of CalibrationStats to have one shape"),
    "stats-negative": (MeanStats, (-1, 0.0), "Expected counts of MeanStats to be >= 0, but got -1"),
    "stats-empty-ece": (lambda: CalibrationStats(count=[0, 0], sum_conf=[0.0, 0.0], n_correct=[0, 0]).ece(), (),
                        "Expected at least one sample in CalibrationStats, but got 0"),
    "stats-empty-mean": (lambda: MeanStats.from_batch([1.0], mask=[0]).mean(), (), "Expected at least one value in MeanStats, but got 0"),
    "stats-add-bins": (lambda: CalibrationStats.from_batch([0.5], [1], 10) + CalibrationStats.from_batch([0.5], [1], 15), (),
                       "Expected two CalibrationStats with the same number of bins, but got 10 and 15"),
    "non-numeric": (auroc, (["a", "b"], [0, 1]), "Expected `scores` to be a numeric array, but got list"),
}  # fmt: skip


@pytest.mark.parametrize("case", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_validation_errors(case: ErrCase) -> None:
    func, args, message = case
    with pytest.raises(ValueError, match=re.escape(message)):
        func(*args)


def test_adding_different_stats_types_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        CalibrationStats.from_batch([0.5], [1]) + MeanStats.from_batch([1.0])  # type: ignore[operator]


# ---------------------------------------------------------------- public surface


def public_modules() -> list[str]:
    return [m.name for m in pkgutil.iter_modules(metrics.__path__) if not m.name.startswith("_")]


def test_all_lists_exactly_the_public_names() -> None:
    defined: set[str] = set()
    for mod_name in public_modules():
        module = importlib.import_module(f"{metrics.__name__}.{mod_name}")
        for name, obj in vars(module).items():
            if (
                not name.startswith("_")
                and (inspect.isfunction(obj) or inspect.isclass(obj))
                and obj.__module__ == module.__name__
            ):
                defined.add(name)
    assert len(metrics.__all__) == len(set(metrics.__all__))
    assert set(metrics.__all__) == defined
    for name in metrics.__all__:
        assert getattr(metrics, name).__module__.startswith(metrics.__name__ + ".")
    # nothing public in the package namespace beyond __all__ and the submodules themselves
    # (isidentifier: pytest's assertion rewriting may add '@py_builtins' to plugin modules)
    names = {n for n in vars(metrics) if n.isidentifier() and not n.startswith("_")}
    namespace = names - set(public_modules()) - {"annotations"}
    assert namespace == set(metrics.__all__)


def test_design_interface_is_exported() -> None:
    # DESIGN.md lists these as a stable interface other tools read
    stable = {
        "entropy", "brier_score", "expected_calibration_error", "adaptive_calibration_error", "auroc",
        "auprc", "kl_divergence", "js_distance", "paired_ttest", "confidence_shift_by_bin",
    }  # fmt: skip
    assert stable <= set(metrics.__all__)


def test_doctests_pass() -> None:
    for mod_name in ["_sufficient", "_validation", *public_modules()]:
        module = importlib.import_module(f"{metrics.__name__}.{mod_name}")
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, mod_name


def test_import_does_not_load_torch() -> None:
    code = "import sys, pytest_qrel.metrics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_auroc_of_resample_counts_equals_auroc_of_each_resample_ties_and_one_class_included():
    from sklearn.metrics import roc_auc_score

    from pytest_qrel.metrics.ranking import auroc_counts

    rng = np.random.default_rng(1)
    scores = np.round(rng.random(40), 1)  # many ties
    scores[:4] = [-0.0, 0.0, 0.5, 0.5]  # signed zeros tie, as in ranking
    labels = rng.random(40) < 0.3
    rows = rng.integers(0, 40, (50, 40))
    rows[3] = np.flatnonzero(labels)[0]  # one class only: NaN
    rows[4] = np.flatnonzero(~labels)[:2].repeat(20)
    counts = np.stack([np.bincount(r, minlength=40) for r in rows])
    got = auroc_counts(scores, labels, counts)
    for i in range(50):
        if i in (3, 4):
            assert np.isnan(got[i])
        else:
            assert got[i] == auroc(scores[rows[i]], labels[rows[i]])  # exactly: the same count, sums of half-integers
            assert got[i] == pytest.approx(roc_auc_score(labels[rows[i]], scores[rows[i]]), abs=1e-12)
    with_nan = scores.copy()
    with_nan[7] = np.nan  # a NaN score: NaN where it is drawn, as its ranks would be
    drawn = counts[:, 7] > 0
    got = auroc_counts(with_nan, labels, counts)
    assert np.isnan(got[drawn]).all() and drawn.any() and not drawn.all()
    assert np.array_equal(got[~drawn], auroc_counts(scores, labels, counts)[~drawn], equal_nan=True)


def test_an_indexed_statistic_gives_the_same_bootstrap_exactly():
    from pytest_qrel.measures.robustness import _auroc, _auroc_drop, _auroc_drops, _aurocs
    from pytest_qrel.metrics import paired_bootstrap

    rng = np.random.default_rng(2)
    c1, c2 = rng.random((60, 4)) < 0.6, rng.random((60, 4)) < 0.5
    e1, e2 = rng.random((60, 4)), np.round(rng.random((60, 4)), 2)
    for fn, counted, a, b in [(_auroc, _aurocs, (c1, e1), (c2, e2)),
                              (_auroc_drop, _auroc_drops, (c1, e1, c2, e2), (c2, e2, c1, e1))]:
        one = paired_bootstrap(fn, a, b, n_resamples=250, seed=7, omit_undefined=True)
        many = paired_bootstrap(fn, a, b, n_resamples=250, seed=7, omit_undefined=True, indexed_statistic=counted)
        assert one == many


def test_ace_of_many_resamples_equals_the_scalar_exactly():
    from pytest_qrel.measures.drift import _ace, _aces
    from pytest_qrel.metrics import paired_bootstrap

    rng = np.random.default_rng(3)
    for n in (7, 30, 233):  # fewer questions than bins, and uneven bins
        p1 = np.round(rng.dirichlet(np.ones(4), n), 2)  # ties in every column
        p1 /= p1.sum(1, keepdims=True)
        p2 = rng.dirichlet(np.ones(4), n)
        y = rng.integers(0, 4, n)
        rows = rng.integers(0, n, (40, n))
        assert list(_aces(rows, p1, y)) == [_ace(p1[r], y[r]) for r in rows]
        one = paired_bootstrap(_ace, (p1, y), (p2, y), n_resamples=250, seed=7)
        assert one == paired_bootstrap(_ace, (p1, y), (p2, y), n_resamples=250, seed=7, indexed_statistic=_aces)


def test_ece_of_many_resamples_equals_the_scalar_exactly():
    from pytest_qrel.measures.drift import _ece, _eces
    from pytest_qrel.metrics import paired_bootstrap

    rng = np.random.default_rng(4)
    for n in (3, 30, 233):
        p1 = np.round(rng.dirichlet(np.ones(4), n), 1)  # confidences on bin edges (0.2, 0.4, ...)
        p1 /= p1.sum(1, keepdims=True)
        p2 = rng.dirichlet(np.ones(4), n)
        c1, c2 = rng.random(n) < 0.5, rng.random(n) < 0.6
        rows = rng.integers(0, n, (40, n))
        assert list(_eces(rows, p1, c1)) == [_ece(p1[r], c1[r]) for r in rows]
        one = paired_bootstrap(_ece, (p1, c1), (p2, c2), n_resamples=250, seed=7)
        assert one == paired_bootstrap(_ece, (p1, c1), (p2, c2), n_resamples=250, seed=7, indexed_statistic=_eces)
