"""What every measure is: a property, its gated metric, and its value for a variant."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..config import QrelConfig
    from ..store import ModelStore
    from ..variants import Variant


@dataclass(frozen=True)
class Measurement:
    """One measured value of a variant, with the base's value it is compared with.

    ``problem`` explains a value that cannot pass (e.g. NaN logits: how many tokens).
    ``significant`` is None for a gate without a statistical test; False lets a value past
    its threshold pass, as noise (after the run's multiple-comparison correction).
    ``unchecked`` says why the value could not be gated at all (e.g. too few points for a
    fitted law): the test is then reported as not checked (skipped), never as passed."""

    value: float
    base_value: float | None = None
    problem: str | None = None
    detail: dict = field(default_factory=dict)
    significant: bool | None = None
    unchecked: str | None = None


class Measure(ABC):
    """A reliability property measured on a variant against its full-precision base.

    Base outputs are computed once per model and kept in the store's per-model scratch
    space (released when the worker moves to another model)."""

    property: ClassVar[str]  # one of results.json's properties: kl, calibration, ...
    metric: ClassVar[str]  # the gated metric, e.g. kl_to_base
    higher_is_better: ClassVar[bool] = False

    def __init__(self, config: QrelConfig, store: ModelStore) -> None:
        self.config = config
        self.store = store

    @abstractmethod
    def threshold(self, variant: Variant) -> float: ...

    @abstractmethod
    def measure(self, variant: Variant) -> Measurement: ...

    def gates(self, variant: Variant, task: str | None = None, **params: str) -> list[tuple[str, Measurement, float]]:
        """(metric, measurement, threshold) of every metric the property gates on ``variant``
        (on ``task``, for the per-task properties); one metric unless a measure says more."""
        if task is not None or params:
            raise TypeError(f"Expected no task or parameters for property {self.property!r}, but got {task!r} {params}")
        return [(self.metric, self.measure(variant), self.threshold(variant))]

    def plan(self, planned: set[tuple[Variant, str | None, str]]) -> None:
        """Learn the run's (variant, task, property) tests once collection is done."""
