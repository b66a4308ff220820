"""Flips (Dutta et al. 2024, arXiv 2407.09141, §3): the questions whose correctness changes
from base to variant, counted against plain numpy; the exact binomial test and bound against
scipy; and the gate's three outcomes on the power-before-PASS rule: FAIL when the flip rate is
significantly above its threshold, PASS only when it is significantly below, otherwise not
checked with the number of questions that would decide it."""

import numpy as np
import pytest
import scipy.stats

from pytest_qrel.measures.choices import ChoiceScores
from pytest_qrel.measures.drift import comparison, hypotheses
from pytest_qrel.measures.family import (
    decide,
    judge,
    share_hypothesis,
    share_sample_size,
)
from pytest_qrel.metrics import (
    binomial_pvalue_above,
    binomial_upper_bound,
    correctness_flips,
)
from pytest_qrel.properties import CATALOG

ALPHA = 0.05


def _scores(
    rng: np.random.Generator, n: int, flip: float, base: ChoiceScores | None = None
) -> ChoiceScores:
    """A 4-choice model; with ``base``, its copy with the prediction moved on a ``flip`` share of questions."""
    if base is None:
        labels = rng.integers(0, 4, n)
        loglik = rng.normal(size=(n, 4))
        loglik[np.arange(n), labels] += rng.normal(1.0, 1.0, n)
        return ChoiceScores(loglik, np.ones((n, 4)), labels)
    loglik = base.loglik.copy()
    moved = rng.random(n) < flip
    target = (
        base.predictions + rng.integers(1, 4, n)
    ) % 4  # another choice: right -> wrong, or wrong -> maybe right
    loglik[moved, target[moved]] = loglik[moved].max(axis=1) + 1.0
    return ChoiceScores(loglik, base.lengths, base.labels)


@pytest.mark.parametrize("seed", range(10))
def test_flip_counts_equal_plain_numpy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    b, q = rng.random(n) < rng.random(), rng.random(n) < rng.random()
    f = correctness_flips(b, q)
    assert f.right_to_wrong == np.count_nonzero(
        b & ~q
    ) and f.wrong_to_right == np.count_nonzero(~b & q)
    assert f.n == n and f.rate == np.mean(b != q)
    assert (q.mean() - b.mean()) == pytest.approx(
        (f.wrong_to_right - f.right_to_wrong) / n
    )  # accuracy change
    assert correctness_flips(b.astype(int), q.astype(float)) == f  # 0/1 numbers too


