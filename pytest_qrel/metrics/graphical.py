r"""The graphical approach to sequentially rejective multiple tests (Bretz, Maurer, Brannath and
Posch 2009, *Statistics in Medicine* 28:586-604), the groundwork of issue 39's primary and
secondary endpoints: a few primary hypotheses tested at (nearly) the full level, the many
secondary ones with the level a rejection passes on to them, the family-wise error rate of all
of them together at most :math:`\alpha` (strongly, for any dependence of the tests: the
procedure is a closed test of weighted Bonferroni tests, their Theorem 1).

A graph gives each hypothesis :math:`H_i` a weight :math:`w_i` (:math:`\sum_i w_i \le 1`: it is
tested at :math:`w_i\alpha`) and each edge a share :math:`g_{ij}` of :math:`H_i`'s level that goes
to :math:`H_j` once :math:`H_i` is rejected (:math:`g_{ii} = 0`, :math:`\sum_j g_{ij} \le 1`).
Algorithm 1 of the paper: while some :math:`p_i \le w_i \alpha`, reject :math:`H_i` and, over
the hypotheses :math:`l, k` left,

.. math:: w_l \leftarrow w_l + w_i g_{il}, \qquad
          g_{lk} \leftarrow \frac{g_{lk} + g_{li} g_{ik}}{1 - g_{li} g_{il}} \;(l \ne k,\;
          g_{li} g_{il} < 1;\; 0 \text{ otherwise}).

What it rejects does not depend on the order the rejectable hypotheses are taken in (their
Theorem 2). Holm's procedure is the graph with equal weights and equal edges; testing in a
fixed sequence is a chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_float_array

TOLERANCE = 1e-12  # a weight or row sum may exceed 1 by rounding, no more


@dataclass(frozen=True)
class MultipleTestGraph:
    """A multiple-testing graph: ``weights[i]`` is :math:`w_i`, ``transitions[i][j]`` is :math:`g_{ij}`."""

    weights: tuple[float, ...]
    transitions: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=float)
        g = np.asarray(self.transitions, dtype=float)
        m = w.size
        if w.ndim != 1 or not np.isfinite(w).all() or (w < 0).any() or w.sum() > 1 + TOLERANCE:
            raise ValueError(f"Expected weights that are >= 0 and sum to at most 1, but got {list(self.weights)}")
        if g.shape != (m, m):
            raise ValueError(f"Expected a {m} x {m} transition matrix (one row per weight), but got shape {g.shape}")
        if not np.isfinite(g).all() or (g < 0).any() or (np.diag(g) != 0).any() or (g.sum(axis=1) > 1 + TOLERANCE).any():
            raise ValueError("Expected transitions that are >= 0, 0 on the diagonal and sum to at most 1 per row, "
                             f"but got {[list(r) for r in self.transitions]}")

    @property
    def size(self) -> int:
        return len(self.weights)


def holm_graph(m: int) -> MultipleTestGraph:
    """Holm's procedure (Holm 1979) as a graph: weights 1/m, every edge 1/(m - 1)."""
    edge = 1 / (m - 1) if m > 1 else 0.0
    return MultipleTestGraph(tuple([1 / m] * m), tuple(tuple(0.0 if i == j else edge for j in range(m)) for i in range(m)))


def fixed_sequence_graph(m: int) -> MultipleTestGraph:
    """Test :math:`H_1, H_2, \\dots` in order, each at the full level, stopping at the first kept."""
    return MultipleTestGraph(tuple([1.0] + [0.0] * (m - 1)), tuple(tuple(1.0 if j == i + 1 else 0.0 for j in range(m))
                                                          for i in range(m)))


def primary_secondary_graph(secondaries: int, primary_weight: float = 1.0) -> MultipleTestGraph:
    """One primary hypothesis (index 0) and ``secondaries`` secondary ones (1..m): the primary is
    tested at ``primary_weight`` x alpha, the secondaries share the rest equally; a rejected primary
    passes its level to the secondaries equally, a rejected secondary passes its level to the
    primary (and, once the primary is rejected, on to the other secondaries: Holm among them).
    With ``primary_weight`` 1 the secondaries are tested only once the primary is rejected."""
    m = secondaries
    if m < 1:
        raise ValueError(f"Expected at least 1 secondary hypothesis, but got {m}")
    if not 0 < primary_weight <= 1:
        raise ValueError(f"Expected a primary weight in (0, 1], but got {primary_weight}")
    weights = (primary_weight, *[(1 - primary_weight) / m] * m)
    rows = [tuple([0.0] + [1 / m] * m)]
    rows += [tuple(1.0 if j == 0 else 0.0 for j in range(m + 1)) for _ in range(m)]
    return MultipleTestGraph(weights, tuple(rows))


def _remove(w: np.ndarray, g: np.ndarray, active: np.ndarray, i: int) -> None:
    """Algorithm 1's update on rejecting ``i`` (in place, over the ``active`` hypotheses)."""
    left = np.flatnonzero(active & (np.arange(w.size) != i))
    w[left] += w[i] * g[i, left]
    new = np.zeros_like(g)
    for lo in left:
        for k in left:
            if lo == k:
                continue
            denominator = 1 - g[lo, i] * g[i, lo]
            new[lo, k] = (g[lo, k] + g[lo, i] * g[i, k]) / denominator if denominator > TOLERANCE else 0.0
    g[:] = new
    w[i] = 0.0
    active[i] = False


