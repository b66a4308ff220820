"""Streamed scored rows for KL to base at real scale (issue 16): windows of a long text and
the next-token log-probs of each scored position, a block of rows at a time, so no copy of a
whole (batch, tokens, vocab) tensor is kept."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Literal, Sequence

from .engine import TokenBatch

if TYPE_CHECKING:
    import torch

# What this module computes (windows of a text, scored rows' log-probs), at this version: part of
# the key of every stored output (measures/outputs.py) and of the KL base outputs. A change of what
# it computes must bump it; a refactor must not (tests/e2e/test_measure_versions.py).
VERSION = 1

# logits log-softmaxed at once: (64, V) float32 rows at a 128k vocabulary (32 MB); on a small
# vocabulary a block takes many more rows, so its fixed cost is paid once per batch, not per sentence
ROW_BLOCK_LOGITS = 4 * 128256
KL_BATCH_LOGITS = 1 << 25  # logits of one KL forward pass: 128 MB of float32
# a batch whose logits fill 32 MB gives the freed heap back to the OS after it (smaller ones
# leave no fragments worth the ~4 ms malloc_trim costs: the zoo's batches are ~1 MB)
TRIM_LOGITS = 1 << 23
# --qrel-kl-text is read a prefix at a time: first as many characters as this many per wanted
# token (English runs ~4 per token on BPE vocabularies), and tokens past the wanted ones kept
# as a margin so that a cut word is never among the tokens used
PREFIX_CHARS_PER_TOKEN = 6
PREFIX_MARGIN_TOKENS = 64


def sequences_per_batch(length: int, vocab: int) -> int:
    """How many sequences of ``length`` tokens one KL forward pass takes: as many as keep its
    logits within ``KL_BATCH_LOGITS`` (at most 32, at least one)."""
    return max(1, min(32, KL_BATCH_LOGITS // (max(length, 1) * max(vocab, 1))))


def windows(tokenizer, read: Callable[[int], tuple[str, bool]], context: int, max_tokens: int, vocab: int) -> list[TokenBatch]:
    """The text that ``read(chars)`` gives the first ``chars`` characters of (and whether they
    are all of it: ``KLText.read``), tokenized as one stream and cut into windows of ``context`` tokens, each scoring its second half (the first
    half is context), as llama.cpp's perplexity tool does (its first token replaced by BOS
    where the tokenizer has one); as many whole windows as the text holds, at most enough for
    ``max_tokens`` scored tokens (at least one window). Only a prefix of the text is read and
    tokenized: a few windows of a file of megabytes cost as much as the windows (issue 34).
    Batches of whole windows, as many per pass as ``KL_BATCH_LOGITS`` allows."""
    import torch

    if context < 4:
        raise ValueError(f"Expected a context of at least 4 tokens, but got {context}")
    scored = context - context // 2
    count = max(1, max_tokens // scored)
    ids = _prefix_ids(tokenizer, read, count * context)
    if len(ids) < context:
        raise ValueError(f"Expected a text of at least one window of {context} tokens, but it has {len(ids)} tokens")
    count = min(len(ids) // context, count)
    rows = [ids[i * context : (i + 1) * context] for i in range(count)]
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None:
        for row in rows:
            row[0] = bos
    per_batch = sequences_per_batch(context, vocab)
    out = []
    for i in range(0, count, per_batch):
        t = torch.tensor(rows[i : i + per_batch], dtype=torch.long)
        out.append(TokenBatch(t, torch.ones_like(t), score_from=context // 2 - 1))
    return out


def _prefix_ids(tokenizer, read: Callable[[int], tuple[str, bool]], want: int) -> list[int]:
    """The first ``want`` tokens of the text (all of them if it has fewer), from a prefix of it:
    a guess of characters per token, grown until the prefix holds ``want`` tokens and a margin.
    The prefix ends before its last white space and the margin's tokens are dropped, so a word
    cut at the prefix's end is never among the tokens kept: they are the whole text's wherever
    the tokenizer splits words at white space (a tokenizer's own merges across it aside)."""
    chars = PREFIX_CHARS_PER_TOKEN * (want + PREFIX_MARGIN_TOKENS)
    while True:
        text, whole = read(chars)  # said by the reader: a JSONL text's length cannot tell it
        if not whole:
            cut = max(text.rfind(" "), text.rfind("\n"))
            text = text[:cut] if cut > len(text) // 2 else text
        ids = list(tokenizer(text)["input_ids"])
        if whole or len(ids) >= want + PREFIX_MARGIN_TOKENS:
            return ids if whole else ids[:want]
        # the text's characters per token so far, with room, decide the next prefix
        chars = max(2 * chars, int(chars * 1.5 * (want + PREFIX_MARGIN_TOKENS) / max(len(ids), 1)))


def rows_per_block(vocab: int) -> int:
    """Scored positions log-softmaxed at once: ``ROW_BLOCK_LOGITS`` logits (at least one row)."""
    return max(1, ROW_BLOCK_LOGITS // max(vocab, 1))


@dataclass(frozen=True)
class RowBlock:
    """Consecutive scored positions, in row-major order over the batches' sequences: their
    next-token log-probs (n, V) float32, the sequence each row belongs to, the reference
    (next) tokens, and which rows had finite logits."""

    sequence: torch.Tensor  # (n,) long: index of each row's sequence in the batches' order
    logp: torch.Tensor
    ref: torch.Tensor  # (n,) long
    finite: torch.Tensor  # (n,) bool


def scored_rows(model: torch.nn.Module, batches: Sequence[TokenBatch], check_finite: bool = True) -> Iterator[RowBlock]:
    """Every scored position of ``batches`` (``score_mask``), in row-major order, as blocks of at
    most ``rows_per_block`` positions (spanning sequences of one forward pass): log-softmax in
    float32 one block at a time, so no copy of a whole (batch, tokens, vocab) tensor is made
    beside the logits. Only the scored positions' logits are computed where the model allows
    it (``logits_to_keep``). On CUDA out of memory a batch is halved and retried; the rows and
    their order do not change. NaN or infinite logits at a scored position are an error unless
    ``check_finite`` is off (the caller counts them from ``finite``)."""
    import torch

    device = next(model.parameters()).device
    keep_arg = "logits_to_keep" in inspect.signature(model.forward).parameters
    sequence = 0
    with torch.no_grad():
        for batch in batches:
            mask = batch.score_mask.bool()
            offset = batch.score_from  # logits[:, j] is position score_from + j
            for first, ids, logits in _batch_logits(model, batch, device, keep_arg):
                where = mask[first : first + ids.shape[0], offset:].nonzero()  # (n, 2) row-major
                step = rows_per_block(logits.shape[-1])
                for s in range(0, where.shape[0], step):
                    seq, pos = where[s : s + step].unbind(1)
                    raw = logits[seq.to(logits.device), pos.to(logits.device)].float()
                    finite = torch.isfinite(raw).all(-1).cpu()
                    if check_finite and not finite.all():
                        bad = sorted({sequence + first + int(i) for i in seq[~finite]})
                        raise FloatingPointError(
                            f"Expected finite logits from {type(model).__name__}, but got NaN or inf "
                            f"at {int((~finite).sum())} of {len(seq)} tokens (sequences {bad[:5]})"
                        )
                    yield RowBlock(sequence + first + seq, log_softmax_rows(raw).cpu(), ids[seq, pos + offset + 1].cpu(), finite)
                large = logits.numel() >= TRIM_LOGITS
                del logits
            sequence += batch.input_ids.shape[0]
            if large:
                release_freed_memory()


def log_softmax_rows(raw: torch.Tensor) -> torch.Tensor:
    """float32 log-probs of a block of float32 logits, normalised in float64: torch's float32
    ``log_softmax`` over a 128k vocabulary on CPU sums to 1 only within a few 1e-4 (measured:
    up to 2.3e-4 on a trained model with a padded vocabulary), which is past what the KL's
    bounds and references accept; the float64 log-normaliser brings it to about 1e-7. Only
    one block's float64 copy exists at a time (4 rows: 4 MB at 128k tokens)."""
    import torch

    wide = raw.double()
    return (wide - torch.logsumexp(wide, dim=-1, keepdim=True)).float()


def release_freed_memory() -> None:
    """Give the freed heap back to the OS (glibc's ``malloc_trim``; elsewhere nothing). Row
    blocks of a large vocabulary are tens of MB each: below glibc's dynamic mmap threshold
    they come from the heap, and without a trim its fragments keep the peak RSS growing with
    the number of batches (measured: 1.8 GB at 512 scored tokens, 3.0 GB at 2,048, on a
    128k vocabulary)."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Callable[[int], int] | Literal[False] | None = None


def _batch_logits(model, batch: TokenBatch, device, keep_arg: bool, first: int = 0,
                  ids=None, attn=None):
    """(index of the first sequence, input ids, logits of positions score_from .. T-2) of
    ``batch``, or of its halves when CUDA runs out of memory (recursively)."""
    import torch

    ids = batch.input_ids if ids is None else ids
    attn = batch.attention_mask if attn is None else attn
    width = ids.shape[1]
    keep = width - batch.score_from
    try:
        kwargs = {"logits_to_keep": keep} if keep_arg and batch.score_from > 0 else {}
        logits = model(input_ids=ids.to(device), attention_mask=attn.to(device), **kwargs).logits
        logits = logits[:, max(0, logits.shape[1] - keep) : -1]
    except torch.cuda.OutOfMemoryError:
        if ids.shape[0] == 1:
            raise MemoryError(f"one sequence of {width} tokens does not fit in the GPU's memory beside the model; "
                              "lower --qrel-kl-context") from None
        torch.cuda.empty_cache()
        half = ids.shape[0] // 2
        yield from _batch_logits(model, batch, device, keep_arg, first, ids[:half], attn[:half])
        yield from _batch_logits(model, batch, device, keep_arg, first + half, ids[half:], attn[half:])
        return
    yield first, ids, logits


class InStep:
    """The live base's scored rows, taken ``n`` at a time to match the variant's blocks (their
    boundaries differ where CUDA out of memory halved one model's batch and not the other's)."""

    def __init__(self, blocks: Iterator[RowBlock]) -> None:
        self.blocks, self.pending = blocks, list[RowBlock]()

    def take(self, n: int) -> RowBlock:
        import torch

        have = sum(len(b.ref) for b in self.pending)
        while have < n:
            self.pending.append(next(self.blocks))
            have += len(self.pending[-1].ref)
        parts = [torch.cat([getattr(b, f) for b in self.pending]) for f in ("sequence", "logp", "ref", "finite")]
        self.pending = [RowBlock(*(t[n:] for t in parts))] if have > n else []
        return RowBlock(*(t[:n] for t in parts))
