"""The shipped word lists (``data/``), read once on first use: no network, no model.

Each list stands in for a resource of paper 000 App. B: 512 filler words (the paper
uses 508), the leetspeak map (Table 4 and more: 93 one-character substitutions, as in the paper),
115 emoji (as in the paper), an internet-slang dictionary, and a bilingual dictionary
into six languages (the paper calls Google Translate instead).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Mapping


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("data").joinpath(name).read_text(encoding="utf-8")


def _lines(name: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in _read(name).splitlines() if line.strip() and not line.startswith("#"))


@lru_cache(maxsize=None)
def filler_words() -> frozenset[str]:
    """Semantically light lowercase words (articles, prepositions, conjunctions, hedges)."""
    return frozenset(_lines("filler_words.txt"))


@lru_cache(maxsize=None)
def filler_word_list() -> tuple[str, ...]:
    """``filler_words()`` in a fixed order, so a seeded choice is reproducible."""
    return tuple(sorted(filler_words()))


@lru_cache(maxsize=None)
def emoji() -> tuple[str, ...]:
    return _lines("emoji.txt")


@lru_cache(maxsize=None)
def leetspeak_map() -> Mapping[str, tuple[str, ...]]:
    """Character -> its leetspeak substitutes (paper 000 Table 4 first)."""
    raw = json.loads(_read("leetspeak.json"))
    return MappingProxyType({char: tuple(subs) for char, subs in raw.items()})


@lru_cache(maxsize=None)
def slang_terms() -> Mapping[str, str]:
    """Slang term -> its meaning."""
    return MappingProxyType(json.loads(_read("slang.json")))


@lru_cache(maxsize=None)
def translation_languages() -> Mapping[str, str]:
    """Language code -> language name (the six of paper 000 §3.2)."""
    return MappingProxyType(json.loads(_read("translations.json"))["languages"])


@lru_cache(maxsize=None)
def translations() -> Mapping[str, Mapping[str, str]]:
    """Lowercase English word -> {language code: translation}."""
    words = json.loads(_read("translations.json"))["words"]
    return MappingProxyType({en: MappingProxyType(tr) for en, tr in words.items()})
