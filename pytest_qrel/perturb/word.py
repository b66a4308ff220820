"""The six word-level perturbations of paper 000 (§3.2, Fig. 2, App. B).

Each is a pure function ``(text, intensity, rng) -> text``. App. B: "the number of
perturbed words in the input prompt corresponds to the minimum between the
perturbation intensity and the length of the input prompt"; deletion and translation
are further bounded by the number of words they may touch. A word is a whitespace-
separated token with its leading and trailing punctuation kept in place (App. B
"preserving punctuation"); tokens that are all punctuation or symbols are not words.
"""

from __future__ import annotations

import random
import re
from typing import Callable

from .registry import register
from .vocab import filler_word_list, filler_words, slang_terms, translation_languages, translations

_WORD = re.compile(r"\A(\W*)(.*?)(\W*)\Z", re.S)


def word_tokens(text: str) -> list[str]:
    """``text`` as [word, space, word, ..., word]: words at even indices, possibly ''."""
    return re.split(r"(\s+)", text)


def _parts(token: str) -> tuple[str, str, str]:
    match = _WORD.match(token)
    assert match is not None  # every group may be empty: it matches any token
    prefix, core, suffix = match.groups()
    return prefix, core, suffix


def word_spans(tokens: list[str]) -> list[int]:
    """Indices of the tokens with a word core."""
    return [i for i in range(0, len(tokens), 2) if _parts(tokens[i])[1]]


def _edit_cores(text: str, rng: random.Random, intensity: int, eligible: Callable[[str], bool],
                edit: Callable[[str, str, str, random.Random], str]) -> str:
    """Apply ``edit(prefix, core, suffix, rng) -> token`` to ``min(intensity, #eligible)``
    distinct words whose core satisfies ``eligible``."""
    tokens = word_tokens(text)
    candidates = [i for i in word_spans(tokens) if eligible(_parts(tokens[i])[1])]
    for i in rng.sample(candidates, min(intensity, len(candidates))):
        tokens[i] = edit(*_parts(tokens[i]), rng)
    return "".join(tokens)


@register("word_insertion", "word")
def word_insertion(text: str, intensity: int, rng: random.Random) -> str:
    """Insert ``min(intensity, #words)`` semantically light words before random words.

    Paper 000 App. B inserts "contextually relevant words using RoBERTa masked language
    model"; here the words come from the shipped filler-word list, so the perturbation
    stays pure and offline; ``contextual.masked_lm_insertion`` asks a local masked LM
    instead (the robustness suite's --qrel-insertion-model).
    """
    tokens = word_tokens(text)
    words = word_spans(tokens)
    vocabulary = filler_word_list()
    for _ in range(min(intensity, len(words))):
        i = rng.choice(words)
        tokens[i] = rng.choice(vocabulary) + " " + tokens[i]
    return "".join(tokens)


def _delete(tokens: list[str], i: int) -> None:
    """Remove the word token at ``i`` with one neighbouring space, keeping alternation."""
    if i + 2 < len(tokens) and tokens[i + 2]:
        del tokens[i:i + 2]
    elif i >= 2 and tokens[i - 2]:
        del tokens[i - 1:i + 1]
    else:
        tokens[i] = ""


@register("word_deletion", "word")
def word_deletion(text: str, intensity: int, rng: random.Random) -> str:
    """Delete up to ``intensity`` filler words ("and", "to", "actually"), never another word.

    Paper 000 §3.2 and App. B "Deletion": only words "not crucial for preserving the
    semantics" are removed, matched case-insensitively against the filler list.
    Punctuation attached to a deleted word stays.
    """
    fillers = filler_words()
    tokens = word_tokens(text)
    candidates = [i for i in word_spans(tokens) if _parts(tokens[i])[1].lower() in fillers]
    for i in sorted(rng.sample(candidates, min(intensity, len(candidates))), reverse=True):
        prefix, _, suffix = _parts(tokens[i])
        if prefix or suffix:
            tokens[i] = prefix + suffix
        else:
            _delete(tokens, i)
    return "".join(tokens)


@register("word_swap", "word")
def word_swap(text: str, intensity: int, rng: random.Random) -> str:
    """Exchange up to ``intensity`` pairs of adjacent, different words (App. B "Swapping").

    Punctuation stays where it was ("France?" keeps its "?"); pairs do not overlap.
    """
    tokens = word_tokens(text)
    words = word_spans(tokens)
    pairs = [k for k in range(len(words) - 1) if _parts(tokens[words[k]])[1] != _parts(tokens[words[k + 1]])[1]]
    rng.shuffle(pairs)
    taken: set[int] = set()
    for k in pairs:
        if len(taken) >= 2 * min(intensity, len(words)):
            break
        if k in taken or k + 1 in taken:
            continue
        taken.update((k, k + 1))
        (p1, c1, s1), (p2, c2, s2) = _parts(tokens[words[k]]), _parts(tokens[words[k + 1]])
        tokens[words[k]], tokens[words[k + 1]] = p1 + c2 + s1, p2 + c1 + s2
    return "".join(tokens)


@register("word_repetition", "word")
def word_repetition(text: str, intensity: int, rng: random.Random) -> str:
    """Duplicate ``min(intensity, #words)`` distinct words (App. B "Repetition"; Fig. 2: "What What")."""
    return _edit_cores(text, rng, intensity, bool, lambda p, c, s, _: f"{p}{c} {c}{s}")


@register("slang", "word")
def slang(text: str, intensity: int, rng: random.Random) -> str:
    """Insert ``min(intensity, #words)`` slang terms after distinct words (App. B "Slang").

    Terms come from the shipped dictionary ("lol", "imo", "roffl"); a term goes before
    the word's trailing punctuation, as in Fig. 2's "France roffl?".
    """
    terms = sorted(slang_terms())
    return _edit_cores(text, rng, intensity, bool, lambda p, c, s, r: f"{p}{c} {r.choice(terms)}{s}")


def _translate(prefix: str, core: str, suffix: str, rng: random.Random) -> str:
    language = rng.choice(sorted(translation_languages()))
    word = translations()[core.lower()][language]
    if core[:1].isupper():
        word = word[:1].upper() + word[1:]
    return prefix + word + suffix


@register("translation", "word")
def translation(text: str, intensity: int, rng: random.Random) -> str:
    """Translate up to ``intensity`` words, each into one of six languages, not back to English.

    Paper 000 §3.2 "Translation" (six languages; App. B lists seven, with Japanese, via the
    Google Translate API). Here a shipped bilingual dictionary (Spanish, French, German,
    Italian, Russian, Chinese) replaces the API, so only its English words are translated
    and no network is used; a capitalised word stays capitalised.
    """
    dictionary = translations()
    return _edit_cores(text, rng, intensity, lambda core: core.lower() in dictionary, _translate)
