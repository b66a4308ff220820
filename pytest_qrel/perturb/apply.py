"""Applying perturbations: ``perturb`` on free text, ``perturb_prompt`` on a prompt
whose scaffolding and reference answer must survive, ``perturb_chain`` for several.

Every call draws its randomness from ``perturbation_rng(text, name, intensity, seed)``,
a ``random.Random`` seeded from a SHA-256 of its arguments (never Python's salted
``hash()``): the same example, perturbation, intensity and seed give the same text
in any order, process or xdist worker.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Sequence

from .registry import Perturbation, get_perturbation

DEFAULT_PROTECTED: tuple[str, ...] = ("question :", "answer :")
DEFAULT_ANSWER_MARKERS: tuple[str, ...] = ("answer :",)


def _check(text: object, intensity: object, seed: object) -> None:
    if not isinstance(text, str):
        raise TypeError(f"Expected `text` to be a str, but got {type(text).__name__}")
    if not isinstance(intensity, int) or isinstance(intensity, bool) or intensity < 0:
        raise ValueError(f"Expected `intensity` to be a non-negative integer, but got {intensity!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"Expected `seed` to be an integer, but got {seed!r}")


def perturbation_rng(text: str, name: str, intensity: int, seed: int) -> random.Random:
    """The generator for one (example, perturbation, intensity, seed)."""
    key = json.dumps([text, name, intensity, seed], ensure_ascii=True).encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def perturb(text: str, name: str, intensity: int, seed: int = 0, function: Perturbation | None = None) -> str:
    """``text`` with ``intensity`` edits of perturbation ``name`` (paper 000 §3.2, App. B).

    ``intensity`` counts edits (paper 000 uses 4 and 16; word perturbations make
    ``min(intensity, number of words)``); 0 returns ``text`` itself. ``function`` replaces
    the registered function of ``name`` (e.g. ``masked_lm_insertion(...)`` for
    ``word_insertion``), seeded the same way.

    >>> perturb("What is the capital of France?", "word_repetition", 0, seed=1)
    'What is the capital of France?'
    """
    function = function or get_perturbation(name)
    _check(text, intensity, seed)
    if intensity == 0:
        return text
    return function(text, intensity, perturbation_rng(text, name, intensity, seed))


def _segments(prompt: str, protected: Sequence[str], answer_markers: Sequence[str]) -> list[tuple[str, bool]]:
    """``prompt`` cut into (piece, editable): markers, and the text after an answer marker
    up to the next marker, are not editable."""
    markers = sorted({m for m in protected if m} | {m for m in answer_markers if m}, key=len, reverse=True)
    if not markers:
        return [(prompt, True)]
    pieces = re.split("(" + "|".join(map(re.escape, markers)) + ")", prompt)
    segments: list[tuple[str, bool]] = []
    editable = True
    for k, piece in enumerate(pieces):
        if k % 2:  # a marker
            segments.append((piece, False))
            editable = piece not in answer_markers
        elif piece:
            segments.append((piece, editable))
    return segments


def perturb_prompt(
    prompt: str,
    name: str,
    intensity: int,
    seed: int = 0,
    protected: Sequence[str] = DEFAULT_PROTECTED,
    answer_markers: Sequence[str] = DEFAULT_ANSWER_MARKERS,
    function: Perturbation | None = None,
) -> str:
    """``prompt`` perturbed only in its free text: the ``protected`` markers (the zoo's
    ``question :`` and ``answer :``) and the reference answer after an answer marker
    (up to the next marker) are kept verbatim, as are the spaces around each piece.

    The ``intensity`` edits are shared among the free-text pieces in proportion to
    their length (one piece, the question, takes them all in the zoo's prompts).

    >>> perturb_prompt("question : where does yusuf price live ? answer : montreal", "case_change", 0)
    'question : where does yusuf price live ? answer : montreal'
    """
    get_perturbation(name)
    _check(prompt, intensity, seed)
    for marker in (*protected, *answer_markers):
        if not isinstance(marker, str):
            raise TypeError(f"Expected markers to be str, but got {type(marker).__name__}")
    segments = _segments(prompt, protected, answer_markers)
    free = [k for k, (piece, editable) in enumerate(segments) if editable and piece.strip()]
    if intensity == 0 or not free:
        return prompt
    rng = perturbation_rng(prompt, name, intensity, seed)
    counts = dict.fromkeys(free, 0)
    for k in rng.choices(free, weights=[len(segments[k][0].strip()) for k in free], k=intensity):
        counts[k] += 1
    out = [piece for piece, _ in segments]
    for k, count in counts.items():
        piece = segments[k][0]
        core = piece.strip()
        start = piece.index(core)
        perturbed = perturb(core, name, count, rng.getrandbits(64), function)
        out[k] = piece[:start] + perturbed + piece[start + len(core):]
    return "".join(out)


def perturb_chain(
    prompt: str,
    steps: Sequence[tuple[str, int]],
    seed: int = 0,
    protected: Sequence[str] = DEFAULT_PROTECTED,
    answer_markers: Sequence[str] = DEFAULT_ANSWER_MARKERS,
) -> str:
    """``prompt`` through ``perturb_prompt`` once per ``(name, intensity)`` step, in order."""
    for name, intensity in steps:
        prompt = perturb_prompt(prompt, name, intensity, seed, protected, answer_markers)
    return prompt
