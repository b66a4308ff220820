r"""KL(P_base ‖ P_quant) from the base's top-k alone: what is stored per token, and certified
lower and upper bounds from it and the variant's full distribution (issue 16).

Per scored token the base's distribution :math:`P` over the vocabulary :math:`V` is kept as
its top-k set :math:`S` (ids and log-probs :math:`\log p_i`, :math:`p_k` the smallest of
them), the tail's mass :math:`T_P = \sum_{j \notin S} p_j` (as a log), and the tail's
:math:`E = \sum_{j \notin S} p_j \log p_j`; and the log-prob of the reference token. The
variant's :math:`Q` is computed live, in full. Splitting KL over :math:`S` and the tail,

.. math:: \mathrm{KL}(P\|Q) = \underbrace{\sum_{i \in S} p_i (\log p_i - \log q_i)}_{H,\ \text{exact}}
          + \underbrace{E - \sum_{j \notin S} p_j \log q_j}_{R}.

Lower bound (log-sum inequality, i.e. the data-processing inequality for merging the tail
into one outcome): :math:`\sum_{j\notin S} p_j \log(p_j/q_j) \ge T_P \log(T_P / T_Q)` with
:math:`T_Q = \sum_{j \notin S} q_j`, so :math:`\mathrm{KL} \ge H + T_P \log(T_P/T_Q) \ge 0`.

Upper bound: the tail's cross term :math:`C = \sum_{j\notin S} p_j c_j`, :math:`c_j = -\log q_j`,
is linear in the unknown tail probabilities, which satisfy :math:`0 \le p_j \le p_k` and
:math:`\sum p_j = T_P`. For any real :math:`\lambda`,
:math:`C = \lambda T_P + \sum p_j (c_j - \lambda) \le \lambda T_P + p_k \sum_{j \notin S} \max(0, c_j - \lambda)`
(weak LP duality; the minimum over :math:`\lambda` is the exact maximum of :math:`C` over
that box). So :math:`\mathrm{KL} \le H + E + \min_\lambda [\lambda T_P + p_k \sum \max(0, c_j-\lambda)]`
for every :math:`\lambda` tried; :math:`\lambda = \max_j c_j` gives :math:`T_P \max_j c_j`,
the bound of a variant that puts the least mass exactly where the base's tail is.

Both hold for every distribution (a flat base, a variant that moves all its mass into the
base's tail: ``tests/unit/test_topk.py`` checks them against exact KL). They are exact-
arithmetic statements about the stored float32 values; sums run in float64 per row block,
so round-off stays far below the 1e-3-nat widths reported. With :math:`k = |V|` both bounds
equal the exact KL. No per-token truncation is applied (llama.cpp drops entries 16 nats
below the top, which biases KL on large vocabularies).

Every function takes a block of rows ``(n, V)`` (float32 log-probs); callers pass blocks so
that no float64 copy of a whole (batch, tokens, vocab) tensor is ever made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .divergence import kl_divergence

if TYPE_CHECKING:
    import torch

# lambda values tried per token for the upper bound, as fractions between the largest and
# the smallest tail cross-entropy term (denser near the largest, where the optimum lies for
# a peaked base)
_LAMBDA_GRID = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75)


@dataclass(frozen=True)
class TopK:
    """The stored base outputs of ``n`` tokens: top-k log-probs (descending) and ids, the log
    of the tail's mass (-inf when k is the whole vocabulary), the tail's sum p log p, and
    the reference token's log-prob."""

    logp: torch.Tensor  # (n, k) float32
    ids: torch.Tensor  # (n, k) int32
    tail_logmass: torch.Tensor  # (n,) float64 (a float32 tail mass would move the bounds by ~1e-7 T_P)
    tail_plogp: torch.Tensor  # (n,) float64
    ref_logp: torch.Tensor  # (n,) float32

    def as_tensors(self) -> dict[str, torch.Tensor]:
        return {"logp": self.logp, "ids": self.ids, "tail_logmass": self.tail_logmass,
                "tail_plogp": self.tail_plogp, "ref_logp": self.ref_logp}


