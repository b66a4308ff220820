"""Batched forward passes: next-token log-probabilities of a model over texts."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TokenBatch:
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)

    @property
    def target_mask(self) -> torch.Tensor:
        """(B, T-1): position t is scored when token t+1 exists (paper 000 eq. 2 averages over them)."""
        return self.attention_mask[:, 1:] * self.attention_mask[:, :-1]


def device_for_worker() -> torch.device:
    """The device this process evaluates on: one GPU per xdist worker, round robin, else CPU."""
    import torch

    if not torch.cuda.is_available():
        return torch.device("cpu")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw") or 0) % torch.cuda.device_count()
    return torch.device("cuda", index)


def encode(tokenizer, texts: Sequence[str], batch_size: int = 32, max_length: int = 256) -> list[TokenBatch]:
    """Tokenize ``texts`` into right-padded batches, longest first to waste little padding."""
    if not texts:
        raise ValueError("Expected at least one text to evaluate on, but got an empty dataset")
    order = sorted(texts, key=len, reverse=True)
    batches = []
    for i in range(0, len(order), batch_size):
        enc = tokenizer(
            list(order[i : i + batch_size]), return_tensors="pt", padding=True, truncation=True, max_length=max_length
        )
        batches.append(TokenBatch(enc["input_ids"], enc["attention_mask"]))
    return batches


def next_token_logprobs(
    model: torch.nn.Module, batches: Sequence[TokenBatch], check_finite: bool = True
) -> Iterator[torch.Tensor]:
    """Yield, per batch, log P(. | x_<=t) at every position that predicts a real token:
    a float32 tensor (B, T-1, V) on the CPU. NaN or infinite logits at a scored token are
    an error, unless ``check_finite`` is off (the caller then counts them itself)."""
    import torch

    device = next(model.parameters()).device
    # no_grad, not inference_mode: quanto's packed int2/int4 weights go through an autograd
    # Function that cannot run on inference tensors
    with torch.no_grad():
        for batch in batches:
            logits = model(
                input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device)
            ).logits[:, :-1]
            if check_finite:
                bad = (~torch.isfinite(logits).all(-1)).cpu() & batch.target_mask.bool()
                if bad.any():
                    raise FloatingPointError(
                        f"Expected finite logits from {type(model).__name__}, but got NaN or inf "
                        f"at {int(bad.sum())} of {int(batch.target_mask.sum())} tokens of a batch"
                    )
            yield torch.log_softmax(logits.float(), dim=-1).cpu()


def reference_logprobs(model: torch.nn.Module, batches: Sequence[TokenBatch]) -> Iterator[torch.Tensor]:
    """Yield, per batch, log P(x_{t+1} | x_<=t) of the reference next token: (B, T-1) float32
    (paper 000 §3.1, the token log-likelihood)."""
    for batch, logprobs in zip(batches, next_token_logprobs(model, batches)):
        yield logprobs.gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)


# -- multiple-choice scoring (paper 003 §3) ---------------------------------------------------


LOGITS_BUDGET = 1 << 26  # logits per forward pass of choice scoring: 256 MB of float32


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """Token ids of each ``context`` and of its ``continuation``, split the way lm-eval's
    ``HFLM._encode_pair`` splits them (so the scores are comparable): trailing spaces of the
    context move to the continuation, the whole string is encoded (with the tokenizer's
    default special tokens, as ``HFLM.tok_encode``) and the context's tokens cut off."""
    contexts, wholes = [], []
    for context, continuation in pairs:
        if not context:
            raise ValueError("Expected a non-empty context to score a continuation after, but got ''")
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        contexts.append(context)
        wholes.append(context + continuation)
    ctx_ids = tokenizer(contexts)["input_ids"]
    whole_ids = tokenizer(wholes)["input_ids"]
    return [(list(c), list(w[len(c):])) for c, w in zip(ctx_ids, whole_ids)]


def choice_loglikelihoods(
    model: torch.nn.Module,
    tokenizer,
    questions: Sequence[tuple[str, Sequence[str]]],
    batch_size: int = 1024,
) -> tuple[list[list[float]], int]:
    r"""For each question ``(context, continuations)``, the log-likelihood of every
    continuation given the context, :math:`\log p(y|x) = \sum_i \log p(y_{[i]}|x, y_{[1:i-1]})`
    (paper 003 §3: the sum of the continuation's token log-probs).

    A question whose continuations are all one token after the same context tokens is
    scored in one forward pass over its context (every choice read from the last position,
    as lm-eval's one-token cache does); otherwise each choice is one sequence,
    ``context + continuation`` without its last token. Rows are batched longest first and
    right-padded. Returns the per-question lists and the number of questions whose scored
    logits were NaN or infinite (their values are then not finite either)."""
    import torch

    flat = [(q, c) for q, (context, continuations) in enumerate(questions) for c in continuations]
    encoded = encode_pairs(tokenizer, [(questions[q][0], c) for q, c in flat])
    per_question: list[list[tuple[list[int], list[int]]]] = [[] for _ in questions]
    for (q, c), (ctx, cont) in zip(flat, encoded):
        if not cont:
            raise ValueError(f"Expected continuation {c!r} to add at least one token to {questions[q][0]!r}, but it adds none")
        per_question[q].append((ctx, cont))
    # a row: (input ids, [(question, choice, continuation ids)]); a continuation's tokens are
    # predicted by the row's last len(cont) positions
    rows: list[tuple[list[int], list[tuple[int, int, list[int]]]]] = []
    for q, pairs in enumerate(per_question):
        if all(len(cont) == 1 and ctx == pairs[0][0] for ctx, cont in pairs):
            rows.append((pairs[0][0], [(q, k, cont) for k, (_, cont) in enumerate(pairs)]))
        else:
            rows.extend(((ctx + cont)[:-1], [(q, k, cont)]) for k, (ctx, cont) in enumerate(pairs))
    rows.sort(key=lambda r: len(r[0]), reverse=True)
    out = [[math.nan] * len(c) for _, c in questions]
    bad: set[int] = set()
    device = next(model.parameters()).device
    vocab = int(model.get_output_embeddings().weight.shape[0])
    i = 0
    with torch.no_grad():  # not inference_mode: see next_token_logprobs
        while i < len(rows):
            # at most batch_size rows, and about LOGITS_BUDGET logits (B x T x V floats) per pass
            size = max(1, min(batch_size, LOGITS_BUDGET // (len(rows[i][0]) * vocab)))
            chunk, i = rows[i : i + size], i + size
            ids = torch.zeros((len(chunk), len(chunk[0][0])), dtype=torch.long)
            mask = torch.zeros_like(ids)
            row_at, pos_at, tok_at, owner = [], [], [], []
            for r, (seq, targets) in enumerate(chunk):
                ids[r, : len(seq)] = torch.tensor(seq)
                mask[r, : len(seq)] = 1
                for q, k, cont in targets:
                    row_at += [r] * len(cont)
                    pos_at += range(len(seq) - len(cont), len(seq))
                    tok_at += cont
                    owner += [(q, k)] * len(cont)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()
            picked = logits[row_at, pos_at]  # (scored tokens, V)
            finite = torch.isfinite(picked).all(-1)
            token_lp = torch.log_softmax(picked, dim=-1)[torch.arange(len(tok_at)), tok_at].double()
            for (q, k), lp, ok in zip(owner, token_lp.tolist(), finite.tolist()):
                out[q][k] = lp if math.isnan(out[q][k]) else out[q][k] + lp
                if not ok:
                    bad.add(q)
    return out, len(bad)
