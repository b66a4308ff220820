"""Token-level uncertainty (paper 000 §3.1): predictive entropy and sequence aggregation."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_float_array, as_log_probabilities, as_mask, check_no_nan


def entropy(logprobs: ArrayLike, axis: int = -1) -> np.ndarray:
    r"""Shannon entropy in nats of each distribution given as log-probabilities.

    .. math:: H_t = -\sum_{k=1}^{|V|} P(y_k)\,\log P(y_k)

    Paper 000 eq. 3 (token-level entropy); paper 003 §3.2 uses the same quantity over
    the answer choices. Terms with ``P = 0`` (log-probability ``-inf``) contribute 0,
    the limit of ``p log p``.

    Args:
        logprobs: normalised log-probabilities; ``axis`` runs over the outcomes.
        axis: the axis holding the distribution.

    Returns:
        float64 array of ``logprobs.shape`` without ``axis`` (0-d for a single distribution).

    >>> float(entropy(np.log([0.25, 0.25, 0.25, 0.25])))
    1.3862943611198906
    >>> entropy([[0.0, -np.inf], np.log([0.5, 0.5])]).tolist()
    [0.0, 0.6931471805599453]
    """
    logp, p = as_log_probabilities(logprobs, "logprobs", axis)
    with np.errstate(invalid="ignore"):  # 0 * -inf is masked out just below
        terms = np.where(p > 0.0, p * logp, 0.0)
    return 0.0 - np.sum(terms, axis=axis)  # not unary minus: H of a point mass is 0.0, not -0.0


def sequence_mean(token_values: ArrayLike, mask: ArrayLike) -> np.ndarray:
    r"""Mean of a token-level metric over each sequence's unpadded positions.

    .. math:: M_{seq} = \frac{1}{T}\sum_{t=1}^{T} M_t

    Paper 000 eq. 2, with ``T`` the number of unmasked tokens of the sequence.
    Values at masked positions are ignored, whatever they hold (NaN, ``-inf``).

    Args:
        token_values: per-token metric, shape ``(n, T)``.
        mask: True/1 where the token counts, 0 for padding; shape ``(n, T)``.

    Returns:
        float64 array of shape ``(n,)``.

    >>> sequence_mean([[1.0, 2.0, 6.0], [4.0, np.nan, np.nan]], [[1, 1, 1], [1, 0, 0]]).tolist()
    [3.0, 4.0]
    """
    values = as_float_array(token_values, "token_values", ndim=2, shape_text="(n, T)", check_nan=False)
    keep = as_mask(mask, "mask", values.shape)
    check_no_nan(values[keep], "token_values")
    counts = keep.sum(axis=1)
    if np.any(counts == 0):
        empty = np.flatnonzero(counts == 0).tolist()
        raise ValueError(
            f"Expected every sequence to have at least one unmasked token, but sequences {empty} have none"
        )
    return np.sum(np.where(keep, values, 0.0), axis=1) / counts