def graph_reject(graph: MultipleTestGraph, pvalues: ArrayLike, alpha: float, order: ArrayLike | None = None) -> np.ndarray:
    """Which hypotheses the graph rejects at family-wise level ``alpha`` (Algorithm 1).

    ``order``: a permutation of the hypotheses in which the rejectable ones are taken (the result
    is the same for every order, Theorem 2 of the paper; tests use it to check that).

    >>> graph_reject(holm_graph(3), [0.01, 0.04, 0.03], 0.05).tolist()
    [True, False, False]
    """
    p = _pvalues(pvalues, graph)
    if not 0 < alpha < 1:
        raise ValueError(f"Expected alpha in (0, 1), but got {alpha}")
    w, g = np.array(graph.weights, dtype=float), np.array(graph.transitions, dtype=float)
    active = np.ones(p.size, dtype=bool)
    sequence = np.arange(p.size) if order is None else np.asarray(order)
    while True:
        i = next((int(j) for j in sequence if active[j] and p[j] <= w[j] * alpha), None)
        if i is None:
            return ~active
        _remove(w, g, active, i)


def graph_adjusted_pvalues(graph: MultipleTestGraph, pvalues: ArrayLike) -> np.ndarray:
    """The graph's adjusted p-values (the paper's Section 3.2): hypothesis i is rejected at any
    level alpha with ``adjusted[i] <= alpha``. Taken in order of the smallest :math:`p_j / w_j`,
    each is the running maximum of those ratios, capped at 1; a hypothesis never reached is 1.

    >>> [round(x, 12) for x in graph_adjusted_pvalues(holm_graph(3), [0.01, 0.04, 0.03]).tolist()]
    [0.03, 0.06, 0.06]
    """
    p = _pvalues(pvalues, graph)
    w, g = np.array(graph.weights, dtype=float), np.array(graph.transitions, dtype=float)
    active = np.ones(p.size, dtype=bool)
    adjusted = np.ones(p.size)
    running = 0.0
    while active.any():
        with np.errstate(divide="ignore"):
            ratio = np.where(active & (w > 0), p / np.where(w > 0, w, 1.0), math.inf)
        i = int(np.argmin(ratio))
        if not math.isfinite(ratio[i]):
            break  # the hypotheses left get no level whatever is rejected
        running = max(running, float(ratio[i]))
        adjusted[i] = min(1.0, running)
        _remove(w, g, active, i)
    return adjusted


def _pvalues(pvalues: ArrayLike, graph: MultipleTestGraph) -> np.ndarray:
    p = as_float_array(pvalues, "pvalues", ndim=1, finite=True)
    if p.size != graph.size:
        raise ValueError(f"Expected {graph.size} p-values (one per hypothesis of the graph), but got {p.size}")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"Expected `pvalues` in [0, 1], but got values in [{p.min():g}, {p.max():g}]")
    return p


def pooled_paired_test(differences: list[ArrayLike], same_prompts: bool = False) -> tuple[float, float, float]:
    """The mean of paired differences pooled over several sets, each set weighted equally
    (issue 39's primary endpoint: a robustness harm pooled over every perturbation, a drift
    pooled over tasks): ``(estimate, standard error, one-sided p-value of estimate > 0)``.

    ``same_prompts``: every set holds the same prompts in the same order (the robustness suite's
    perturbations of one QA file): a prompt's differences under the perturbations are correlated
    through the prompt, so the prompt is the unit. Its differences are averaged over the sets,
    :math:`\bar d_j = \frac1S \\sum_s d_{sj}`, and tested with the one-sample t-test over prompts
    (n - 1 degrees of freedom). Otherwise the sets are independent samples (tasks of their own
    questions):

    .. math:: \\hat\\Delta = \frac1S \\sum_s \bar d_s, \\quad
              \\widehat{\\mathrm{se}}^2 = \frac1{S^2} \\sum_s \frac{s_s^2}{n_s}

    with a Student t of Welch-Satterthwaite's degrees of freedom
    :math:`(\\sum_s v_s)^2 / \\sum_s v_s^2 / (n_s - 1)`, :math:`v_s = s_s^2 / n_s`. (Treating
    correlated sets as independent understates the error: 23% family-wise errors at alpha 0.05
    in ``tests/unit/test_graphical.py``'s simulation.) Every set needs at least 2 pairs. No
    spread at all: estimate, 0, and p-value 1 (0 when the estimate is positive).
    """
    from scipy.special import stdtr

    sets = [as_float_array(d, f"differences[{i}]", ndim=1, finite=True) for i, d in enumerate(differences)]
    if not sets:
        raise ValueError("Expected at least one set of paired differences, but got none")
    short = [i for i, d in enumerate(sets) if d.size < 2]
    if short:
        raise ValueError(f"Expected at least 2 paired differences per set, but set {short[0]} has {sets[short[0]].size}")
    if same_prompts:
        sizes = {d.size for d in sets}
        if len(sizes) > 1:
            raise ValueError(f"Expected the same prompts in every set (same_prompts), but the sets hold {sorted(sizes)} pairs")
        sets = [np.mean(sets, axis=0)]
    count = len(sets)
    estimate = float(sum(d.mean() for d in sets) / count)
    v = np.array([d.var(ddof=1) / d.size for d in sets])
    se = float(math.sqrt(v.sum()) / count)
    if se == 0:
        return estimate, 0.0, 0.0 if estimate > 0 else 1.0
    df = float(v.sum() ** 2 / sum(vi**2 / (d.size - 1) for vi, d in zip(v, sets) if vi > 0))
    return estimate, se, float(stdtr(df, -estimate / se))
