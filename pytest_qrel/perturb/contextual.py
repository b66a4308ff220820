"""Contextual word insertion (paper 000 App. B: "contextually relevant words using RoBERTa
masked language model"): a masked LM the user names proposes the word inserted at each
position; without one, ``word_insertion`` draws from the shipped list of light words."""

from __future__ import annotations

import random
from pathlib import Path

from .registry import Perturbation
from .vocab import filler_word_list
from .word import word_spans, word_tokens

TOP_K = 10  # the inserted word is drawn among the masked LM's most likely whole words


def load_masked_lm(path: str | Path):  # returns (model, tokenizer)
    """A local masked LM in safetensors, loaded without running code from it; ValueError
    naming the path when it is not one."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"Expected a local masked-LM directory at {path}, but it does not exist")
    try:
        model = AutoModelForMaskedLM.from_pretrained(path, trust_remote_code=False, use_safetensors=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"Expected a masked LM with safetensors weights at {path}, but loading failed: {exc}") from None
    if tokenizer.mask_token is None:
        raise ValueError(f"Expected a masked LM at {path}, but its tokenizer has no mask token")
    return model, tokenizer


def masked_lm_insertion(model, tokenizer, top_k: int = TOP_K) -> Perturbation:
    """A ``word_insertion`` whose words come from ``model``: at each of ``min(intensity,
    #words)`` positions drawn by ``rng`` a mask is put before a word, and the inserted word
    is drawn by ``rng`` among the ``top_k`` most likely predictions there that are whole
    alphabetic words (the shipped list's words if none is). Deterministic for a given rng."""
    import torch

    def fill(masked: str) -> list[str]:
        enc = tokenizer(masked, return_tensors="pt", truncation=True)
        at = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()
        if not len(at):  # truncated away
            return []
        with torch.no_grad():
            logits = model(**enc).logits[0, int(at[0])]
        special = set(tokenizer.all_special_ids)
        ranked = [i for i in torch.argsort(logits, descending=True).tolist() if i not in special]
        out = []
        for i in ranked[: 4 * top_k]:
            word = tokenizer.decode([i]).strip()
            if word.isalpha() and word not in out:
                out.append(word)
            if len(out) == top_k:
                break
        return out

    def word_insertion(text: str, intensity: int, rng: random.Random) -> str:
        tokens = word_tokens(text)
        words = word_spans(tokens)
        for _ in range(min(intensity, len(words))):
            i = rng.choice(words)
            masked = "".join(tokens[:i]) + tokenizer.mask_token + " " + "".join(tokens[i:])
            candidates = fill(masked) or filler_word_list()
            tokens[i] = rng.choice(candidates) + " " + tokens[i]
        return "".join(tokens)

    return word_insertion
