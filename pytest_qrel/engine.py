"""Batched forward passes: next-token log-probabilities of a model over texts."""

from __future__ import annotations

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
