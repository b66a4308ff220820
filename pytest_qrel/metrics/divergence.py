"""Divergences between full-precision and quantized predictions.

KL(P_base ‖ P_quant) per token is the inner term of paper 000 eq. 7; the
Jensen–Shannon distance of true-class probability vectors is paper 003 Fig. 2 / App. B.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_log_probabilities, as_probabilities, check_same_shape


def kl_divergence(p_logprobs: ArrayLike, q_logprobs: ArrayLike, axis: int = -1) -> np.ndarray:
    r"""Kullback–Leibler divergence KL(P ‖ Q) in nats, per distribution, from log-probabilities.

    .. math:: \mathrm{KL}(P \,\|\, Q) = \sum_k P_k\,(\log P_k - \log Q_k)

    Paper 000 eq. 7: per-token KL from the base model ``P`` to the quantized model
    ``Q``; average the result with :func:`sequence_mean` / :class:`MeanStats`.
    Working from log-probabilities (upcast to float64) keeps tiny probabilities
    exact; terms with ``P_k = 0`` are 0, and ``Q_k = 0`` where ``P_k > 0`` gives
    ``inf``. By Gibbs' inequality KL >= 0; a negative sum can only be round-off (or
    inputs normalised just within the 1e-4 tolerance), so it is clipped to 0.
    Accepts numpy arrays or torch tensors; returns numpy.

    Args:
        p_logprobs: log-probabilities of the reference distribution ``P``.
        q_logprobs: log-probabilities of ``Q``, same shape.
        axis: the axis holding the distribution.

    Returns:
        float64 array of the input shape without ``axis``.

    >>> float(kl_divergence(np.log([0.5, 0.5]), np.log([0.25, 0.75])))
    0.14384103622589045
    >>> kl_divergence([0.0, -np.inf], [-np.inf, 0.0]).tolist()
    inf
    """
    logp, p = as_log_probabilities(p_logprobs, "p_logprobs", axis)
    logq, _ = as_log_probabilities(q_logprobs, "q_logprobs", axis)
    check_same_shape(logp, logq, "p_logprobs", "q_logprobs")
    with np.errstate(invalid="ignore"):  # -inf - -inf where p == 0 is masked out
        terms = np.where(p > 0.0, p * (logp - logq), 0.0)
    return np.maximum(np.sum(terms, axis=axis), 0.0)


def js_distance(p: ArrayLike, q: ArrayLike) -> float:
    r"""Jensen–Shannon distance (natural log) of two probability vectors.

    .. math:: \mathrm{JS}(p, q) = \sqrt{\tfrac12\,\mathrm{KL}(p \,\|\, m) + \tfrac12\,\mathrm{KL}(q \,\|\, m)},
              \quad m = \tfrac12(p + q)

    Paper 003 App. B / Fig. 2 applies it to the vectors of true-class
    probabilities of the base and quantized models over the ``n`` instances; like
    ``scipy.spatial.distance.jensenshannon`` each vector is first divided by its
    sum, and the square root of the divergence is returned. Lies in
    ``[0, sqrt(ln 2)]``.

    Args:
        p: probabilities in [0, 1], shape ``(n,)``, not all zero.
        q: probabilities in [0, 1], shape ``(n,)``, not all zero.

    >>> js_distance([1.0, 0.0], [0.0, 1.0]) == float(np.sqrt(np.log(2)))
    True
    >>> js_distance([0.5, 0.25], [0.5, 0.25])
    0.0
    """
    p_arr = as_probabilities(p, "p", ndim=1)
    q_arr = as_probabilities(q, "q", ndim=1)
    check_same_shape(p_arr, q_arr, "p", "q")
    for name, arr in (("p", p_arr), ("q", q_arr)):
        if not arr.sum() > 0.0:
            raise ValueError(f"Expected `{name}` to have a positive sum, but got all zeros")
    p_arr = p_arr / p_arr.sum()
    q_arr = q_arr / q_arr.sum()
    total = p_arr + q_arr  # = 2m; never underflows to 0 where p or q > 0, unlike m itself

    def kl_to_m(x: np.ndarray) -> float:
        # x ln(2x / (p + q)): the second form of the JSD in 003 App. B
        with np.errstate(divide="ignore", invalid="ignore"):  # x == 0 terms are masked out
            return float(np.sum(np.where(x > 0.0, x * np.log(2.0 * x / total), 0.0)))

    # Round-off can push the divergence a hair below 0; the distance of equal inputs is 0.
    return float(np.sqrt(max((kl_to_m(p_arr) + kl_to_m(q_arr)) / 2.0, 0.0)))
