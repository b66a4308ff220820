"""The statistics of the calibration and confidence gates, against independent references:
p-value corrections (scipy, the textbook definition), the paired bootstrap, the per-question
terms behind each metric (the metrics library), and the family-wise error under the null."""

import numpy as np
import pytest
import scipy.stats

from pytest_qrel.measures.choices import ChoiceScores, summary
from pytest_qrel.measures.drift import hypotheses, per_question_brier
from pytest_qrel.measures.family import decide
from pytest_qrel.metrics import (
    adaptive_calibration_error,
    adjust_pvalues,
    brier_score,
    expected_calibration_error,
    paired_bootstrap,
    paired_ttest,
)
from pytest_qrel.properties import CATALOG


def _holm_by_definition(p: np.ndarray) -> np.ndarray:
    """Holm's step-down: the adjusted p of the i-th smallest is max over j <= i of (m-j+1) p_(j)."""
    m, order = len(p), np.argsort(p, kind="stable")
    out = np.empty(m)
    for rank, i in enumerate(order):
        out[i] = min(1.0, max((m - j) * p[order[j]] for j in range(rank + 1)))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_adjust_pvalues_equal_the_references(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, size=rng.integers(1, 40)) ** rng.uniform(1, 6)  # many small ones
    p[rng.integers(0, len(p))] = p[0]  # ties
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), scipy.stats.false_discovery_control(p, method="bh"), rtol=1e-12)
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), _holm_by_definition(p), rtol=1e-12)
    # Holm rejects at least what Bonferroni rejects
    assert np.all(adjust_pvalues(p, "holm") <= np.minimum(1, len(p) * p) + 1e-15)


def test_adjust_pvalues_refuses_bad_input():
    with pytest.raises(ValueError, match="Expected `method` to be 'holm' or 'bh', but got 'bonf'"):
        adjust_pvalues([0.1], "bonf")
    with pytest.raises(ValueError, match=r"Expected `pvalues` in \[0, 1\]"):
        adjust_pvalues([0.1, 1.5])


def test_paired_bootstrap_interval_covers_and_p_small_only_for_a_real_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    shifted = paired_bootstrap(lambda v: float(v.mean()), (x,), (x + 0.3 + 0.1 * rng.normal(size=400),), seed=1)
    assert shifted.ci_low < 0.3 < shifted.ci_high and shifted.pvalue < 1e-10
    noise = paired_bootstrap(lambda v: float(v.mean()), (x,), (x + 0.1 * rng.normal(size=400),), seed=1)
    assert noise.ci_low < 0 < noise.ci_high and noise.pvalue > 0.05
    # the bootstrap standard error of a mean difference is the t-test's standard error
    d = 0.1 * rng.normal(size=400) + 0.012
    boot = paired_bootstrap(lambda v: float(v.mean()), (np.zeros(400),), (d,), n_resamples=4000, seed=2)
    t = paired_ttest(d, np.zeros(400))
    assert 1e-5 < t.pvalue < 0.05
    boot_se = abs(boot.difference) / abs(scipy.stats.norm.ppf(boot.pvalue / 2))
    assert boot_se == pytest.approx(d.std(ddof=1) / np.sqrt(400), rel=0.05)
    assert boot.se == pytest.approx(boot_se, rel=1e-6)  # the standard error the p-value came from
    assert paired_bootstrap(lambda v: float(v.mean()), (x,), (x,)) == (0.0, 0.0, 0.0, 1.0, 0.0)


def _scores(rng, n=300, c=4, sharp=2.0, labels=None) -> ChoiceScores:
    labels = rng.integers(0, c, n) if labels is None else labels
    loglik = rng.normal(size=(n, c)) * sharp
    loglik[np.arange(n), labels] += 1.5  # better than chance
    return ChoiceScores(loglik, np.ones((n, c)), labels)


def test_summary_and_per_question_terms_equal_the_metrics_library():
    rng = np.random.default_rng(3)
    s = _scores(rng)
    probs, conf = s.probs, s.probs.max(axis=1)
    got = summary(s)
    assert got["ece"] == expected_calibration_error(conf, s.correct, n_bins=10)
    assert got["ace"] == adaptive_calibration_error(probs, s.labels, n_bins=10)
    assert got["brier"] == pytest.approx(brier_score(probs, s.labels), rel=1e-12)
    assert per_question_brier(probs, s.labels).mean() == pytest.approx(brier_score(probs, s.labels), rel=1e-12)
    assert got["conf_true"] == pytest.approx(probs[np.arange(300), s.labels].mean())
    assert got["conf_err"] == pytest.approx(conf[~s.correct].mean())
    assert got["entropy"] == pytest.approx(scipy.stats.entropy(probs, axis=1).mean())
    np.testing.assert_allclose(probs, scipy.special.softmax(s.loglik, axis=1))


