"""Property tests for pytest_qrel.metrics (hypothesis)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pytest_qrel.metrics import (
    CalibrationStats,
    ConfidenceShiftStats,
    MeanStats,
    adaptive_calibration_error,
    auroc,
    confidence_shift_by_bin,
    entropy,
    expected_calibration_error,
    js_distance,
    kl_divergence,
)

FAST = settings(max_examples=60, deadline=None)
unit = st.floats(0.0, 1.0, allow_nan=False)
n_bins_st = st.integers(1, 20)


@st.composite
def conf_and_correct(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 120))
    return draw(arrays(np.float64, n, elements=unit)), draw(arrays(np.bool_, n))


@st.composite
def distributions(draw: st.DrawFn, n: int | None = None, k: int | None = None) -> np.ndarray:
    """Rows of probabilities (exact zeros allowed) that sum to 1."""
    n = draw(st.integers(1, 40)) if n is None else n
    k = draw(st.integers(2, 8)) if k is None else k
    w = draw(arrays(np.float64, (n, k), elements=st.floats(0.0, 1.0)))
    w[:, 0] += 1e-3  # no all-zero row
    return w / w.sum(axis=1, keepdims=True)


@st.composite
def distribution_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    k = draw(st.integers(2, 8))
    return draw(distributions(n=1, k=k))[0], draw(distributions(n=1, k=k))[0]


def split_points(draw: st.DrawFn, n: int) -> list[int]:
    return sorted(draw(st.lists(st.integers(0, n), max_size=5)))


def log(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p)


@FAST
@given(conf_and_correct(), n_bins_st)
def test_ece_in_unit_interval(data: tuple[np.ndarray, np.ndarray], n_bins: int) -> None:
    assert 0.0 <= expected_calibration_error(*data, n_bins=n_bins) <= 1.0


@FAST
@given(st.data(), n_bins_st)
def test_ace_in_unit_interval(data: st.DataObject, n_bins: int) -> None:
    probs = data.draw(distributions())
    labels = data.draw(arrays(np.int64, len(probs), elements=st.integers(0, probs.shape[1] - 1)))
    assert 0.0 <= adaptive_calibration_error(probs, labels, n_bins) <= 1.0


@FAST
@given(st.lists(st.tuples(st.integers(1, 8), st.integers(0, 8)), min_size=1, max_size=12), n_bins_st)
def test_ece_zero_when_perfectly_calibrated(groups: list[tuple[int, int]], n_bins: int) -> None:
    # Each group of m samples has confidence j/m and exactly j correct: every bin's
    # accuracy equals its mean confidence, whatever the binning.
    conf, correct = [], []
    for m, j in groups:
        j = min(j, m)
        conf += [j / m] * m
        correct += [True] * j + [False] * (m - j)
    assert expected_calibration_error(conf, correct, n_bins) == pytest.approx(0.0, abs=1e-12)


@FAST
@given(distribution_pairs())
def test_kl_nonnegative_and_zero_iff_equal(pq: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pq
    kl = float(kl_divergence(log(p), log(q)))
    assert float(kl_divergence(log(p), log(p))) == 0.0
    # Pinsker: KL >= ||p - q||_1^2 / 2, so KL > 0 whenever p and q differ
    l1 = float(np.abs(p - q).sum())
    assert kl >= 0.5 * l1**2 - 1e-12
    if l1 > 1e-4:
        assert kl > 0.0


@FAST
@given(distribution_pairs())
def test_js_distance_symmetric_and_bounded(pq: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pq
    d = js_distance(p, q)
    assert d == js_distance(q, p)
    assert 0.0 <= d <= math.sqrt(math.log(2.0)) + 1e-12
    assert js_distance(p, p) == 0.0


@FAST
@given(distributions())
def test_entropy_between_zero_and_log_k(probs: np.ndarray) -> None:
    h = entropy(log(probs))
    assert np.all(h >= 0.0)
    assert np.all(h <= math.log(probs.shape[1]) + 1e-12)


@FAST
@given(st.data())
def test_auroc_flips_with_score_sign(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 60))
    labels = data.draw(arrays(np.bool_, n))
    labels[0], labels[1] = True, False
    scores = data.draw(arrays(np.float64, n, elements=st.integers(-3, 3).map(float)))
    assert auroc(scores, labels) + auroc(-scores, labels) == pytest.approx(1.0, abs=1e-12)


@FAST
@given(st.data(), n_bins_st)
def test_streaming_ece_equals_one_shot(data: st.DataObject, n_bins: int) -> None:
    conf, correct = data.draw(conf_and_correct())
    cuts = split_points(data.draw, len(conf))
    # empty slices are not batches; a worker with no samples sends nothing
    batches = [(c, k) for c, k in zip(np.split(conf, cuts), np.split(correct, cuts)) if len(c)]
    merged = sum(
        CalibrationStats.from_dict(json.loads(json.dumps(CalibrationStats.from_batch(c, k, n_bins).to_dict())))
        for c, k in batches
    )
    whole = CalibrationStats.from_batch(conf, correct, n_bins)
    np.testing.assert_array_equal(merged.count, whole.count)
    np.testing.assert_array_equal(merged.n_correct, whole.n_correct)
    assert merged.ece() == pytest.approx(expected_calibration_error(conf, correct, n_bins), abs=1e-12)


@FAST
@given(st.data(), n_bins_st)
def test_streaming_confidence_shift_equals_one_shot(data: st.DataObject, n_bins: int) -> None:
    n = data.draw(st.integers(1, 120))
    base = data.draw(arrays(np.float64, n, elements=unit))
    quant = data.draw(arrays(np.float64, n, elements=unit))
    cuts = split_points(data.draw, n)
    merged = sum(
        ConfidenceShiftStats.from_batch(b, q, n_bins)
        for b, q in zip(np.split(base, cuts), np.split(quant, cuts))
        if len(b)
    ).by_bin()
    whole = confidence_shift_by_bin(base, quant, n_bins)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_allclose(merged.mean_base, whole.mean_base, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.mean_shift, whole.mean_shift, rtol=0, atol=1e-12)


@FAST
@given(st.data())
def test_streaming_mean_equals_one_shot(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 120))
    values = data.draw(arrays(np.float64, n, elements=st.floats(-1e3, 1e3)))
    mask = data.draw(arrays(np.bool_, n))
    mask[0] = True
    cuts = split_points(data.draw, n)
    merged = sum(
        MeanStats.from_batch(v, m) for v, m in zip(np.split(values, cuts), np.split(mask, cuts)) if len(v)
    )
    assert merged.count == int(mask.sum())
    assert merged.mean() == pytest.approx(float(values[mask].mean()), rel=1e-9, abs=1e-9)
