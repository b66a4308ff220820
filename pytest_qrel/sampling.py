"""Sampled generation (paper 000 §3.1, A.2): batched, KV-cached answers drawn from each
prompt's own seeded generator, with per-step entropies; and the per-token scores of a
reference answer (eq. 4, 5) that the robustness suite reads from the same passes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Collection, Sequence

from . import progress

if TYPE_CHECKING:
    import numpy as np
    import torch


# What this module computes (drawn answers, their entropies, reference scores), at this version:
# part of the key of every stored output (measures/outputs.py). A change of what it computes must
# bump it; a refactor that computes the same numbers must not (tests/e2e/test_measure_versions.py).
VERSION = 1
GENERATION_ROWS = 512  # sequences per batched, KV-cached generation pass


@dataclass(frozen=True)
class Samples:
    """What ``sample_answers`` drew: per prompt, ``samples`` continuations of up to
    ``max_new_tokens`` tokens. ``tokens`` (n, samples, T) holds -1 after a sequence ended
    (its end-of-sequence token included); ``entropy`` (n, samples, T) is the entropy of the
    model's own next-token distribution at each drawn step (eq. 3, temperature 1), NaN past
    the end; ``nonfinite`` lists the prompts whose logits were NaN or infinite."""

    tokens: np.ndarray
    entropy: np.ndarray
    nonfinite: tuple[int, ...] = ()
    # with ``first_targets``: per prompt, log P(target | prompt) and the Brier score of that
    # first step (eq. 4 and 5 of a one-token reference), NaN where its logits were not finite
    first_logprob: np.ndarray | None = None
    first_brier: np.ndarray | None = None


def sample_answers(
    model: torch.nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    seeds: Sequence[int],
    samples: int,
    temperature: float,
    max_new_tokens: int,
    stop_ids: Collection[int] = (),
    rows: int = GENERATION_ROWS,
    first_targets: Sequence[int] | None = None,
) -> Samples:
    """Draw ``samples`` continuations of every prompt with multinomial sampling at
    ``temperature`` (0: greedy), batched and KV-cached: each pass left-pads up to ``rows``
    sequences (position ids follow the attention mask), runs the prompts once, then one
    token per step on the cache.

    Prompt ``i``'s draws come from its own generator seeded with ``seeds[i]`` (inverse-CDF
    sampling on float64 cumulative probabilities), so they do not depend on which prompts
    share its batch, on their order, or on the process: the base and a variant given the
    same seeds share their random numbers, and differ only where their distributions do.

    A sequence ends at a token of ``stop_ids`` (the end-of-sequence token, and tokens that
    hold a stop string: nothing after them is part of the answer), and every pass ends as
    soon as all of its sequences have.

    ``first_targets`` (a token per prompt): also score that token as the first of the answer
    from the prompt's own prefill (a one-token reference answer needs no forward pass of its own)."""
    import numpy as np
    import torch

    if not prompt_ids:
        raise ValueError("Expected at least one prompt to generate from, but got none")
    if samples < 1 or max_new_tokens < 1 or not temperature >= 0:
        raise ValueError(f"Expected samples >= 1, max_new_tokens >= 1 and temperature >= 0, but got "
                         f"{samples}, {max_new_tokens}, {temperature}")
    n = len(prompt_ids)
    tokens = np.full((n, samples, max_new_tokens), -1, dtype=np.int64)
    entropy = np.full((n, samples, max_new_tokens), np.nan)
    bad: set[int] = set()
    device = next(model.parameters()).device
    per_pass = max(1, rows // samples)
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long)
    first_logprob = first_brier = None
    if first_targets is not None:
        first_logprob, first_brier = np.full(n, np.nan), np.full(n, np.nan)
    cache_arg = _cache_argument(model)
    order = sorted(range(n), key=lambda i: len(prompt_ids[i]), reverse=True)
    with torch.no_grad(), progress.step("sampling", n, "prompt", model) as bar:  # not inference_mode: see next_token_logprobs
        for start in range(0, n, per_pass):
            chunk = order[start : start + per_pass]
            # each prompt's random numbers, drawn up front from its own generator in the order the
            # steps use them (a generator's stream does not depend on how it is cut into draws)
            draws = torch.stack([torch.rand(max_new_tokens * samples, dtype=torch.float64,
                                            generator=torch.Generator().manual_seed(int(seeds[i]) % (1 << 63)))
                                 for i in chunk]).view(len(chunk), max_new_tokens, samples)
            width = max(len(prompt_ids[i]) for i in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(chunk):
                if not prompt_ids[i]:
                    raise ValueError(f"Expected prompt {i} to have at least one token, but it has none")
                ids[r, width - len(prompt_ids[i]):] = torch.tensor(list(prompt_ids[i]))
                mask[r, width - len(prompt_ids[i]):] = 1
            ids, mask = ids.to(device), mask.to(device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            # one prefill per prompt; its KV cache and last logits are then repeated for the
            # prompt's samples (a cache that cannot be repeated: the prompts are repeated instead)
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
            cache = out.cache if hasattr(out, "cache") else out.past_key_values
            if first_targets is not None and first_logprob is not None and first_brier is not None:
                _score_first(out.logits[:, -1], chunk, first_targets, first_logprob, first_brier)
            if samples > 1 and hasattr(cache, "batch_repeat_interleave"):
                cache.batch_repeat_interleave(samples)
                last = out.logits[:, -1].repeat_interleave(samples, 0)
            elif samples > 1:
                out = model(input_ids=ids.repeat_interleave(samples, 0), attention_mask=mask.repeat_interleave(samples, 0),
                            position_ids=positions.repeat_interleave(samples, 0), use_cache=True, logits_to_keep=1)
                cache, last = (out.cache if hasattr(out, "cache") else out.past_key_values), out.logits[:, -1]
            else:
                last = out.logits[:, -1]
            mask, positions = mask.repeat_interleave(samples, 0), positions.repeat_interleave(samples, 0)
            alive = torch.ones(len(mask), dtype=torch.bool)
            tok = np.full((len(mask), max_new_tokens), -1, dtype=np.int64)
            ent = np.full((len(mask), max_new_tokens), np.nan)
            row_of = torch.arange(len(mask))  # the pass's row (prompt x sample) of each sequence still run
            for t in range(max_new_tokens):
                logits = last.double().cpu()
                finite = torch.isfinite(logits).all(-1)
                for r in torch.nonzero(~finite & alive).flatten().tolist():
                    bad.add(chunk[int(row_of[r]) // samples])
                if not bool(finite.all()):
                    logits = torch.where(finite[:, None], logits, torch.zeros_like(logits))
                # in place where it can be (the same values; fresh (rows x vocabulary) float64
                # arrays cost page faults)
                logp = torch.log_softmax(logits, -1)
                h = logp.exp().mul_(logp).nan_to_num_().sum(-1).neg_()  # eq. 3
                if temperature == 0:
                    step = logits.argmax(-1)
                else:
                    cdf = torch.softmax(logits.div(temperature), -1).cumsum_(-1)
                    u = draws[:, t].reshape(-1)[row_of]
                    step = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None]).squeeze(-1).clamp(max=cdf.shape[1] - 1)
                keep = alive.numpy()
                rows = row_of.numpy()[keep]
                tok[rows, t], ent[rows, t] = step.numpy()[keep], h.numpy()[keep]
                alive &= ~torch.isin(step, stops)
                if t + 1 == max_new_tokens or not alive.any():
                    break
                if int(alive.sum()) <= len(alive) // 2 and hasattr(cache, "batch_select_indices"):
                    # half the sequences have ended: run only the others from here (a variant
                    # that rambles to max_new_tokens on a few prompts no longer costs every
                    # row every step: zoo-xxl's 2-bit variant computed 121k rows for 18k tokens);
                    # at most log2(rows) copies of the cache per pass
                    going = torch.nonzero(alive).flatten()
                    cache.batch_select_indices(going.to(device))
                    mask, positions, step = mask[going], positions[going], step[going]
                    row_of, alive = row_of[going], alive[going]
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
                positions = positions[:, -1:] + 1
                out = model(input_ids=step[:, None].to(device), attention_mask=mask, position_ids=positions,
                            use_cache=True, **{cache_arg: cache})
                cache, last = (out.cache if hasattr(out, "cache") else out.past_key_values), out.logits[:, -1]
            tokens[chunk] = tok.reshape(len(chunk), samples, -1)
            entropy[chunk] = ent.reshape(len(chunk), samples, -1)
            bar.update(len(chunk))
    return Samples(tokens, entropy, tuple(sorted(bad)), first_logprob, first_brier)


def token_scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``logits`` (scored positions x vocabulary): log P(target) (eq. 4), the token
    Brier score sum_k (P(y_k) - 1[y_k = target])^2 (eq. 5), both in float64, and whether the
    row's logits were all finite."""
    import torch

    lg = logits.double().cpu()
    logp = torch.log_softmax(lg, -1)
    p = logp.exp()
    rows = torch.arange(len(targets))
    return (logp[rows, targets].numpy(), ((p**2).sum(-1) - 2 * p[rows, targets] + 1).numpy(),
            torch.isfinite(lg).all(-1).numpy())


def _score_first(last: torch.Tensor, chunk: Sequence[int], targets: Sequence[int], logprob: np.ndarray,
                 brier: np.ndarray) -> None:
    """Eq. 4 and 5 of each prompt's first answer token ``targets[i]`` from the prefill's last logits."""
    import torch

    ll, b, finite = token_scores(last, torch.tensor([int(targets[i]) for i in chunk]))
    for r, i in enumerate(chunk):
        if finite[r]:
            logprob[i], brier[i] = ll[r], b[r]


def _cache_argument(model: torch.nn.Module) -> str:
    """The name a model's forward takes its KV cache by: ``cache`` since transformers 5.24
    (``past_key_values`` before, and in models that still use it)."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
