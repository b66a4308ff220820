"""The hooks pytest-qrel adds to pytest: how a plugin or a conftest.py adds a property.

    from pytest_qrel.measures import Measure, Measurement
    from pytest_qrel.properties import Metric, Property

    class Loudness(Measure):
        key = "loudness"
        def measure(self, variant):
            return Measurement(value, base_value)

    def pytest_qrel_register_properties(register):
        register(Property("loudness", "how loud a variant is",
                          (Metric("loudness_increase", "loudness", threshold=0.1),)), Loudness)

A test that takes ``qrel_variant`` (and ``qrel_task`` or ``qrel_perturbation`` for the
other axes), carries ``@pytest.mark.qrel_property("loudness")`` and calls
``qrel.gate("loudness", qrel_variant)`` is then collected over the run's variants, measured,
gated against the metric's threshold, and reported with the built-in properties.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .measures import Measure
    from .properties import Property

__all__ = ["pytest_qrel_register_properties"]


def pytest_qrel_register_properties(register: Callable[[Property, type[Measure]], None]) -> None:
    """Called once per pytest process (controller and each xdist worker) before options are
    validated: call ``register(prop, measure)`` for every property the plugin adds. Its key
    must be new and equal ``measure.key``; its metrics' keys are accepted by --qrel-alpha."""
