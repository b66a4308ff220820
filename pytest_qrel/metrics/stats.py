"""Statistics over per-sample metric values: paired t-test (paper 003 Tables 2, 4, 5)
and streaming means (paper 000 eq. 7 averages token KL over a whole test set)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._sufficient import SufficientStats
from ._validation import (
    as_binary,
    as_float_array,
    as_mask,
    check_no_nan,
    check_same_length,
)


class TTestResult(NamedTuple):
    statistic: float
    pvalue: float


def paired_ttest(a: ArrayLike, b: ArrayLike) -> TTestResult:
    r"""Two-sided paired t-test of ``mean(a - b) = 0``.

    .. math:: t = \frac{\bar d}{s_d / \sqrt{n}}, \quad d_i = a_i - b_i,
              \quad p = 2\,\bigl(1 - F_{t,\,n-1}(|t|)\bigr)

    with :math:`s_d` the sample standard deviation (ddof = 1). Paper 003 marks a
    base-vs-quantized confidence difference significant at p < 0.05 with this test
    (Tables 2, 4, 5). Equals ``scipy.stats.ttest_rel(a, b)``, except that when every
    difference is exactly 0 it returns ``(0.0, 1.0)`` (no evidence of a change)
    where scipy returns ``(nan, nan)`` — NaN would not survive ``results.json``.

    Args:
        a: per-sample values of one model, shape ``(n,)``, ``n >= 2``.
        b: per-sample values of the other model on the same samples.

    >>> paired_ttest([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 1.0, 3.0]).statistic == math.sqrt(6)
    True
    """
    from scipy.special import stdtr  # Student-t CDF; imported late to keep import light

    x = as_float_array(a, "a", ndim=1, finite=True)
    y = as_float_array(b, "b", ndim=1, finite=True)
    check_same_length(x, y, "a", "b")
    if x.size < 2:
        raise ValueError(f"Expected `a` and `b` to hold at least 2 pairs, but got {x.size}")
    d = x - y
    n = d.size
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        if mean == 0.0:
            return TTestResult(0.0, 1.0)
        return TTestResult(math.copysign(math.inf, mean), 0.0)
    t = mean / (sd / math.sqrt(n))
    return TTestResult(t, float(2.0 * stdtr(n - 1, -abs(t))))


@dataclass(frozen=True, eq=False)
class MeanStats(SufficientStats):
    """Count and sum of a value (e.g. token KL, paper 000 eq. 7); add across batches and workers.

    >>> s = MeanStats.from_batch([[1.0, 2.0], [3.0, 99.0]], mask=[[1, 1], [1, 0]])
    >>> s, (s + MeanStats.from_batch([6.0])).mean()
    (MeanStats(count=3, total=6.0), 3.0)
    """

    count: int
    total: float

    _dtypes = {"count": np.int64, "total": np.float64}

    @classmethod
    def from_batch(cls, values: ArrayLike, mask: ArrayLike | None = None) -> MeanStats:
        """Sum the values (where ``mask`` is True/1, if given); NaN is rejected, inf kept."""
        arr = as_float_array(values, "values", check_nan=False)
        keep = np.ones(arr.shape, dtype=bool) if mask is None else as_mask(mask, "mask", arr.shape)
        kept = arr[keep]
        check_no_nan(kept, "values")  # only positions that count; padding may hold anything
        return cls(count=kept.size, total=float(kept.sum()))

    def mean(self) -> float:
        if self.count == 0:
            raise ValueError("Expected at least one value in MeanStats, but got 0")
        return self.total / self.count


def adjust_pvalues(pvalues: ArrayLike, method: Literal["holm", "bh"] = "holm") -> np.ndarray:
    r"""p-values adjusted for testing a family of ``m`` hypotheses at once: reject
    hypothesis ``i`` at level :math:`\alpha` when the adjusted :math:`p_i \le \alpha`.

    ``holm`` (Holm 1979, controls the family-wise error rate), with :math:`p_{(1)} \le
    \dots \le p_{(m)}`: :math:`\tilde p_{(i)} = \max_{j \le i} \min(1, (m - j + 1)\,p_{(j)})`.
    ``bh`` (Benjamini–Hochberg 1995, controls the false discovery rate):
    :math:`\tilde p_{(i)} = \min_{j \ge i} \min(1, m\,p_{(j)} / j)`; equals
    ``scipy.stats.false_discovery_control(p, method="bh")``.

    >>> adjust_pvalues([0.01, 0.04, 0.03], "holm").tolist()
    [0.03, 0.06, 0.06]
    >>> [round(x, 12) for x in adjust_pvalues([0.01, 0.04, 0.03], "bh").tolist()]
    [0.03, 0.04, 0.04]
    """
    p = as_float_array(pvalues, "pvalues", ndim=1, finite=True)
    if method not in ("holm", "bh"):
        raise ValueError(f"Expected `method` to be 'holm' or 'bh', but got {method!r}")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"Expected `pvalues` in [0, 1], but got values in [{p.min():g}, {p.max():g}]")
    m = p.size
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    else:
        adjusted = np.minimum.accumulate(np.minimum(1.0, m * ranked / np.arange(1, m + 1))[::-1])[::-1]
    out = np.empty(m)
    out[order] = adjusted
    return out


_BATCH = 100  # resamples an indexed_statistic gets at once (bounds the resampled copies' memory)


def resample_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(k, n): how many times each of ``n`` samples is drawn by each row of ``idx`` (k, m)."""
    k = len(idx)
    return np.bincount((idx + n * np.arange(k)[:, None]).ravel(), minlength=k * n).reshape(k, n)


