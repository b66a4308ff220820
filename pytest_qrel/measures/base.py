"""What every measure is: a catalog property (properties.py), its gated metrics, and their
values for a variant, as ``Gate`` records the session hands to results."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AbstractSet, Any, ClassVar, Mapping

from ..baseline import tolerance_for
from .outputs import Outputs

if TYPE_CHECKING:
    from ..config import QrelConfig
    from ..properties import Property
    from ..store import ModelStore
    from ..variants import Variant


# above this share of unknown tokens in a gate's data (the KL text, a task, a QA file) its gates are
# not checked: a score over what the tokenizer cannot read says nothing about the model
MAX_UNKNOWN_SHARE = 0.05


def unreadable(share: float, what: str) -> str | None:
    """Why the gates on ``what`` are not checked, with the share of its tokens that are the
    tokenizer's unknown token; None at or below ``MAX_UNKNOWN_SHARE``."""
    if share <= MAX_UNKNOWN_SHARE:
        return None
    return (f"{share:.1%} of the tokens of {what} are the tokenizer's unknown token (more than "
            f"{MAX_UNKNOWN_SHARE:.0%}): a score over them says nothing about the model; give data in its vocabulary")


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
    detail: Mapping[str, Any] = field(default_factory=dict)  # a schema.py TypedDict, or a plugin's dict
    significant: bool | None = None
    unchecked: str | None = None


@dataclass(frozen=True)
class Gate:
    """One gated metric of one test: the measurement and the threshold it is held to."""

    metric: str
    measurement: Measurement
    threshold: float


class Measure(ABC):
    """A reliability property measured on a variant against its full-precision base.

    ``key`` names the property's catalog entry (``config.catalog``), which says its gated
    metrics, their direction and default thresholds. Base outputs are computed once per
    model and kept in the measure's declared per-model state (a ``ModelState`` the store
    holds with the base: ``store.state(variant, kind)``, dropped when the worker moves to
    another model)."""

    key: ClassVar[str]  # the catalog key: what a suite asks ``qrel.gate`` for
    # What the measure computes, at this version: part of the key of every output it stores
    # (outputs.py, beside engine.py's, rows.py's and sampling.py's VERSION), so that no run reads
    # outputs computed another way. A change of what it computes (a number it stores or gates
    # moves) must bump it; a refactor, a docstring, a rename must not (the users' caches stay warm).
    # tests/e2e/test_measure_versions.py fails when a built-in measure's output changes and no
    # version does. A plugin's measure that stores no outputs (FamilyMeasure.describe) needs none.
    version: ClassVar[int] = 1

    def __init__(self, config: QrelConfig, store: ModelStore) -> None:
        self.config = config
        self.store = store
        self.spec: Property = config.catalog[self.key]
        self.property = self.spec.records_as  # results.json's property of its records
        self.metric = self.spec.metrics[0].name  # the first (or only) gated metric
        # what the property's options set (settings.property_settings), by the key its records carry
        self.settings = config.property_settings.get(self.property)

    def threshold(self, variant: Variant) -> float:
        """The property's threshold of its metric: its threshold option's, else the catalog's
        default (a property whose threshold depends on the variant says so itself)."""
        given = getattr(self.settings, "threshold", None) or {}
        if self.spec.metrics[0].key in given:
            return float(given[self.spec.metrics[0].key])
        threshold = self.spec.metrics[0].threshold
        if not isinstance(threshold, (int, float)):
            raise TypeError(f"property {self.key!r} has no single default threshold: its measure must give one")
        return float(threshold)

    @abstractmethod
    def measure(self, variant: Variant) -> Measurement: ...

    def outputs(self) -> Outputs:
        """The run's stored outputs, keyed with this measure's ``version``."""
        return Outputs(self.config, self.store, self.version)

    def needs_exact(self, variant: Variant, metric: str, lower: float, upper: float) -> bool:
        """Whether ``metric``, known within certified bounds, must be computed exactly to be
        compared: the run saves a baseline (a later run compares with it), or its comparison
        with this run's baseline is one the bounds cannot decide (baseline.regressed)."""
        config, tolerance = self.config, tolerance_for(self.config.compare_fail, self.property, metric)
        return lower < upper and (config.save_baseline is not None or config.baseline is not None and config.baseline.undecided(
            variant.id, self.property, metric, (lower, upper), self.spec.metric(metric).higher_is_better, tolerance))

    def gates(self, variant: Variant, task: object = None, **params: str) -> list[Gate]:
        """Every metric the property gates on ``variant`` (on a task or a condition, for the
        properties parametrized so); one metric unless a measure says more."""
        if task is not None or params:
            raise TypeError(f"Expected no task or parameters for property {self.key!r}, but got {task!r} {params}")
        return [Gate(self.metric, self.measure(variant), self.threshold(variant))]

    def plan(self, planned: AbstractSet[tuple[Variant, object, str]]) -> None:  # noqa: B027 - a hook most measures leave empty
        """Learn the run's (variant, task or condition, property) tests once collection is done."""
