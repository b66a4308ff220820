"""Mixed precision (paper 004): quantize a fraction of the linear layers, keep the rest.

The quantization ratio ``Q_r = |W_l|_0 / (|W_h|_0 + |W_l|_0)`` (paper 004 §3, eq. 1) is the
share of linear-layer weights held at low precision. Which components go low is decided at
a granularity -- ``layer`` (whole transformer blocks) or ``matmul`` (single linear layers,
paper 004 §4.1) -- either by the random search of paper 004 §4.1 (``trials`` random
allocations, the one with the lowest calibration loss wins) or by a sensitivity score
(each component quantized alone; the least sensitive go low first).
"""

from __future__ import annotations

import random
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator, Literal, Sequence

if TYPE_CHECKING:
    import torch

Granularity = Literal["layer", "matmul"]
Selection = Literal["random", "sensitivity"]
GRANULARITIES: tuple[str, ...] = ("layer", "matmul")
SELECTIONS: tuple[str, ...] = ("random", "sensitivity")

_BLOCK = re.compile(r"^(.*?\.\d+)\.")


def components(layer_names: Sequence[str], granularity: Granularity) -> list[list[str]]:
    """The units precision is allocated to: single linear layers, or the linear layers of
    one transformer block (the first numbered module on their path, e.g. model.layers.3)."""
    if granularity == "matmul":
        return [[name] for name in layer_names]
    blocks: dict[str, list[str]] = {}
    for name in layer_names:
        match = _BLOCK.match(name)
        blocks.setdefault(match.group(1) if match else name, []).append(name)
    return list(blocks.values())


def allocate(sizes: Sequence[int], ratio: float, order: Sequence[int]) -> list[int]:
    """Take components in ``order`` while that brings the low-precision share closer to ``ratio``."""
    total = sum(sizes)
    chosen: list[int] = []
    low = 0
    for i in order:
        if abs((low + sizes[i]) / total - ratio) > abs(low / total - ratio):
            continue
        chosen.append(i)
        low += sizes[i]
    return sorted(chosen)


@contextmanager
def swapped(model: torch.nn.Module, replacements: dict[str, torch.nn.Module]) -> Iterator[torch.nn.Module]:
    """``model`` with some submodules replaced for the duration of the block, then restored."""
    originals = {}
    try:
        for name, module in replacements.items():
            parent_name, _, leaf = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            originals[name] = getattr(parent, leaf)
            setattr(parent, leaf, module)
        yield model
    finally:
        for name, module in originals.items():
            parent_name, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent_name), leaf, module)


def select_layers(
    base_model: torch.nn.Module,
    quantized_model: torch.nn.Module,
    layer_names: Sequence[str],
    ratio: float,
    granularity: Granularity,
    selection: Selection,
    trials: int,
    seed: int,
    loss: Callable[[torch.nn.Module], float],
) -> list[str]:
    """The linear layers to quantize for a quantization ratio ``ratio``.

    ``quantized_model`` is the base with every layer quantized: candidate allocations are
    evaluated by swapping its layers into ``base_model`` (restored afterwards), so the search
    quantizes once, whatever the number of trials.
    """
    if not 0 < ratio <= 1:
        raise ValueError(f"Expected a quantization ratio in (0, 1], but got {ratio}")
    units = components(layer_names, granularity)
    if ratio == 1:
        return [n for unit in units for n in unit]
    sizes = [sum(base_model.get_submodule(n).weight.numel() for n in unit) for unit in units]
    quantized = {n: quantized_model.get_submodule(n) for unit in units for n in unit}

    def loss_of(chosen: Sequence[int]) -> float:
        with swapped(base_model, {n: quantized[n] for i in chosen for n in units[i]}) as mixed:
            return loss(mixed)

    if selection == "sensitivity":
        increase = [loss_of([i]) for i in range(len(units))]
        chosen = allocate(sizes, ratio, sorted(range(len(units)), key=lambda i: increase[i]))
    elif selection == "random":
        rng = random.Random(seed)
        best: tuple[float, list[int]] | None = None
        for _ in range(max(1, trials)):
            candidate = allocate(sizes, ratio, rng.sample(range(len(units)), len(units)))
            value = loss_of(candidate)
            if best is None or value < best[0]:
                best = (value, candidate)
        assert best is not None  # at least one trial
        chosen = best[1]
    else:
        raise ValueError(f"Expected a selection in {SELECTIONS}, but got {selection!r}")
    return [n for i in chosen for n in units[i]]
