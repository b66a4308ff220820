"""Statistics over per-sample metric values: paired t-test (paper 003 Tables 2, 4, 5)
and streaming means (paper 000 eq. 7 averages token KL over a whole test set)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._sufficient import SufficientStats
from ._validation import as_float_array, as_mask, check_no_nan, check_same_length


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
