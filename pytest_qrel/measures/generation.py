"""Generative QA reliability (paper 000 §3.1, A.2): sampled answers scored by normalized
match, their sequence entropy, and the reference answer's token log-likelihood and Brier
score; per prompt set, accuracy and how well the uncertainty ranks right above wrong."""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..engine import encode_pairs, encoded, unknown_share
from ..metrics import auprc, auroc
from ..sampling import sample_answers, token_scores

if TYPE_CHECKING:
    import torch

    from ..schema import QASummary

# An answer ends at the first of these (lm-eval's TriviaQA task: `until: ["\n", ".", ","]`).
STOP_STRINGS: tuple[str, ...] = ("\n", ".", ",")


@dataclass(frozen=True)
class GenerationSettings:
    """Paper 000 A.2: multinomial sampling at temperature 0.7, at most 20 new tokens, several
    samples per prompt (the paper averages over them, §3.1)."""

    samples: int = 4
    temperature: float = 0.7
    max_new_tokens: int = 20


_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles (a, an, the), single spaces: the SQuAD v1.1
    normalization that lm-eval's and TriviaQA's exact match use.

    >>> normalize_answer("  The  Montreal, ")
    'montreal'
    """
    text = text.lower().translate(_NO_PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answer_text(generated: str, stops: Sequence[str] = STOP_STRINGS) -> str:
    """The answer part of a generation: everything before the first stop string."""
    cut = min((i for i in (generated.find(s) for s in stops) if i >= 0), default=len(generated))
    return generated[:cut]


def is_correct(generated: str, references: Sequence[str]) -> bool:
    """The generated answer, normalized, equals one of the normalized references."""
    answer = normalize_answer(answer_text(generated))
    return bool(answer) and any(answer == normalize_answer(r) for r in references)


def prompt_seed(seed: int, perturbation: str, intensity: int, prompt: str) -> int:
    """The sampling seed of one prompt under one (perturbation, intensity): from a SHA-256,
    so it does not depend on the process, the order of prompts or the model sampled."""
    key = json.dumps([seed, perturbation, intensity, prompt], ensure_ascii=True).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class QAScores:
    """One model on one prompt set: per (prompt, sample) ``correct`` and sequence ``entropy``
    (eq. 2 over eq. 3); per prompt the reference answer's mean token log-likelihood
    (eq. 4) and mean token Brier score (eq. 5); ``answers`` the first sample's answer text."""

    correct: np.ndarray  # (n, samples) bool
    entropy: np.ndarray  # (n, samples)
    ref_loglik: np.ndarray  # (n,)
    ref_brier: np.ndarray  # (n,)
    answers: tuple[str, ...]
    finite: np.ndarray | None = None  # (n,) False where a prompt's logits were NaN or infinite

    @property
    def nonfinite(self) -> int:
        return 0 if self.finite is None else int((~self.finite).sum())

    def arrays(self) -> dict[str, np.ndarray]:
        """What the cache keeps (``from_arrays`` reads it back, bit for bit; answers as a
        unicode array, never pickled)."""
        out = {"correct": self.correct, "entropy": self.entropy, "ref_loglik": self.ref_loglik,
               "ref_brier": self.ref_brier, "answers": np.array(self.answers, dtype=str)}
        return out if self.finite is None else {**out, "finite": self.finite}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> QAScores:
        return cls(a["correct"], a["entropy"], a["ref_loglik"], a["ref_brier"], tuple(str(x) for x in a["answers"]),
                   a.get("finite"))

    @property
    def per_prompt_accuracy(self) -> np.ndarray:
        return self.correct.mean(axis=1)

    def summary(self) -> QASummary:
        """Accuracy, mean uncertainty, and AUROC / AUPRC of -entropy and of the reference
        log-likelihood as scores of correctness, pooled over every sampled answer (paper 000
        "AUCROC (Entropy)", Tables 4-6); None where all answers are right or all wrong."""
        n, s = self.correct.shape
        return {
            "accuracy": float(self.correct.mean()),
            "entropy": float(self.entropy.mean()),
            "ref_loglik": float(self.ref_loglik.mean()),
            "ref_brier": float(self.ref_brier.mean()),
            "auroc_entropy": ranking("auroc", -self.entropy, self.correct),
            "auprc_entropy": ranking("auprc", -self.entropy, self.correct),
            "auroc_loglik": ranking("auroc", np.repeat(self.ref_loglik[:, None], s, 1), self.correct),
            "auprc_loglik": ranking("auprc", np.repeat(self.ref_loglik[:, None], s, 1), self.correct),
            "answers": n * s,
        }


