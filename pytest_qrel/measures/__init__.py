"""One module per reliability property: each computes its base's outputs once per model
and its values per variant (KL to base now; calibration, confidence, robustness and
scaling add theirs beside it)."""

from .base import Measure, Measurement
from .kl import KLMeasure

MEASURES: dict[str, type[Measure]] = {m.property: m for m in (KLMeasure,)}

__all__ = ["MEASURES", "KLMeasure", "Measure", "Measurement"]
