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

    ``problem`` explains a value that cannot pass (e.g. NaN logits: how many tokens);
    ``threshold`` and ``metric``, when set, replace the measure's own (a bound that
    depends on the other variants, e.g. a fitted law's band); ``unchecked`` says why the
    value could not be gated at all (e.g. too few points for a fit): the test is skipped."""

    value: float
    base_value: float | None = None
    problem: str | None = None
    detail: dict = field(default_factory=dict)
    threshold: float | None = None
    metric: str | None = None
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
    def measure(self, variant: Variant, **params: str) -> Measurement: ...