class BootstrapResult(NamedTuple):
    difference: float  # statistic(b) - statistic(a) on the full sample
    ci_low: float
    ci_high: float
    pvalue: float
    se: float = 0.0  # the bootstrap standard error of the difference, sd(Delta*)


def paired_bootstrap(
    statistic: Callable[..., float],
    a: tuple[np.ndarray, ...],
    b: tuple[np.ndarray, ...],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    omit_undefined: bool = False,
    indexed_statistic: Callable[..., np.ndarray] | None = None,
) -> BootstrapResult:
    r"""Paired bootstrap of ``statistic(*b) - statistic(*a)``, for statistics of a whole
    sample whose per-sample terms are not independent (ECE and ACE: a sample's contribution
    depends on the others in its bin), so a t-test on per-sample values does not apply.
    The same resampled indices are applied to every array of ``a`` and ``b`` (row ``i`` of
    each is the same question).

    Returns the observed difference, the percentile confidence interval, and a two-sided
    p-value from the bootstrap standard error (Efron & Tibshirani 1993, ch. 6, 12):
    :math:`p = 2\,\Phi(-|\Delta| / \mathrm{sd}(\Delta^*))`. A p-value counted from the
    resamples could not go below :math:`2/(B+1)`, too coarse for a family-wise correction
    over dozens of hypotheses; every :math:`\Delta^* = 0` with :math:`\Delta = 0`
    (identical inputs) gives 1.

    With ``omit_undefined``, resamples where the statistic is NaN (an AUROC of a resample
    holding one class only) are left out; at least half must remain, else ValueError.

    ``indexed_statistic``, when given, is ``statistic`` of many resamples at once, from their
    indices and the arrays as they are: ``indexed_statistic(idx, *a)`` with ``idx`` (k, n) the
    samples each of ``k`` resamples draws, returns one value per resample, equal to
    ``statistic`` of ``(x[idx[r]] for x in a)``: the same resamples, drawn from the same
    stream, without a Python call per resample (and, knowing the indices, without sorting
    every resample anew: ``resample_counts``).

    >>> stat = lambda x: float(x.mean())
    >>> r = paired_bootstrap(stat, (np.array([0.0, 1.0, 0.0, 1.0]),), (np.array([0.0, 1.0, 0.0, 1.0]),))
    >>> (r.difference, r.pvalue)
    (0.0, 1.0)
    """
    from scipy.special import ndtr  # standard normal CDF

    n = len(a[0])
    if n < 2:
        raise ValueError(f"Expected at least 2 paired samples, but got {n}")
    if any(len(x) != n for x in (*a, *b)):
        raise ValueError("Expected every array of `a` and `b` to hold the same samples, but their lengths differ")
    if not 0 < confidence < 1:
        raise ValueError(f"Expected `confidence` in (0, 1), but got {confidence}")
    if n_resamples < 2:
        raise ValueError(f"Expected `n_resamples` >= 2, but got {n_resamples}")
    if all(np.array_equal(x, y) for x, y in zip(a, b)):  # the same model twice: no change at all
        return BootstrapResult(0.0, 0.0, 0.0, 1.0)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    if indexed_statistic is not None:
        idx = rng.integers(0, n, (n_resamples, n))  # the same stream as n_resamples draws of n
        for s in range(0, n_resamples, _BATCH):
            rows = idx[s : s + _BATCH]
            diffs[s : s + _BATCH] = indexed_statistic(rows, *b) - indexed_statistic(rows, *a)
    for i in range(n_resamples) if indexed_statistic is None else ():
        idx = rng.integers(0, n, n)
        diffs[i] = statistic(*(x[idx] for x in b)) - statistic(*(x[idx] for x in a))
    observed = float(statistic(*b) - statistic(*a))
    if omit_undefined:
        diffs = diffs[np.isfinite(diffs)]
        if 2 * len(diffs) < n_resamples:
            raise ValueError(f"Expected the statistic to be defined on at least half of the {n_resamples} resamples, "
                             f"but it is on {len(diffs)}")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    se = float(diffs.std(ddof=1))
    if se == 0.0:
        return BootstrapResult(observed, float(low), float(high), 1.0 if observed == 0.0 else 0.0, 0.0)
    return BootstrapResult(observed, float(low), float(high), float(2.0 * ndtr(-abs(observed) / se)), se)