def summarize_topk(logp: torch.Tensor, k: int, ref: torch.Tensor) -> TopK:
    """The base's stored summary of rows ``logp`` (n, V) (normalised log-probs) with reference
    tokens ``ref`` (n,)."""
    import torch

    k = min(k, logp.shape[-1])
    top, ids = logp.topk(k, dim=-1)
    tail = logp.scatter(-1, ids, float("-inf"))
    tail64 = tail.double()
    p = tail64.exp()
    plogp = torch.where(p > 0, p * tail64, torch.zeros((), dtype=torch.float64)).sum(-1)
    return TopK(top.float().contiguous(), ids.int().contiguous(), tail64.logsumexp(-1),
                plogp, logp.gather(-1, ref.long()[:, None]).squeeze(-1).float())


@dataclass(frozen=True)
class TokenStats:
    """Per token: KL bounds (equal when exact), whether the variant's top token is the base's,
    and the reference token's log-prob under the variant."""

    lower: torch.Tensor  # (n,) float64
    upper: torch.Tensor  # (n,) float64
    top1_same: torch.Tensor  # (n,) bool
    quant_ref_logp: torch.Tensor  # (n,) float64


def topk_bounds(base: TopK, quant_logp: torch.Tensor, ref: torch.Tensor) -> TokenStats:
    """Certified lower and upper bounds on KL(P_base ‖ P_quant) per row (see the module's
    docstring for the inequalities) from the stored ``base`` and the variant's full rows
    ``quant_logp`` (n, V), float32 log-probs."""
    import torch

    ids = base.ids.long()
    logp = base.logp.double()
    p = logp.exp()
    q_head = quant_logp.gather(-1, ids).double()
    head = (p * (logp - q_head)).sum(-1)
    tail_mass = base.tail_logmass.double().exp()
    has_tail = tail_mass > 0
    top1 = quant_logp.argmax(-1) == ids[:, 0]
    quant_ref = quant_logp.gather(-1, ref.long()[:, None]).squeeze(-1).double()
    if not bool(has_tail.any()):  # k covers the vocabulary (the zoo at the default k): both bounds are the KL
        kl = head.clamp(min=0)
        return TokenStats(kl, kl.clone(), top1, quant_ref)
    # the variant's tail, in float64 one row block at a time
    q_tail = quant_logp.double().scatter(-1, ids, float("-inf"))
    q_tail_logmass = q_tail.logsumexp(-1)
    log_ratio = base.tail_logmass.double() - q_tail_logmass
    lower = head + torch.where(has_tail, tail_mass * log_ratio, torch.zeros((), dtype=torch.float64))
    # c_j = -log q_j on the tail (+inf where the variant gives a tail token no mass: then the
    # bound is +inf, as the KL may be); -inf on the top-k, so that max(0, c_j - lambda) is 0 there
    c = quant_logp.double().neg_().scatter_(-1, ids, float("-inf"))
    c_max = c.max(-1).values
    c_min = torch.where(c > float("-inf"), c, torch.full((), float("inf"), dtype=torch.float64)).min(-1).values
    p_k = p[:, -1]
    best = tail_mass * c_max  # lambda = c_max
    excess = torch.empty_like(c)
    for f in _LAMBDA_GRID[1:]:
        lam = c_max - f * (c_max - c_min)
        torch.sub(c, lam[:, None], out=excess)
        best = torch.minimum(best, lam * tail_mass + p_k * excess.clamp_(min=0).sum(-1))
    best = torch.where(torch.isposinf(c_max), torch.full((), float("inf"), dtype=torch.float64), best)
    upper = head + torch.where(has_tail, base.tail_plogp.double() + best, torch.zeros((), dtype=torch.float64))
    lower = lower.clamp(min=0)
    upper = torch.maximum(upper, lower)
    return TokenStats(lower, upper, top1, quant_ref)


def exact_stats(base_logp: torch.Tensor, quant_logp: torch.Tensor, ref: torch.Tensor) -> TokenStats:
    """Exact KL(P_base ‖ P_quant) per row from both full rows (n, V) float32 log-probs, summed
    in float64 (as ``kl_divergence``), with the same per-token statistics as ``topk_bounds``."""
    import torch

    kl = torch.from_numpy(kl_divergence(base_logp.double().numpy(), quant_logp.double().numpy()))
    top1 = quant_logp.argmax(-1) == base_logp.argmax(-1)
    return TokenStats(kl, kl, top1, quant_logp.gather(-1, ref.long()[:, None]).squeeze(-1).double())