def ranking(kind: str, scores: np.ndarray, correct: np.ndarray) -> float | None:
    """AUROC or AUPRC of ``scores`` for ``correct`` over all answers; None with one class."""

    y = np.asarray(correct).ravel()
    if y.all() or not y.any():
        return None
    return (auroc if kind == "auroc" else auprc)(np.asarray(scores, dtype=float).ravel(), y)


def reference_scores(model: torch.nn.Module, tokenizer, prompts: Sequence[str], references: Sequence[str],
                     rows: int = 256) -> tuple[np.ndarray, np.ndarray, int]:
    """Per prompt, the mean over the reference answer's tokens of log P(y*_t | y*_<t, x)
    (eq. 4) and of the token Brier score sum_k (P(y_k) - 1[y_k = y*_t])^2 (eq. 5), teacher
    forced on ``prompt + " " + reference`` split as lm-eval splits context and continuation;
    and how many prompts had NaN or infinite logits there."""
    import torch


    pairs = encode_pairs(tokenizer, [(p, " " + r) for p, r in zip(prompts, references)])
    loglik, brier = np.full(len(pairs), np.nan), np.full(len(pairs), np.nan)
    bad = 0
    device = next(model.parameters()).device
    # longest first, so a pass pads its rows to about their own length; logits only where a
    # reference token is scored (with full logits, zoo-xxl's 1,600 robustness prompts took as
    # long as their sampling, and a 128k vocabulary would hold rows x width x 128k floats)
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]), reverse=True)
    for start in range(0, len(order), rows):
        chunk = order[start : start + rows]
        seqs = [(pairs[i][0] + pairs[i][1])[:-1] for i in chunk]
        conts = [pairs[i][1] for i in chunk]
        width = max(map(len, seqs))
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, seq in enumerate(seqs):
            ids[r, : len(seq)], mask[r, : len(seq)] = torch.tensor(seq), 1
        at = [range(len(seq) - len(cont), len(seq)) for seq, cont in zip(seqs, conts)]
        keep = sorted({t for positions in at for t in positions})
        column = {t: k for k, t in enumerate(keep)}
        with torch.no_grad():  # not inference_mode: see engine.next_token_logprobs
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           logits_to_keep=torch.tensor(keep, device=device)).logits
        row_at = [r for r, positions in enumerate(at) for _ in positions]
        token_ll, token_brier, finite = token_scores(logits[row_at, [column[t] for positions in at for t in positions]],
                                                     torch.tensor([t for cont in conts for t in cont]))
        first = 0
        for i, cont in zip(chunk, conts):
            own = slice(first, first + len(cont))
            first += len(cont)
            if not finite[own].all():
                bad += 1
                continue
            loglik[i], brier[i] = float(token_ll[own].mean()), float(token_brier[own].mean())
    return loglik, brier, bad


