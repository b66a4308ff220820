"""The measure of every property: the built-in ones, and those a plugin registers with its
catalog entry through the ``pytest_qrel_register_properties`` hook (hooks.py)."""

from __future__ import annotations

import pytest

from ..properties import BUILTIN, Catalog, Property
from .base import Measure
from .drift import CalibrationMeasure, ConfidenceMeasure
from .fuzz import FuzzMeasure
from .kl import KLMeasure
from .robustness import RobustnessMeasure
from .scaling import ScalingMeasure

# the catalog key of each built-in property (properties.BUILTIN) -> its measure
MEASURES: dict[str, type[Measure]] = {m.key: m for m in (
    KLMeasure, CalibrationMeasure, ConfidenceMeasure, RobustnessMeasure, FuzzMeasure, ScalingMeasure)}


def registered_properties(config: pytest.Config) -> tuple[Catalog, dict[str, type[Measure]]]:
    """The built-in properties and those plugins add through ``pytest_qrel_register_properties``
    (hooks.py): a catalog entry and its ``Measure`` each; a malformed one is a usage error."""
    catalog, measures = Catalog(BUILTIN), dict(MEASURES)

    def register(prop: Property, measure: type[Measure]) -> None:
        if not (isinstance(measure, type) and issubclass(measure, Measure)):
            raise pytest.UsageError(f"pytest_qrel_register_properties: expected a Measure subclass for "
                                    f"property {getattr(prop, 'key', prop)!r}, but got {measure!r}")
        try:
            catalog.add(prop)
        except (TypeError, ValueError) as exc:
            raise pytest.UsageError(f"pytest_qrel_register_properties: {exc}") from None
        if getattr(measure, "key", None) != prop.key:
            raise pytest.UsageError(f"pytest_qrel_register_properties: {measure.__name__}.key must be {prop.key!r}")
        measures[prop.key] = measure

    config.hook.pytest_qrel_register_properties(register=register)
    return catalog, measures