def test_hypotheses_signs_and_tests():
    rng = np.random.default_rng(4)
    base = _scores(rng, sharp=1.0)
    flatter = ChoiceScores(base.loglik * 0.3, base.lengths, base.labels)  # less confident in everything
    h = hypotheses(base, flatter, flips_threshold=0.1)  # every metric: the flip rate's gate is off by default
    assert set(h) == {k for p in ('calibration', 'confidence') for k in CATALOG[p].keys}
    assert h["conf_true"].value > 0 and h["entropy"].value > 0  # harm is positive
    t = paired_ttest(flatter.true_class_confidence, base.true_class_confidence)
    assert h["conf_true"].pvalue == t.pvalue and h["conf_true"].test == "paired_ttest"
    assert h["ece"].test == "paired_bootstrap" and h["ece"].ci[0] <= h["ece"].value <= h["ece"].ci[1]
    same = hypotheses(base, base)
    assert all(x.value == 0 and x.pvalue == 1.0 for x in same.values())
    assert hypotheses(base, base, flips_threshold=0.1)["flips"].value == 0  # the base flips nothing of its own


def test_decide_needs_both_threshold_and_significance():
    from pytest_qrel.measures.family import Hypothesis

    fam = {
        ("a", "t", "conf_true"): Hypothesis("conf_true", 0.2, 0.5, 0.3, 1e-6, "paired_ttest"),  # big, significant
        ("b", "t", "conf_true"): Hypothesis("conf_true", 0.2, 0.5, 0.3, 0.2, "paired_ttest"),  # big, noise
        ("c", "t", "conf_true"): Hypothesis("conf_true", 0.01, 0.5, 0.49, 1e-9, "paired_ttest"),  # significant, small
        ("d", "t", "conf_true"): Hypothesis("conf_true", 0.2, 0.5, 0.3, 0.03, "paired_ttest"),  # fails alone only
    }
    got = decide(fam, {"conf_true": 0.05}, {"conf_true": 0.05}, "holm")
    assert [got[k].failed for k in fam] == [True, False, False, False]
    assert got[("d", "t", "conf_true")].adjusted_pvalue == pytest.approx(2 * 0.03)  # Holm: third smallest of 4
    alone = decide({("d", "t", "conf_true"): fam[("d", "t", "conf_true")]}, {"conf_true": 0.05}, {"conf_true": 0.05}, "holm")
    assert alone[("d", "t", "conf_true")].failed
    bh = decide(fam, {"conf_true": 0.05}, {"conf_true": 0.05}, "bh")  # BH: 4 x 0.03 / 3 = 0.04
    assert [bh[k].failed for k in fam] == [True, False, False, True]
    strict = decide(fam, {"conf_true": 0.05}, {"conf_true": 1e-7}, "holm")  # a level per metric
    assert [strict[k].failed for k in fam] == [False, False, False, False]


@pytest.fixture(scope="module")
def null_families() -> list[dict]:
    """60 families of 3 variants x 5 metrics under the null: each question's base and
    quantized rows are exchangeable. Both corrections are tested on these same draws."""
    rng = np.random.default_rng(5)
    families = []
    for _ in range(60):
        labels = rng.integers(0, 4, 200)
        base_ll = rng.normal(size=(200, 4)) * 2.0
        base_ll[np.arange(200), labels] += 1.5
        fam = {}
        for v in range(3):
            other = base_ll + rng.normal(size=(200, 4)) * 0.5
            swap = rng.random(200) < 0.5  # exchangeable pairs: no systematic change
            a = np.where(swap[:, None], other, base_ll)
            b = np.where(swap[:, None], base_ll, other)
            hyps = hypotheses(ChoiceScores(a, np.ones((200, 4)), labels), ChoiceScores(b, np.ones((200, 4)), labels),
                              seed=v)
            fam.update({(v, "t", k): h for k, h in hyps.items()})
        families.append(fam)
    return families


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_noise_alone_rarely_fails_a_family(null_families, correction):
    """Under the null (each question's base and quantized rows exchangeable), with every
    threshold at 0 so that only significance decides, a family of 3 variants x 5 metrics
    fails in at most about alpha of the runs: the correction controls the error."""
    keys = [k for p in ('calibration', 'confidence') for k in CATALOG[p].keys]
    runs, failed_runs = len(null_families), 0
    for fam in null_families:
        got = decide(fam, dict.fromkeys(keys, 0.0), dict.fromkeys(keys, 0.05), correction)
        failed_runs += any(d.failed for d in got.values())
    assert runs == 60
    assert failed_runs / runs <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / runs)
