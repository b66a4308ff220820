"""Batched forward passes: next-token log-probabilities of a model over texts."""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, MutableMapping, Sequence

from . import placement, progress

if TYPE_CHECKING:
    import torch

# What this module computes (log-probs, choice log-likelihoods, encodings), at this version: part
# of the key of every stored output (measures/outputs.py). A change of what it computes must bump
# it; a refactor that computes the same numbers must not (tests/e2e/test_measure_versions.py).
VERSION = 1

@dataclass(frozen=True)
class TokenBatch:
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    # positions before it only give context (a window's first half, as llama.cpp's perplexity)
    score_from: int = 0

    @property
    def target_mask(self) -> torch.Tensor:
        """(B, T-1): position t is scored when token t+1 exists (paper 000 eq. 2 averages over them)."""
        return self.attention_mask[:, 1:] * self.attention_mask[:, :-1]

    @property
    def score_mask(self) -> torch.Tensor:
        """(B, T-1): ``target_mask`` without the context-only positions before ``score_from``."""
        mask = self.target_mask.clone()
        mask[:, : self.score_from] = 0
        return mask


def device_for_worker(per_worker: int = 1) -> torch.device:
    """The device this process evaluates on: its (first) GPU (an xdist worker sees only the
    ``per_worker`` ones ``pin_worker_gpu`` gave it; otherwise ``per_worker`` per worker, round
    robin), else CPU. With --qrel-device-map=auto a model is sharded over all it sees."""
    import torch

    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", first_gpu_index(os.environ.get("PYTEST_XDIST_WORKER", "gw0"), per_worker,
                                                torch.cuda.device_count()))


def first_gpu_index(worker: str, per_worker: int, count: int) -> int:
    """The index, among ``count`` visible GPUs, of the first one xdist worker ``worker`` owns."""
    return int(placement.worker_gpus(int(worker.removeprefix("gw") or 0), per_worker,
                                     [str(i) for i in range(count)])[0])


def visible_gpus(environ: Mapping[str, str] | None = None, device_count=None) -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries: the user's list when
    set (indices or UUIDs; empty: none), else every device the driver counts."""
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env:
        return [d.strip() for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    if device_count is None:
        try:
            import torch

            device_count = torch.cuda.device_count
        except ImportError:
            return []
    return [str(i) for i in range(device_count())]


def pin_worker_gpu(worker: int, environ: MutableMapping[str, str] | None = None, device_count=None,
                   per_worker: int = 1) -> str | None:
    """On xdist worker ``worker``: make ``per_worker`` GPUs of the user's visible ones its only
    ones (round robin: with one each, worker i takes entry i mod n of ``CUDA_VISIBLE_DEVICES``;
    placement.worker_gpus), never a device outside them, before CUDA initialises in this process.
    Returns the entries, or None (no GPU, or CUDA already initialised here: then
    ``device_for_worker`` picks by index among the visible)."""
    import sys

    env = os.environ if environ is None else environ
    gpus = visible_gpus(env, device_count)
    torch = sys.modules.get("torch")
    if not gpus or (torch is not None and torch.cuda.is_initialized()):
        return None
    env["CUDA_VISIBLE_DEVICES"] = ",".join(placement.worker_gpus(worker, per_worker, gpus))
    return env["CUDA_VISIBLE_DEVICES"]


def threads_for_worker(workers: int, environ: dict | None = None) -> int | None:
    """On an xdist worker: its share of the cores for torch (cores // workers, at least one),
    set in ``OMP_NUM_THREADS`` before torch starts its pool (and in torch, if it already has):
    torch's default of a thread per core in every worker ran 4 threads on 2 cores under -n 2
    (the zoo's robustness tests: 127 s against 77 s with one thread each). None, and nothing
    changed, when the user set ``OMP_NUM_THREADS`` themselves."""
    import sys

    env = os.environ if environ is None else environ
    if "OMP_NUM_THREADS" in env:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(1, workers))
    env["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads


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


# a tokenizer's recent encodings: every variant of a model encodes the same tasks and prompts
# with its base's tokenizer (the calibration family tokenized each task once per variant: a
# fifth of its scoring time on the zoo)
_ENCODED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ENCODED_KEEP = 16


def encoded(tokenizer, kind: str, data: tuple, compute):
    """``compute()``, kept per ``tokenizer`` under ``(kind, data)`` (its few most recently used);
    callers must not modify what it returns."""
    try:
        memo = _ENCODED.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable
        return compute()
    key = (kind, data)
    if key in memo:
        memo[key] = memo.pop(key)  # the most recently used last: what every call asks for stays
    else:
        if len(memo) >= _ENCODED_KEEP:
            memo.pop(next(iter(memo)))
        memo[key] = compute()
    return memo[key]


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """Token ids of each ``context`` and of its ``continuation``, split the way lm-eval's
    ``HFLM._encode_pair`` splits them (so the scores are comparable): trailing spaces of the
    context move to the continuation, the whole string is encoded (with the tokenizer's
    default special tokens, as ``HFLM.tok_encode``) and the context's tokens cut off.
    Kept per tokenizer (``encoded``): do not modify the lists."""
    pairs = tuple(pairs)
    return encoded(tokenizer, "pairs", pairs, lambda: _encode_pairs(tokenizer, pairs))


def unknown_share(tokenizer, sequences: Iterable[Sequence[int]]) -> float:
    """The share of the token ids in ``sequences`` that are ``tokenizer``'s unknown token (0 for
    none, or a tokenizer without one: a byte-level BPE, the zoo's, never needs it). A word-level
    vocabulary turns every word it lacks into that token: a score over them says nothing of the model."""
    unk = getattr(tokenizer, "unk_token_id", None)
    total = unknown = 0
    for ids in sequences:
        total += len(ids)
        unknown += 0 if unk is None else sum(1 for i in ids if i == unk)
    return unknown / total if total else 0.0


def _encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
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
    with torch.no_grad(), progress.step("scoring choices", len(rows), "seq", model) as bar:  # not inference_mode: see next_token_logprobs
        while i < len(rows):
            # at most batch_size rows, and about LOGITS_BUDGET logits (B x T x V floats) per pass
            size = max(1, min(batch_size, LOGITS_BUDGET // (len(rows[i][0]) * vocab)))
            chunk, i = rows[i : i + size], i + size
            ids = torch.zeros((len(chunk), len(chunk[0][0])), dtype=torch.long)
            mask = torch.zeros_like(ids)
            row_at: list[int]
            pos_at: list[int]
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
            bar.update(len(chunk))
    return out, len(bad)

