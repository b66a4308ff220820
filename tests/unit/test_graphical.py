"""The graphical multiple-testing procedure (metrics/graphical.py; Bretz et al. 2009), issue 39's
groundwork: it equals Holm and the fixed sequence where it should, its result does not depend on
the order of rejections, its adjusted p-values agree with its rejections, and a primary endpoint
pooled over prompt sets with per-set secondaries keeps the family-wise error at most alpha under
the global null (Monte Carlo)."""

import math

import numpy as np
import pytest
from scipy import stats

from pytest_qrel.metrics import (
    MultipleTestGraph,
    adjust_pvalues,
    fixed_sequence_graph,
    graph_adjusted_pvalues,
    graph_reject,
    holm_graph,
    pooled_paired_test,
    primary_secondary_graph,
)


def _random_graph(rng: np.random.Generator, m: int) -> MultipleTestGraph:
    w = rng.dirichlet(np.ones(m)) * rng.uniform(0.5, 1.0)
    g = rng.dirichlet(np.ones(m), size=m) * rng.uniform(0.0, 1.0, size=(m, 1))
    np.fill_diagonal(g, 0.0)
    return MultipleTestGraph(tuple(w), tuple(map(tuple, g)))


def test_the_holm_graph_is_holm():
    rng = np.random.default_rng(0)
    for _ in range(300):
        m = int(rng.integers(1, 9))
        p = rng.uniform(0, 0.2, size=m) ** rng.uniform(1, 3)
        assert np.allclose(graph_adjusted_pvalues(holm_graph(m), p), adjust_pvalues(p, "holm"), rtol=0, atol=1e-12)
        assert (graph_reject(holm_graph(m), p, 0.05) == (adjust_pvalues(p, "holm") <= 0.05)).all()


def test_the_fixed_sequence_rejects_the_prefix_below_alpha():
    p = np.array([0.01, 0.04, 0.06, 0.001])
    assert graph_reject(fixed_sequence_graph(4), p, 0.05).tolist() == [True, True, False, False]
    assert graph_adjusted_pvalues(fixed_sequence_graph(4), p).tolist() == [0.01, 0.04, 0.06, 0.06]


def test_what_is_rejected_does_not_depend_on_the_order_and_agrees_with_the_adjusted_pvalues():
    rng = np.random.default_rng(1)
    for _ in range(200):
        m = int(rng.integers(2, 7))
        graph = _random_graph(rng, m)
        p = rng.uniform(0, 0.1, size=m)
        alpha = float(rng.uniform(0.01, 0.2))
        first = graph_reject(graph, p, alpha)
        for _ in range(3):
            assert (graph_reject(graph, p, alpha, order=rng.permutation(m)) == first).all()
        adjusted = graph_adjusted_pvalues(graph, p)
        near = np.abs(adjusted - alpha) < 1e-9  # a tie with alpha is decided by rounding either way
        assert (first[~near] == (adjusted <= alpha)[~near]).all()


def test_with_all_its_level_on_the_primary_no_secondary_is_reached_without_it():
    graph = primary_secondary_graph(3)
    assert graph_reject(graph, [0.2, 1e-9, 1e-9, 1e-9], 0.05).tolist() == [False] * 4
    # the primary rejected: Holm at alpha among the secondaries (0.015 <= 0.05/3, 0.024 <= 0.05/2, 0.2 > 0.05)
    assert graph_reject(graph, [0.04, 0.015, 0.024, 0.2], 0.05).tolist() == [True, True, True, False]
    assert graph_reject(graph, [0.04, 0.015, 0.026, 0.2], 0.05).tolist() == [True, True, False, False]
    # part of the level on the secondaries: a strong one is found with the primary kept, and passes its level on
    split = primary_secondary_graph(3, primary_weight=0.8)
    assert graph_reject(split, [0.06, 0.001, 0.3, 0.3], 0.05).tolist() == [False, True, False, False]
    # the primary at 0.8 x 0.05 = 0.04, plus the rejected secondary's 0.2/3 x 0.05: 0.0433
    assert graph_reject(split, [0.042, 0.001, 0.3, 0.3], 0.05).tolist() == [True, True, False, False]
    assert graph_reject(split, [0.042, 0.01, 0.3, 0.3], 0.05).tolist() == [False] * 4


