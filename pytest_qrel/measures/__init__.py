"""One module per reliability property: each computes its base's outputs once per model
and its values per variant (KL to base now; calibration, confidence, robustness and
scaling add theirs beside it)."""

from .base import Measure, Measurement
from .kl import KLMeasure
from .scaling import SCALED_METRICS, ScalingMeasure

MEASURES: dict[str, type[Measure]] = {m.property: m for m in (KLMeasure, ScalingMeasure)}

__all__ = ["MEASURES", "SCALED_METRICS", "KLMeasure", "Measure", "Measurement", "ScalingMeasure"]
