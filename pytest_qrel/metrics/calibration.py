"""Calibration metrics: Brier score, ECE, adaptive CE, confidence shift per bin.

Sources: paper 000 (Reliability Scaling Laws for Quantized LLMs) eq. 5 for the
Brier score; paper 003 (When Quantization Affects Confidence of LLMs) App. B for
ECE and ACE, §5 / Fig. 1 and App. C for the confidence shift per base-confidence bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._sufficient import SufficientStats
from ._validation import (
    as_binary,
    as_labels,
    as_probabilities,
    check_n_bins,
    check_same_length,
    check_sums_to_one,
)


def _equal_width_bin_index(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each value in [0, 1] for ``n_bins`` equal-width bins ``(lo, hi]``.

    003 App. B writes ``(m-1)/M <= conf <= m/M``, which puts an edge value in two
    bins; we use right-closed bins ``(lo, hi]`` (a confidence of exactly 0.5 lands
    in the bin ending at 0.5) and let the first bin also take 0. Edges come from
    ``linspace`` so a value equal to a printed edge (0.3) is compared with that
    same float edge, never with a product like ``0.3 * 10``.
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, values, side="left") - 1, 0, n_bins - 1)


def brier_score(probs: ArrayLike, labels: ArrayLike) -> float:
    r"""Multi-class Brier score, averaged over samples.

    .. math:: \mathrm{Brier} = \frac{1}{n}\sum_{i=1}^{n}\sum_{k=1}^{K}(p_{ik} - \mathbb{1}[y_i = k])^2

    Paper 000 eq. 5 (token-level Brier over the vocabulary; Brier, 1950). Ranges
    over [0, 2]; for two classes it is twice sklearn's binary ``brier_score_loss``.

    Args:
        probs: predicted distributions, shape ``(n, K)``, rows summing to 1.
        labels: true class indices, shape ``(n,)``.

    >>> brier_score([[0.75, 0.25], [0.5, 0.5]], [0, 1])
    0.3125
    """
    p = as_probabilities(probs, "probs", ndim=2, shape_text="(n, K)")
    check_sums_to_one(p, "probs")
    y = as_labels(labels, "labels", n_classes=p.shape[1])
    check_same_length(p, y, "probs", "labels")
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


@dataclass(frozen=True, eq=False)
class CalibrationStats(SufficientStats):
    """Per-bin sufficient statistics of the expected calibration error.

    ``count[m]``, ``sum_conf[m]`` and ``n_correct[m]`` for equal-width confidence
    bins; they add across batches and xdist workers (``+``, ``sum(...)``), and
    round-trip through JSON with :meth:`to_dict` / :meth:`from_dict`.

    >>> a = CalibrationStats.from_batch([0.25, 0.75], [0, 1], n_bins=2)
    >>> b = CalibrationStats.from_batch([0.75, 1.0], [0, 1], n_bins=2)
    >>> (a + b).to_dict()
    {'count': [1, 3], 'sum_conf': [0.25, 2.5], 'n_correct': [0, 2]}
    >>> (a + b).ece()
    0.1875
    """

    count: np.ndarray
    sum_conf: np.ndarray
    n_correct: np.ndarray

    _dtypes = {"count": np.int64, "sum_conf": np.float64, "n_correct": np.int64}

    @classmethod
    def from_batch(cls, confidences: ArrayLike, correct: ArrayLike, n_bins: int = 15) -> CalibrationStats:
        """Reduce one batch of (confidence, correct) pairs to per-bin sums."""
        n_bins = check_n_bins(n_bins)
        conf = as_probabilities(confidences, "confidences", ndim=1)
        hit = as_binary(correct, "correct")
        check_same_length(conf, hit, "confidences", "correct")
        idx = _equal_width_bin_index(conf, n_bins)
        return cls(
            count=np.bincount(idx, minlength=n_bins),
            sum_conf=np.bincount(idx, weights=conf, minlength=n_bins),
            n_correct=np.bincount(idx, weights=hit, minlength=n_bins),
        )

    @property
    def n_bins(self) -> int:
        return len(self.count)

    def ece(self) -> float:
        r"""ECE from the sums: :math:`\sum_m \frac{|B_m|}{n}|acc(B_m) - \overline{conf}(B_m)|
        = \frac{1}{n}\sum_m |n\_correct_m - sum\_conf_m|` (003 App. B)."""
        n = int(self.count.sum())
        if n == 0:
            raise ValueError("Expected at least one sample in CalibrationStats, but got 0")
        return float(np.sum(np.abs(self.n_correct - self.sum_conf)) / n)


def expected_calibration_error(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 15) -> float:
    r"""Expected calibration error with equal-width bins (Naeini et al., 2015).

    .. math:: \mathrm{ECE} = \sum_{m=1}^{M}\frac{|B_m|}{n}\,\bigl|acc(B_m) - \overline{conf}(B_m)\bigr|

    Paper 003 App. B. Bins are ``(lo, hi]`` on [0, 1] and the first bin also takes 0.
    Computed as ``CalibrationStats.from_batch(...).ece()`` — the streaming form is
    the only implementation.

    Args:
        confidences: confidence of each prediction, shape ``(n,)``, in [0, 1].
        correct: whether each prediction was right, shape ``(n,)``, bool or 0/1.
        n_bins: number of equal-width bins ``M``.

    >>> expected_calibration_error([0.25, 0.75, 0.75, 1.0], [0, 1, 0, 1], n_bins=2)
    0.1875
    """
    return CalibrationStats.from_batch(confidences, correct, n_bins).ece()


def expected_calibration_error_rows(confidences: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> np.ndarray:
    """``expected_calibration_error`` of each of ``k`` samples at once (``confidences`` and
    ``correct`` (k, n); a bootstrap's resamples), each value exactly the scalar's: one
    ``bincount`` over the rows' bins offset by row sums each bin in the same order as the
    scalar's, and each row's |n_correct - sum_conf| is summed as the scalar sums it; inputs
    are not validated again."""
    k, n = confidences.shape
    n_bins = check_n_bins(n_bins)
    idx = (_equal_width_bin_index(confidences, n_bins) + n_bins * np.arange(k)[:, None]).ravel()
    sum_conf = np.bincount(idx, weights=confidences.ravel(), minlength=k * n_bins).reshape(k, n_bins)
    n_correct = np.bincount(idx, weights=correct.ravel().astype(np.float64), minlength=k * n_bins).reshape(k, n_bins)
    return np.abs(n_correct - sum_conf).sum(axis=1) / n  # each row summed as the scalar sums it


def adaptive_calibration_error(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> float:
    r"""Adaptive calibration error (Nixon et al., 2019) with equal-mass bins per class.

    .. math:: \mathrm{ACE} = \frac{1}{CM}\sum_{c=1}^{C}\sum_{m=1}^{M}\bigl|acc(B_m, c) - \overline{conf}(B_m, c)\bigr|

    Paper 003 App. B. For each class ``c`` the samples are sorted by ``probs[:, c]``
    (stable sort, so ties keep sample order) and cut into ``M`` consecutive bins of
    equal mass (``np.array_split`` sizes: the first ``n % M`` bins hold one more).
    ``acc(B_m, c)`` is the fraction of the bin whose label is ``c``,
    ``conf(B_m, c)`` the bin's mean of ``probs[:, c]``. App. B states the bin size as
    ``floor(C/M)``; Nixon et al. mean ``n/M`` samples, which is what we do. When
    ``n < M`` only ``n`` bins are non-empty and the mean runs over those.

    Args:
        probs: predicted distributions, shape ``(n, C)``, rows summing to 1.
        labels: true class indices, shape ``(n,)``.
        n_bins: number of equal-mass bins ``M`` per class.

    >>> adaptive_calibration_error([[0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [1.0, 0.0]], [0, 1, 0, 0], n_bins=2)
    0.125
    """
    n_bins = check_n_bins(n_bins)
    p = as_probabilities(probs, "probs", ndim=2, shape_text="(n, C)")
    check_sums_to_one(p, "probs")
    y = as_labels(labels, "labels", n_classes=p.shape[1])
    check_same_length(p, y, "probs", "labels")
    return float(adaptive_calibration_error_rows(p[None], y[None], n_bins)[0])


def adaptive_calibration_error_resamples(probs: np.ndarray, labels: np.ndarray, idx: np.ndarray,
                                         n_bins: int = 15) -> np.ndarray:
    """``adaptive_calibration_error`` of each resample ``probs[idx[r]]``, ``labels[idx[r]]``
    of ``idx`` (k, m) at once, each value exactly the scalar's. Each class's values are ranked
    once (equal values one rank), so a resample is ordered by a stable sort of small integers
    (a radix sort), not of its floats: the same order, 4x faster on 500 questions."""
    n = len(probs)
    ranks = np.empty(probs.shape, dtype=np.uint16 if n < 2**16 else np.int64)
    for c in range(probs.shape[1]):
        by_value = np.argsort(probs[:, c], kind="stable")
        ranks[by_value, c] = np.searchsorted(probs[by_value, c], probs[by_value, c], side="left")
    order = np.argsort(ranks[idx], axis=1, kind="stable")
    return adaptive_calibration_error_rows(probs[idx], labels[idx], n_bins, order)


def adaptive_calibration_error_rows(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15,
                                    order: np.ndarray | None = None) -> np.ndarray:
    """``adaptive_calibration_error`` of each of ``k`` samples at once (``probs`` (k, n, C),
    ``labels`` (k, n); a bootstrap's resamples), each value exactly the scalar's (the same
    stable sort and in-order sums per row); inputs are not validated again. ``order``: that
    stable sort, where the caller knows it."""
    k, n, n_classes = probs.shape
    if order is None:
        order = np.argsort(probs, axis=1, kind="stable")  # column c: samples by ascending p[:, c]
    sorted_conf = np.take_along_axis(probs, order, axis=1)
    sorted_hit = (np.take_along_axis(np.broadcast_to(labels[:, :, None], probs.shape), order, axis=1)
                  == np.arange(n_classes)).astype(np.float64)
    # Bin sizes depend only on n, so one set of cut points serves every class.
    sizes = np.array([len(chunk) for chunk in np.array_split(np.arange(n), n_bins)])
    sizes = sizes[sizes > 0]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    mean_conf = np.add.reduceat(sorted_conf, starts, axis=1) / sizes[None, :, None]
    mean_acc = np.add.reduceat(sorted_hit, starts, axis=1) / sizes[None, :, None]
    return np.abs(mean_acc - mean_conf).reshape(k, -1).mean(axis=1)  # each row's mean as np.mean of that row


@dataclass(frozen=True, eq=False)
class ConfidenceShiftByBin:
    """Mean confidence shift per bin of base confidence (003 Fig. 1); empty bins are nan."""

    bin_edges: np.ndarray  # (n_bins + 1,), bins are (lo, hi], the first also takes 0
    counts: np.ndarray  # (n_bins,) samples whose base confidence falls in the bin
    mean_base: np.ndarray  # (n_bins,) mean base confidence in the bin
    mean_shift: np.ndarray  # (n_bins,) mean of (quant - base) in the bin


@dataclass(frozen=True, eq=False)
class ConfidenceShiftStats(SufficientStats):
    """Per-bin sums behind :func:`confidence_shift_by_bin`; add across batches and workers.

    >>> s = ConfidenceShiftStats.from_batch([0.25, 0.75], [0.5, 0.5], n_bins=2)
    >>> s + ConfidenceShiftStats.from_batch([1.0], [0.75], n_bins=2) == ConfidenceShiftStats(
    ...     count=[1, 2], sum_base=[0.25, 1.75], sum_shift=[0.25, -0.5])
    True
    """

    count: np.ndarray
    sum_base: np.ndarray
    sum_shift: np.ndarray

    _dtypes = {"count": np.int64, "sum_base": np.float64, "sum_shift": np.float64}

    @classmethod
    def from_batch(cls, base_conf: ArrayLike, quant_conf: ArrayLike, n_bins: int = 10) -> ConfidenceShiftStats:
        """Reduce one batch of paired (base, quantized) confidences to per-bin sums."""
        n_bins = check_n_bins(n_bins)
        base = as_probabilities(base_conf, "base_conf", ndim=1)
        quant = as_probabilities(quant_conf, "quant_conf", ndim=1)
        check_same_length(base, quant, "base_conf", "quant_conf")
        idx = _equal_width_bin_index(base, n_bins)
        return cls(
            count=np.bincount(idx, minlength=n_bins),
            sum_base=np.bincount(idx, weights=base, minlength=n_bins),
            sum_shift=np.bincount(idx, weights=quant - base, minlength=n_bins),
        )

    @property
    def n_bins(self) -> int:
        return len(self.count)

    def by_bin(self) -> ConfidenceShiftByBin:
        """Means per bin; nan where a bin is empty (there is no shift to report)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_base = np.where(self.count > 0, self.sum_base / self.count, np.nan)
            mean_shift = np.where(self.count > 0, self.sum_shift / self.count, np.nan)
        return ConfidenceShiftByBin(
            bin_edges=np.linspace(0.0, 1.0, self.n_bins + 1),
            counts=np.array(self.count),
            mean_base=mean_base,
            mean_shift=mean_shift,
        )


def confidence_shift_by_bin(base_conf: ArrayLike, quant_conf: ArrayLike, n_bins: int = 10) -> ConfidenceShiftByBin:
    r"""Mean confidence shift after quantization, per equal-width bin of base confidence.

    .. math:: \Delta_m = \frac{1}{|B_m|}\sum_{i \in B_m}(conf^{quant}_i - conf^{base}_i),
              \quad B_m = \{i : conf^{base}_i \in ((m-1)/M, m/M]\}

    Paper 003 §5 "Identifying Cases of Confidence Change", Fig. 1 and App. C: samples
    the base model was unsure of shift most. Same binning as the ECE.

    Args:
        base_conf: confidence of the full-precision model, shape ``(n,)``, in [0, 1].
        quant_conf: confidence of the quantized model on the same samples, shape ``(n,)``.
        n_bins: number of equal-width bins of base confidence.

    >>> r = confidence_shift_by_bin([0.25, 0.75, 1.0], [0.5, 0.5, 0.75], n_bins=2)
    >>> r.counts.tolist(), r.mean_base.tolist(), r.mean_shift.tolist()
    ([1, 2], [0.25, 0.875], [0.25, -0.25])
    """
    return ConfidenceShiftStats.from_batch(base_conf, quant_conf, n_bins).by_bin()
