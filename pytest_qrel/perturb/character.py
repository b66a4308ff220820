"""The nine character-level perturbations of paper 000 (§3.2, Fig. 2, App. B).

Each is a pure function ``(text, intensity, rng) -> text`` making ``intensity`` edits
(paper 000 uses 4 and 16), fewer only when the text has fewer places that perturbation
can edit; ``intensity`` 0 returns ``text`` unchanged. Positions are drawn without
replacement, so edits never undo one another. Whitespace is never edited, so the
words of the text stay where they were.
"""

from __future__ import annotations

import random
import string
from typing import Callable

from .registry import register
from .vocab import emoji, leetspeak_map

# Adjacent keys on a QWERTY keyboard (Ackerman et al., 2024, as cited by paper 000 App. B).
KEYBOARD_NEIGHBOURS: dict[str, str] = {
    "q": "wa", "w": "qeas", "e": "wrsd", "r": "etdf", "t": "ryfg", "y": "tugh", "u": "yihj",
    "i": "uojk", "o": "ipkl", "p": "ol", "a": "qwsz", "s": "weadzx", "d": "erfsxc", "f": "rtdgcv",
    "g": "tyfhvb", "h": "yugjbn", "j": "uihknm", "k": "iojlm", "l": "opk", "z": "asx", "x": "zsdc",
    "c": "xdfv", "v": "cfgb", "b": "vghn", "n": "bhjm", "m": "njk",
    "1": "2", "2": "13", "3": "24", "4": "35", "5": "46", "6": "57", "7": "68", "8": "79", "9": "80", "0": "9",
}
# App. B "Noise": punctuation or digits.
NOISE_CHARACTERS = string.punctuation + string.digits


def _positions(text: str, keep: Callable[[str], bool]) -> list[int]:
    return [i for i, char in enumerate(text) if keep(char)]


def _sample(rng: random.Random, positions: list[int], intensity: int) -> list[int]:
    return sorted(rng.sample(positions, min(intensity, len(positions))))


def _on_keyboard(char: str) -> bool:
    return char.lower() in KEYBOARD_NEIGHBOURS and char.isascii()


def _typo(char: str, rng: random.Random) -> str:
    """An adjacent key to ``char``, in ``char``'s case (App. B "maintaining case sensitivity")."""
    neighbour = rng.choice(KEYBOARD_NEIGHBOURS[char.lower()])
    return neighbour.upper() if char.isupper() else neighbour


def _insert(text: str, inserts: list[tuple[int, str]]) -> str:
    """``text`` with each ``(position, piece)`` inserted before ``text[position]``."""
    chars = list(text)
    for position, piece in sorted(inserts, key=lambda item: item[0], reverse=True):
        chars.insert(position, piece)
    return "".join(chars)


@register("char_insertion", "character")
def char_insertion(text: str, intensity: int, rng: random.Random) -> str:
    """Insert a key adjacent to a letter or digit next to it, in its case: a fat-finger typo.

    Paper 000 App. B "Insertion": "randomly inserts characters between existing
    characters" (Fig. 2: "rFrance"); the character comes from the keyboard map of
    "Replacement", so insertions read as real typos.
    """
    anchors = _sample(rng, _positions(text, _on_keyboard), intensity)
    return _insert(text, [(i + rng.randint(0, 1), _typo(text[i], rng)) for i in anchors])


@register("char_deletion", "character")
def char_deletion(text: str, intensity: int, rng: random.Random) -> str:
    """Delete ``intensity`` random non-space characters (paper 000 App. B "Deletion", character level)."""
    drop = set(_sample(rng, _positions(text, lambda c: not c.isspace()), intensity))
    return "".join(char for i, char in enumerate(text) if i not in drop)


@register("char_replacement", "character")
def char_replacement(text: str, intensity: int, rng: random.Random) -> str:
    """Replace letters/digits by an adjacent key, keeping case (paper 000 §3.2, App. B "Replacement")."""
    chars = list(text)
    for i in _sample(rng, _positions(text, _on_keyboard), intensity):
        chars[i] = _typo(chars[i], rng)
    return "".join(chars)


@register("char_swap", "character")
def char_swap(text: str, intensity: int, rng: random.Random) -> str:
    """Exchange ``intensity`` pairs of adjacent, different, non-space characters (App. B "Swapping").

    Pairs do not overlap, so every swap changes exactly two characters (Fig. 2: "teh").
    """
    candidates = [i for i in range(len(text) - 1)
                  if text[i] != text[i + 1] and not text[i].isspace() and not text[i + 1].isspace()]
    rng.shuffle(candidates)
    taken: set[int] = set()
    chars = list(text)
    swaps = 0
    for i in candidates:
        if swaps >= intensity:
            break
        if i in taken or i + 1 in taken:
            continue
        taken.update((i, i + 1))
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
        swaps += 1
    return "".join(chars)


@register("char_repetition", "character")
def char_repetition(text: str, intensity: int, rng: random.Random) -> str:
    """Duplicate ``intensity`` random non-space characters (App. B "Repetition"; Fig. 2: "Whatt")."""
    doubled = set(_sample(rng, _positions(text, lambda c: not c.isspace()), intensity))
    return "".join(char * 2 if i in doubled else char for i, char in enumerate(text))


@register("leetspeak", "character")
def leetspeak(text: str, intensity: int, rng: random.Random) -> str:
    """Substitute characters by look-alike numerals or symbols from the leetspeak map.

    Paper 000 §3.2 and App. B "Leetspeak"; the map holds Table 4 and more ('a' -> '@').
    """
    table = leetspeak_map()
    chars = list(text)
    for i in _sample(rng, _positions(text, lambda c: c in table), intensity):
        chars[i] = rng.choice(table[chars[i]])
    return "".join(chars)


@register("char_noise", "character")
def char_noise(text: str, intensity: int, rng: random.Random) -> str:
    """Insert ``intensity`` punctuation marks or digits at random places (App. B "Noise")."""
    if not text.strip():
        return text
    return _insert(text, [(rng.randint(0, len(text)), rng.choice(NOISE_CHARACTERS)) for _ in range(intensity)])


def _toggles(char: str) -> bool:
    flipped = char.swapcase()
    return char.isalpha() and flipped != char and len(flipped) == 1 and flipped.swapcase() == char


@register("case_change", "character")
def case_change(text: str, intensity: int, rng: random.Random) -> str:
    """Toggle the case of ``intensity`` letters, leaving other characters (App. B "Case Change")."""
    chars = list(text)
    for i in _sample(rng, _positions(text, _toggles), intensity):
        chars[i] = chars[i].swapcase()
    return "".join(chars)


@register("emoji", "character")
def emoji_insertion(text: str, intensity: int, rng: random.Random) -> str:
    """Insert ``intensity`` emoji, each after a random word and a space (paper 000 §3.2, App. B "Emoji").

    The paper distributes emoji "across words"; Fig. 2 shows "France? 😊".
    """
    word_ends = [i + 1 for i, char in enumerate(text) if not char.isspace() and (i + 1 == len(text) or text[i + 1].isspace())]
    if not word_ends:
        return text
    choices = emoji()
    return _insert(text, [(rng.choice(word_ends), " " + rng.choice(choices)) for _ in range(intensity)])