@pytest.mark.parametrize("primary_weight", [1.0, 0.8])
def test_the_family_wise_error_of_a_pooled_primary_and_its_secondaries_is_at_most_alpha(primary_weight):
    """15 prompt sets of 40 paired differences, no harm anywhere: how often is any hypothesis
    rejected? (One-sided tests, the differences of a set correlated through a shared prompt effect.)"""
    rng = np.random.default_rng(2)
    sims, sets, n, alpha = 4000, 15, 40, 0.05
    prompt = rng.normal(size=(sims, 1, n))  # the same prompts under every perturbation
    d = 0.7 * prompt + rng.normal(size=(sims, sets, n))
    t = d.mean(axis=2) / (d.std(axis=2, ddof=1) / math.sqrt(n))
    secondary = stats.t.sf(t, n - 1)
    graph = primary_secondary_graph(sets, primary_weight)
    errors = 0
    for s in range(sims):
        primary = pooled_paired_test(list(d[s]), same_prompts=True)[2]
        errors += bool(graph_reject(graph, [primary, *secondary[s]], alpha).any())
    assert errors / sims <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / sims)


def test_sets_of_the_same_prompts_are_pooled_per_prompt():
    """Treated as independent, sets that share their prompts understate the pooled error."""
    rng = np.random.default_rng(5)
    prompt = rng.normal(size=30)
    d = [prompt + rng.normal(scale=0.3, size=30) for _ in range(10)]
    estimate, se, p = pooled_paired_test(d, same_prompts=True)
    reference = stats.ttest_1samp(np.mean(d, axis=0), 0.0, alternative="greater")
    assert estimate == pytest.approx(np.mean(d)) and p == pytest.approx(reference.pvalue, rel=1e-10)
    assert se > 2 * pooled_paired_test(d)[1]
    with pytest.raises(ValueError, match=r"same prompts in every set .* \[29, 30\] pairs"):
        pooled_paired_test([d[0], d[1][:29]], same_prompts=True)


def test_the_pooled_test_of_one_set_is_the_one_sided_t_test():
    rng = np.random.default_rng(3)
    d = rng.normal(0.2, 1.0, size=25)
    estimate, se, p = pooled_paired_test([d])
    reference = stats.ttest_1samp(d, 0.0, alternative="greater")
    assert estimate == pytest.approx(d.mean()) and se == pytest.approx(d.std(ddof=1) / 5)
    assert p == pytest.approx(reference.pvalue, rel=1e-10)


def test_the_pooled_test_weights_each_set_equally_and_its_pvalues_are_uniform_under_the_null():
    rng = np.random.default_rng(4)
    a, b = rng.normal(1.0, 1.0, size=10), rng.normal(0.0, 3.0, size=90)
    estimate, se, _ = pooled_paired_test([a, b])
    assert estimate == pytest.approx((a.mean() + b.mean()) / 2)
    assert se == pytest.approx(math.sqrt(a.var(ddof=1) / 10 + b.var(ddof=1) / 90) / 2)
    pvalues = [pooled_paired_test([rng.normal(0, 1, 8), rng.normal(0, 4, 30)])[2] for _ in range(2000)]
    assert stats.kstest(pvalues, "uniform").pvalue > 0.001


@pytest.mark.parametrize("weights, transitions, message", [
    ((0.6, 0.6), ((0, 1), (1, 0)), "sum to at most 1"),
    ((0.5, -0.1), ((0, 1), (1, 0)), "sum to at most 1"),
    ((0.5, 0.5), ((0.5, 0.5), (1, 0)), "0 on the diagonal"),
    ((0.5, 0.5), ((0, 1.5), (1, 0)), "at most 1 per row"),
    ((0.5, 0.5), ((0, 1),), "2 x 2 transition matrix"),
])
def test_a_graph_that_is_not_one_is_refused(weights, transitions, message):
    with pytest.raises(ValueError, match=message):
        MultipleTestGraph(weights, transitions)


def test_bad_pvalues_are_refused():
    with pytest.raises(ValueError, match="Expected 3 p-values"):
        graph_reject(holm_graph(3), [0.1, 0.2], 0.05)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        graph_adjusted_pvalues(holm_graph(2), [0.1, 1.2])
    with pytest.raises(ValueError, match="at least 2 paired differences per set"):
        pooled_paired_test([[0.1, 0.2], [0.3]])