class Flips(NamedTuple):
    """How many of ``n`` questions a variant answers right where its base was wrong and
    wrong where its base was right (Dutta et al. 2024, arXiv 2407.09141, §3 "flips")."""

    right_to_wrong: int
    wrong_to_right: int
    n: int

    @property
    def count(self) -> int:  # type: ignore[override]  # the flips, not tuple.count
        return self.right_to_wrong + self.wrong_to_right

    @property
    def rate(self) -> float:
        """The flip rate: the share of questions whose correctness changed, either way."""
        return self.count / self.n


def correctness_flips(base_correct: ArrayLike, quant_correct: ArrayLike) -> Flips:
    r"""Count the questions whose correctness changes from the base to the variant.

    Dutta et al. 2024 ("Accuracy is not all you need", arXiv 2407.09141, §3) define flips as
    answers that change from correct to incorrect or back, and show that a compressed model
    can keep its base's accuracy while flipping many answers: the accuracy change is
    :math:`\mathrm{acc}_q - \mathrm{acc}_b = (\#w\!\to\!r - \#r\!\to\!w) / n`, the flip rate
    :math:`(\#r\!\to\!w + \#w\!\to\!r) / n` counts both directions.

    Args:
        base_correct: per-question correctness of the base, shape ``(n,)``, booleans or 0/1.
        quant_correct: of the variant on the same questions.

    >>> f = correctness_flips([1, 1, 0, 0, 1], [1, 0, 1, 0, 1])
    >>> f, f.rate
    (Flips(right_to_wrong=1, wrong_to_right=1, n=5), 0.4)
    """
    b = as_binary(base_correct, "base_correct")
    q = as_binary(quant_correct, "quant_correct")
    check_same_length(b, q, "base_correct", "quant_correct")
    return Flips(int((b & ~q).sum()), int((~b & q).sum()), int(b.size))


def binomial_pvalue_above(k: int, n: int, share: float) -> float:
    r"""One-sided exact binomial test of :math:`H_0: \pi \le s` against :math:`\pi > s` for
    ``k`` events in ``n`` independent trials: :math:`P(X \ge k)`, :math:`X \sim B(n, s)`.
    Equals ``scipy.stats.binomtest(k, n, share, alternative="greater").pvalue``.

    >>> round(binomial_pvalue_above(3, 10, 0.1), 6)
    0.070191
    """
    from scipy.stats import binom

    _check_binomial(k, n)
    if not 0 < share < 1:
        raise ValueError(f"Expected `share` in (0, 1), but got {share}")
    return float(binom.sf(k - 1, n, share))


def binomial_upper_bound(k: int, n: int, level: float) -> float:
    r"""One-sided Clopper-Pearson upper confidence bound of a binomial proportion at
    confidence ``1 - level``: the largest :math:`\pi` with :math:`P(X \le k \mid \pi) \ge`
    ``level``, i.e. the Beta(k + 1, n - k) quantile at ``1 - level`` (1 when ``k == n``).
    :math:`\pi` at or above it is rejected by the exact one-sided test at ``level``; with
    ``k = 0`` it is :math:`1 - \mathrm{level}^{1/n}`.

    >>> round(binomial_upper_bound(0, 100, 0.05), 6)
    0.029513
    """
    from scipy.stats import beta

    _check_binomial(k, n)
    if not 0 < level < 1:
        raise ValueError(f"Expected `level` in (0, 1), but got {level}")
    return 1.0 if k == n else float(beta.ppf(1 - level, k + 1, n - k))


def _check_binomial(k: int, n: int) -> None:
    if not (isinstance(n, (int, np.integer)) and n >= 1 and isinstance(k, (int, np.integer)) and 0 <= k <= n):
        raise ValueError(f"Expected integers 0 <= k <= n with n >= 1, but got k={k!r}, n={n!r}")
