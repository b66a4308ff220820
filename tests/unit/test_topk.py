"""metrics/topk.py: the certified KL bounds contain the exact KL (scipy's rel_entr on the same
float32 log-probs) for every distribution tried, including adversarial ones, and collapse
to it when k is the whole vocabulary."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import rel_entr

from pytest_qrel.metrics.topk import exact_stats, summarize_topk, topk_bounds

# the bounds are exact-arithmetic statements about the stored float32 values, summed in
# float64: allow float64 round-off over a 128k vocabulary, nothing more
SLACK = 1e-9


def _logp(logits: np.ndarray) -> torch.Tensor:
    return torch.log_softmax(torch.from_numpy(logits).float(), dim=-1)


def _exact(base: torch.Tensor, quant: torch.Tensor) -> np.ndarray:
    p, q = base.double().exp().numpy(), quant.double().exp().numpy()
    return rel_entr(p, q).sum(-1)


def _check(base: torch.Tensor, quant: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ref = torch.randint(0, base.shape[-1], (base.shape[0],))
    stats = topk_bounds(summarize_topk(base, k, ref), quant, ref)
    exact = _exact(base, quant)
    lower, upper = stats.lower.numpy(), stats.upper.numpy()
    assert np.all(lower <= exact + SLACK * np.maximum(1, exact)), (lower - exact).max()
    assert np.all(exact <= upper + SLACK * np.maximum(1, exact)), (exact - upper).max()
    assert np.all(lower >= 0)
    return lower, upper, exact


def _cases(rng: np.random.Generator, n: int, vocab: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    base = rng.normal(0, 3, (n, vocab))
    order = np.argsort(-base, axis=-1)
    tail_heavy = np.full((n, vocab), -30.0)  # the variant puts (almost) all its mass on the base's tail
    np.put_along_axis(tail_heavy, order[:, -vocab // 2 :], rng.normal(5, 1, (n, vocab // 2)), axis=-1)
    return {
        "near": (base, base + rng.normal(0, 0.3, (n, vocab))),
        "far": (base, rng.normal(0, 3, (n, vocab))),
        "peaked": (base * 4, base * 4 + rng.normal(0, 1, (n, vocab))),
        "flat base": (np.zeros((n, vocab)), rng.normal(0, 2, (n, vocab))),
        "flat base, peaked variant": (np.zeros((n, vocab)), rng.normal(0, 10, (n, vocab))),
        "variant in the base's tail": (base, tail_heavy),
        "identical": (base, base),
        "base one-hot": (np.where(np.arange(vocab) == 3, 50.0, 0.0)[None].repeat(n, 0), rng.normal(0, 2, (n, vocab))),
    }


@pytest.mark.parametrize("k", [1, 2, 16, 64])
def test_bounds_contain_exact_kl(k: int) -> None:
    rng = np.random.default_rng(k)
    for name, (b, q) in _cases(rng, 40, 300).items():
        _, upper, _ = _check(_logp(b), _logp(q), k)
        assert np.all(np.isfinite(upper)), name


def test_bounds_contain_exact_kl_at_a_real_vocabulary() -> None:
    # Llama 3's vocabulary: sums over 128k float32 entries
    rng = np.random.default_rng(0)
    for b, q in _cases(rng, 4, 128256).values():
        for k in (64, 1024):
            _check(_logp(b), _logp(q), k)


def test_bounds_equal_exact_kl_with_the_whole_vocabulary() -> None:
    rng = np.random.default_rng(1)
    base, quant = _logp(rng.normal(0, 3, (20, 50))), _logp(rng.normal(0, 3, (20, 50)))
    lower, upper, exact = _check(base, quant, 50)
    np.testing.assert_allclose(lower, exact, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(upper, exact, rtol=1e-6, atol=1e-9)
    stats = exact_stats(base, quant, torch.zeros(20, dtype=torch.long))
    np.testing.assert_allclose(stats.lower.numpy(), exact, rtol=1e-9, atol=1e-12)


def test_bounds_narrow_as_the_stored_tail_shrinks() -> None:
    # a language model's next-token distribution: most mass on a few tokens, a long tail; the
    # width is what the tail's arrangement leaves open, at most T_P times the spread of the
    # variant's -log q over the tail, and it falls with the tail's mass as k grows
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 1, (50, 5000))
    logits[:, :5] += 12
    base = _logp(logits)
    quant = _logp(logits + rng.normal(0, 0.2, logits.shape))
    widths = []
    for k in (16, 64, 1024, 4096, 5000):
        lower, upper, exact = _check(base, quant, k)
        widths.append((upper - lower).mean())
        tail = np.maximum(0, 1 - base.exp().topk(k).values.double().sum(-1).numpy())
        q = quant.double().numpy()
        assert np.all(upper - lower <= tail * (q.max(-1) - q.min(-1)) + 1e-9)
    assert widths == sorted(widths, reverse=True) and widths[-1] < 1e-9
    assert widths[2] < widths[0] / 4


def test_lower_bound_is_attained_by_a_base_tail_proportional_to_the_variant() -> None:
    # the log-sum inequality is an equality when p_j / q_j is constant on the tail
    rng = np.random.default_rng(3)
    q = _logp(rng.normal(0, 2, (10, 200)))
    logits = q.double().numpy().copy()
    logits[:, :8] += 20  # the base's top-8 differ from the variant's; the tail is proportional
    base = _logp(logits)
    ref = torch.zeros(10, dtype=torch.long)
    stats = topk_bounds(summarize_topk(base, 8, ref), q, ref)
    top8 = base.topk(8).indices
    assert set(top8[0].tolist()) == set(range(8))
    np.testing.assert_allclose(stats.lower.numpy(), _exact(base, q), rtol=1e-5)


def test_top1_agreement_and_reference_log_prob() -> None:
    base = _logp(np.array([[5.0, 1.0, 0.0], [0.0, 4.0, 1.0]]))
    quant = _logp(np.array([[4.0, 1.0, 0.0], [3.0, 1.0, 0.0]]))
    ref = torch.tensor([1, 2])
    stats = topk_bounds(summarize_topk(base, 1, ref), quant, ref)
    assert stats.top1_same.tolist() == [True, False]
    np.testing.assert_allclose(stats.quant_ref_logp.numpy(), quant[[0, 1], [1, 2]].double().numpy())
    top = summarize_topk(base, 2, ref)
    np.testing.assert_allclose(top.ref_logp.numpy(), base[[0, 1], [1, 2]].numpy())
    np.testing.assert_allclose(np.exp(top.tail_logmass.numpy()), base.exp()[[0, 1], [2, 0]].numpy(), rtol=1e-6)


def test_row_log_probs_sum_to_one_on_a_128k_vocabulary():
    """The engine's float32 log-probs are normalised in float64: torch's float32 log_softmax
    over 128,256 logits of a peaked row with a wide tail sums to 1 only within ~1e-4 (past
    the references' 1e-4 check on a trained, padded checkpoint), these within 1e-6."""
    from pytest_qrel.rows import log_softmax_rows

    g = torch.Generator().manual_seed(0)
    raw = torch.randn(64, 128256, generator=g)
    raw[:, :300] += 15  # 300 likely tokens over a 128k tail
    logp = log_softmax_rows(raw)
    assert logp.dtype == torch.float32 and logp.shape == raw.shape
    sums = logp.double().exp().sum(-1)
    assert float((sums - 1).abs().max()) < 1e-6
    reference = torch.log_softmax(raw.double(), -1)
    assert float((logp.double() - reference).abs().max()) < 1e-5