def score_qa(model: torch.nn.Module, tokenizer, prompts: Sequence[str], answers: Sequence[Sequence[str]],
             seeds: Sequence[int], settings: GenerationSettings) -> QAScores:
    """Sample ``settings.samples`` answers per prompt and score them against ``answers``."""

    asked = tuple(prompts)
    ids = encoded(tokenizer, "prompts", asked, lambda: tokenizer(list(asked))["input_ids"])
    check_context(model, prompts, ids, settings.max_new_tokens)
    references = [a[0] for a in answers]
    # one-token references after the prompt's own tokens (the zoo's: " paris") are scored from
    # the sampling prefill; otherwise teacher-forced in a pass of their own
    pairs = encode_pairs(tokenizer, [(p, " " + r) for p, r in zip(asked, references)])
    one_token = all(len(cont) == 1 and list(ctx) == list(i) for (ctx, cont), i in zip(pairs, ids))
    drawn = sample_answers(model, ids, seeds, settings.samples, settings.temperature, settings.max_new_tokens,
                           stop_token_ids(tokenizer), first_targets=[cont[0] for _, cont in pairs] if one_token else None)
    n, s, _ = drawn.tokens.shape
    texts = tokenizer.batch_decode([[t for t in row if t >= 0] for row in drawn.tokens.reshape(n * s, -1)],
                                   skip_special_tokens=True)
    correct = np.array([is_correct(t, answers[k // s]) for k, t in enumerate(texts)]).reshape(n, s)
    entropy = np.nanmean(drawn.entropy, axis=2)  # eq. 2: over the answer's tokens, its end included
    if one_token:
        loglik, brier = drawn.first_logprob, drawn.first_brier
        assert loglik is not None and brier is not None  # sampled with first_targets: scored
    else:
        loglik, brier, _ = reference_scores(model, tokenizer, prompts, references)
    answers_first = tuple(answer_text(texts[k * s]).strip() for k in range(n))
    finite = np.isfinite(loglik)
    finite[list(drawn.nonfinite)] = False
    return QAScores(correct, entropy, loglik, brier, answers_first, finite)


def check_context(model: torch.nn.Module, prompts: Sequence[str], ids: Sequence[Sequence[int]], new_tokens: int) -> None:
    """A prompt whose tokens and answer do not fit the model's context is an error naming the
    longest one (positions past the context are not what the model was trained on)."""
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if not context:
        return
    longest = max(range(len(ids)), key=lambda i: len(ids[i]), default=None)
    if longest is not None and len(ids[longest]) + new_tokens > context:
        raise ValueError(f"the longest prompt has {len(ids[longest])} tokens, and with {new_tokens} answer tokens "
                         f"it does not fit the model's context of {context}: {prompts[longest][:80]!r}")


def stop_token_ids(tokenizer) -> frozenset[int]:
    """The end-of-sequence token and every token whose text holds a stop string; kept per
    tokenizer and its vocabulary size (``engine.encoded``: decoding a vocabulary token by token
    took the fuzzing test a tenth of its time when it was done for every batch)."""
    return encoded(tokenizer, "stop_tokens", (len(tokenizer),), lambda: _stop_token_ids(tokenizer))


def _stop_token_ids(tokenizer) -> frozenset[int]:
    ids = list(tokenizer.get_vocab().values())
    texts = tokenizer.batch_decode([[i] for i in ids])
    stops = {i for i, t in zip(ids, texts) if any(s in t for s in STOP_STRINGS)}
    if tokenizer.eos_token_id is not None:
        stops.add(int(tokenizer.eos_token_id))
    return frozenset(stops)


def unknown_word_share(tokenizer, clean: Sequence[str], perturbed: Sequence[str]) -> tuple[int, int]:
    """(perturbed words, of them unknown to the tokenizer): the words of each perturbed prompt
    that are not words of its clean prompt, and how many encode to the unknown token. A
    word-level tokenizer turns a misspelled word into the unknown token, a byte-level one (the
    zoo's BPE) never does: this tells tokenizer damage from fragility."""
    new = []
    for c, p in zip(clean, perturbed):
        words = set(c.split())
        new += [w for w in p.split() if w not in words]
    unk = tokenizer.unk_token_id
    if not new or unk is None:
        return len(new), 0
    encoded = tokenizer(new, add_special_tokens=False)["input_ids"]
    return len(new), sum(unk in ids for ids in encoded)


def qa_unknown_share(tokenizer, prompts: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """Of the QA set's tokens (each prompt and its first reference answer, encoded as ``score_qa``
    encodes them), the share that are ``tokenizer``'s unknown token (engine.unknown_share)."""
    pairs = encode_pairs(tokenizer, [(p, " " + a[0]) for p, a in zip(prompts, answers)])
    return unknown_share(tokenizer, (ctx + cont for ctx, cont in pairs))
