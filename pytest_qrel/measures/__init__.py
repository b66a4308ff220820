"""One module per reliability property: each computes its base's outputs once per model
and its values per variant (KL to base; calibration drift and confidence shift on
multiple-choice tasks; robustness and scaling add theirs beside them)."""

from .base import Measure, Measurement
from .calibration import CalibrationMeasure
from .confidence import ConfidenceMeasure
from .kl import KLMeasure

MEASURES: dict[str, type[Measure]] = {m.property: m for m in (KLMeasure, CalibrationMeasure, ConfidenceMeasure)}

__all__ = ["MEASURES", "CalibrationMeasure", "ConfidenceMeasure", "KLMeasure", "Measure", "Measurement"]
