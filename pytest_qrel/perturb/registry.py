"""The perturbation registry: name -> pure function ``(text, intensity, rng) -> text``.

STYLE.md rule 4: registering a name twice raises, and a lookup miss raises
``ValueError`` listing the valid names; the registry never returns None.
"""

from __future__ import annotations

import random
from typing import Callable, Literal

Perturbation = Callable[[str, int, random.Random], str]
Level = Literal["character", "word"]

PERTURBATIONS: dict[str, Perturbation] = {}
LEVELS: dict[str, Level] = {}


def register(name: str, level: Level) -> Callable[[Perturbation], Perturbation]:
    """Decorator adding ``fn`` to ``PERTURBATIONS`` under ``name``; a second ``name`` raises."""
    if level not in ("character", "word"):
        raise ValueError(f"Expected `level` in ['character', 'word'], but got {level!r}")

    def add(fn: Perturbation) -> Perturbation:
        if name in PERTURBATIONS:
            raise ValueError(f"Expected a new perturbation name, but {name!r} is already registered")
        PERTURBATIONS[name] = fn
        LEVELS[name] = level
        return fn

    return add


def get_perturbation(name: str) -> Perturbation:
    try:
        return PERTURBATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Expected a perturbation in {sorted(PERTURBATIONS)}, but got {name!r}") from None