def test_flip_counts_refuse_bad_input():
    with pytest.raises(ValueError, match="the same length"):
        correctness_flips([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="only 0/1"):
        correctness_flips([1, 2], [1, 0])
    with pytest.raises(ValueError, match="to be non-empty"):
        correctness_flips([], [])


@pytest.mark.parametrize(
    "k, n, share",
    [
        (0, 1, 0.5),
        (3, 10, 0.1),
        (0, 300, 0.05),
        (17, 300, 0.05),
        (300, 300, 0.9),
        (40, 100, 0.3),
    ],
)
def test_the_exact_binomial_test_and_bound_equal_scipy(k, n, share):
    ref = scipy.stats.binomtest(k, n, share, alternative="greater")
    assert binomial_pvalue_above(k, n, share) == pytest.approx(ref.pvalue, rel=1e-9)
    for level in (0.05, 0.05 / 12):
        upper = (
            scipy.stats.binomtest(k, n, 0.5, alternative="less")
            .proportion_ci(1 - level, "exact")
            .high
        )
        assert binomial_upper_bound(k, n, level) == pytest.approx(
            upper, rel=1e-9, abs=1e-12
        )


def test_the_flip_hypothesis_and_comparison_count_the_same_questions():
    rng = np.random.default_rng(1)
    base = _scores(rng, 300, 0)
    quant = _scores(rng, 300, 0.3, base)
    h = hypotheses(base, quant, flips_threshold=0.1)
    flips = np.count_nonzero(base.correct != quant.correct)
    assert (
        h["flips"].value == flips / 300
        and h["flips"].events == flips
        and h["flips"].n == 300
    )
    assert h["flips"].test == "exact_binomial" and h["flips"].base_value == 0.0
    assert h["flips"].pvalue == pytest.approx(
        scipy.stats.binomtest(flips, 300, 0.1, alternative="greater").pvalue
    )
    c = comparison(base, quant)["flips"]
    assert c["right_to_wrong_count"] == np.count_nonzero(base.correct & ~quant.correct)
    assert c["wrong_to_right_count"] == np.count_nonzero(~base.correct & quant.correct)
    assert (
        c["flip_rate"]
        == pytest.approx(c["right_to_wrong"] + c["wrong_to_right"])
        == flips / 300
    )
    assert comparison(base, quant)["delta"]["accuracy"] == pytest.approx(
        c["wrong_to_right"] - c["right_to_wrong"]
    )
    # off unless a threshold is given: the default gated metrics only
    assert set(hypotheses(base, quant)) == {
        k
        for p in ("calibration", "confidence")
        for k in CATALOG[p].default_thresholds()
    }


def _judged(events: int, n: int, threshold: float, family_size: int = 12):
    h = share_hypothesis("flips", events, n, threshold)
    d = decide(
        {("v", "t", "flips"): h}, {"flips": threshold}, {"flips": ALPHA}, "holm"
    )[("v", "t", "flips")]
    return judge(h, d, "holm", family_size, "--qrel-task-limit")


def test_many_flips_fail_significantly():
    m = _judged(111, 300, 0.2)  # zoo-s at 2 bits flips ~37% of zoo_recall
    assert m.significant and not m.unchecked and m.value > 0.2
    assert (
        m.detail["adjusted_pvalue"] <= ALPHA
        and m.detail["stat_test"] == "exact_binomial"
    )


def test_few_flips_on_many_questions_pass_on_their_upper_bound():
    m = _judged(1, 300, 0.1)
    assert not m.unchecked and not m.significant
    assert m.detail["upper_bound"] < 0.1 and m.detail["bound_level"] == ALPHA / 12


def test_too_few_questions_are_not_checked_with_the_number_that_decides():
    m = _judged(
        0, 5, 0.1
    )  # no flip on 5 questions: a flip rate of 0.1 is not ruled out
    assert (
        m.unchecked
        and "with 5 samples the share 0 is below the threshold 0.1, but its exact upper bound"
        in m.unchecked
    )
    needed = int(m.unchecked.rsplit(">= ", 1)[1].split()[0])
    assert (
        not _judged(0, needed, 0.1).unchecked and _judged(0, needed - 1, 0.1).unchecked
    )
    # above the threshold, not significantly: neither verdict, and the questions that would give one
    m = _judged(2, 5, 0.2)
    assert (
        m.unchecked
        and not m.significant
        and "is not below the threshold 0.2, nor significantly above it" in m.unchecked
    )
    needed = int(m.unchecked.rsplit(">= ", 1)[1].split()[0])
    assert _judged(round(0.4 * needed), needed, 0.2).significant
    assert (
        share_sample_size(0.2, 0.2, 0.01) is None
    )  # at the threshold itself nothing decides it


@pytest.mark.parametrize("n", [50, 300, 2000])
def test_a_flip_rate_at_the_threshold_passes_at_most_at_the_level(n):
    """Power before PASS, exactly: over every count a flip rate equal to the threshold can
    give, the gate passes with probability at most the family's level (alpha / m)."""
    threshold, level = 0.1, ALPHA / 12
    k = np.arange(n + 1)
    passes = np.array([binomial_upper_bound(int(i), n, level) < threshold for i in k])
    assert scipy.stats.binom.pmf(k, n, threshold)[passes].sum() <= level
    # and a variant flipping half as often passes nearly always once the sample is large
    if n == 2000:
        assert scipy.stats.binom.pmf(k, n, threshold / 2)[passes].sum() > 0.99


def test_a_flip_threshold_per_bit_width_is_decided_per_hypothesis():
    h = share_hypothesis("flips", 30, 300, 0.2)
    fam = {
        ("2b", "t", "flips"): share_hypothesis("flips", 30, 300, 0.05),
        ("8b", "t", "flips"): h,
    }
    got = decide(
        fam,
        {("2b", "t", "flips"): 0.05, ("8b", "t", "flips"): 0.2},
        {"flips": ALPHA},
        "holm",
    )
    assert (
        got[("2b", "t", "flips")].failed and got[("2b", "t", "flips")].threshold == 0.05
    )
    assert (
        not got[("8b", "t", "flips")].failed
        and got[("8b", "t", "flips")].threshold == 0.2
    )
