"""The 15 natural perturbations of paper 000 (§3.2, Fig. 2, App. B, Table 4).

Nine character-level (``char_insertion``, ``char_deletion``, ``char_replacement``,
``char_swap``, ``char_repetition``, ``leetspeak``, ``char_noise``, ``case_change``,
``emoji``) and six word-level (``word_insertion``, ``word_deletion``, ``word_swap``,
``word_repetition``, ``slang``, ``translation``), each a pure function
``(text, intensity, rng) -> text`` in ``PERTURBATIONS``. Standard library only.
"""

from __future__ import annotations

from . import character, word  # noqa: F401  (registers the perturbations)
from .apply import (
    DEFAULT_ANSWER_MARKERS,
    DEFAULT_PROTECTED,
    perturb,
    perturb_chain,
    perturb_prompt,
    perturbation_rng,
)
from .contextual import load_masked_lm, masked_lm_insertion
from .registry import LEVELS, PERTURBATIONS, Perturbation, get_perturbation, register

__all__ = [
    "DEFAULT_ANSWER_MARKERS",
    "DEFAULT_PROTECTED",
    "LEVELS",
    "PERTURBATIONS",
    "Perturbation",
    "get_perturbation",
    "load_masked_lm",
    "masked_lm_insertion",
    "perturb",
    "perturb_chain",
    "perturb_prompt",
    "perturbation_rng",
    "register",
]
