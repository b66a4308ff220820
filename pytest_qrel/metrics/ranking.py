"""Discrimination of correct vs wrong answers by an uncertainty score (paper 000 §4,
"AUCROC (Entropy)", "AUCPR (Entropy)"): AUROC and average precision."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_binary, as_float_array, check_both_classes, check_same_length


def _scores_and_labels(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = as_float_array(scores, "scores", ndim=1)
    y = as_binary(labels, "labels")
    check_same_length(s, y, "scores", "labels")
    check_both_classes(y, "labels")
    return s, y


def auroc_counts(scores: np.ndarray, labels: np.ndarray, counts: np.ndarray,
                 owner: np.ndarray | None = None) -> np.ndarray:
    """``auroc`` of each of ``k`` resamples given as ``counts`` (k, units): how many times each
    unit is drawn, unit ``owner[i]`` holding score ``i`` (by default score ``i`` is unit ``i``;
    a prompt's samples share their prompt's count). NaN for a resample holding one class, or a
    drawn NaN score. The Mann-Whitney count that ``auroc``'s rank formula equals, so each value
    equals ``auroc`` of that resample exactly (sums of half-integers), with the scores sorted
    once instead of each resample's (200 resamples of 400 answers: 7 ms a side when the
    resampled scores were ranked)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels).astype(bool)
    c = np.asarray(counts)
    m = len(s)
    owners = np.arange(m) if owner is None else np.asarray(owner)
    order = np.argsort(s, kind="stable")
    units = owners[order]
    _, first, group = np.unique(s[order], return_index=True, return_inverse=True)  # ties: one group; NaNs last
    ends = np.append(first[1:], m)
    # (scores in order x resamples), few temporaries, updated in place
    neg = c.T.astype(float)[units]  # each score's count in each resample
    pos = neg * y[order][:, None]
    neg -= pos
    below = np.zeros((m + 1, len(c)))
    np.cumsum(neg, axis=0, out=below[1:])  # negatives among the first j scores
    lower = below[first[group]]  # negatives scored strictly lower than score j
    tied = below[ends[group]]
    tied -= lower  # negatives scored the same
    tied *= 0.5
    lower += tied
    lower *= pos
    n_pos, n_neg = pos.sum(0), neg.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = lower.sum(0) / (n_pos * n_neg)
    drawn_nan = (c[:, owners[np.isnan(s)]] > 0).any(1)
    return np.where((n_pos > 0) & (n_neg > 0) & ~drawn_nan, value, np.nan)


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    r"""Area under the ROC curve via the Mann–Whitney U statistic with average ranks.

    .. math:: \mathrm{AUROC} = \frac{\sum_{i:y_i=1} r_i - n_1(n_1+1)/2}{n_1 n_0}

    with :math:`r_i` the rank of ``scores[i]`` (ties share their average rank), so
    a tied positive/negative pair counts 1/2 — the value of sklearn's
    ``roc_auc_score``. Paper 000 reports it for entropy as a score of
    correctness (Fig. 1, Tables 4–6). A higher score must mean "more likely
    positive"; pass ``-entropy`` to score correctness.

    Args:
        scores: real-valued scores, shape ``(n,)``.
        labels: 1/True for the positive class, shape ``(n,)``; both classes required.

    >>> auroc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1])
    0.875
    """
    s, y = _scores_and_labels(scores, labels)
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # Average rank of each distinct value: ranks before it, plus the mean of 1..count.
    avg_rank = np.cumsum(counts) - counts + (counts + 1) / 2.0
    ranks = avg_rank[inverse]
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auprc(scores: ArrayLike, labels: ArrayLike) -> float:
    r"""Area under the precision–recall curve as average precision (step-wise).

    .. math:: \mathrm{AP} = \sum_{j} (R_j - R_{j-1})\,P_j

    over the distinct score thresholds in decreasing order (all samples tied at a
    threshold enter together), with :math:`R_0 = 0` — sklearn's
    ``average_precision_score``, not the trapezoidal area, which is optimistic.
    Paper 000 reports it for entropy and log-likelihood (Tables 4–6).

    Args:
        scores: real-valued scores, shape ``(n,)``; higher means "more likely positive".
        labels: 1/True for the positive class, shape ``(n,)``; both classes required.

    >>> auprc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1])
    0.8333333333333333
    """
    s, y = _scores_and_labels(scores, labels)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # last index of each run of equal scores = the points where a threshold is applied
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    tp = np.cumsum(y_sorted)[last]
    precision = tp / (last + 1.0)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))
