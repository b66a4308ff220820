"""Hypothesis strategies for perturbation fuzzing in users' own property tests.

This module imports hypothesis; the plugin never imports it, so ``pytest`` start-up
does not pay for hypothesis. Example::

    from hypothesis import given
    from pytest_qrel.strategies import perturbed_prompts

    @given(perturbed_prompts(["question : where does yusuf price live ? answer :"]))
    def test_answer_survives(example):
        assert example.perturbed.endswith("answer :")
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from .perturb import (
    DEFAULT_ANSWER_MARKERS,
    DEFAULT_PROTECTED,
    PERTURBATIONS,
    get_perturbation,
    perturb_prompt,
)

__all__ = ["PerturbedPrompt", "perturbation_chains", "perturbed_prompts"]


class PerturbedPrompt(NamedTuple):
    """A prompt, its perturbed form, and the (perturbation, intensity, seed) that made it."""

    prompt: str
    perturbed: str
    perturbation: str
    intensity: int
    seed: int


def _names(perturbations: Sequence[str] | None) -> list[str]:
    if perturbations is None:
        return sorted(PERTURBATIONS)
    if isinstance(perturbations, str) or not perturbations:
        raise ValueError(f"Expected `perturbations` to be a non-empty sequence of names, but got {perturbations!r}")
    for name in perturbations:
        get_perturbation(name)
    return list(perturbations)


def _intensity(max_intensity: int) -> SearchStrategy[int]:
    if not isinstance(max_intensity, int) or isinstance(max_intensity, bool) or max_intensity < 0:
        raise ValueError(f"Expected `max_intensity` to be a non-negative integer, but got {max_intensity!r}")
    return st.integers(0, max_intensity)


def perturbed_prompts(
    prompts: Sequence[str] | SearchStrategy[str],
    perturbations: Sequence[str] | None = None,
    max_intensity: int = 16,
    protected: Sequence[str] = DEFAULT_PROTECTED,
    answer_markers: Sequence[str] = DEFAULT_ANSWER_MARKERS,
) -> SearchStrategy[PerturbedPrompt]:
    """``PerturbedPrompt``s of ``prompts`` (a sequence or a strategy of strings) under one
    of ``perturbations`` (all 15 by default) at intensity 0..``max_intensity``, made by
    ``perturb_prompt``: markers and reference answers are kept."""
    names = _names(perturbations)
    if isinstance(prompts, SearchStrategy):
        prompt_strategy = prompts
    else:
        if isinstance(prompts, str) or not prompts:
            raise ValueError(f"Expected `prompts` to be a non-empty sequence of str or a strategy, but got {prompts!r}")
        prompt_strategy = st.sampled_from(list(prompts))

    def build(prompt: str, name: str, intensity: int, seed: int) -> PerturbedPrompt:
        return PerturbedPrompt(prompt, perturb_prompt(prompt, name, intensity, seed, protected, answer_markers),
                               name, intensity, seed)

    return st.builds(build, prompt_strategy, st.sampled_from(names), _intensity(max_intensity), st.integers(0, 2**32 - 1))


def perturbation_chains(
    perturbations: Sequence[str] | None = None,
    max_intensity: int = 16,
    min_size: int = 1,
    max_size: int = 3,
) -> SearchStrategy[tuple[tuple[str, int], ...]]:
    """Chains of ``(perturbation, intensity)`` steps, for ``pytest_qrel.perturb.perturb_chain``."""
    names = _names(perturbations)
    if not isinstance(min_size, int) or not isinstance(max_size, int) or not 0 <= min_size <= max_size:
        raise ValueError(f"Expected 0 <= `min_size` <= `max_size`, but got {min_size!r} and {max_size!r}")
    step = st.tuples(st.sampled_from(names), _intensity(max_intensity))
    return st.lists(step, min_size=min_size, max_size=max_size).map(tuple)
