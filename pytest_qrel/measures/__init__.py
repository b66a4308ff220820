"""One module per reliability property: each computes its base's outputs once per model
and its values per variant (KL to base; calibration drift and confidence shift on
multiple-choice tasks; fitted-law bounds over the run's variants; robustness adds its own
beside them)."""

from .base import Measure, Measurement
from .calibration import CalibrationMeasure
from .confidence import ConfidenceMeasure
from .kl import KLMeasure
from .scaling import SCALED_METRICS, ScalingMeasure

MEASURES: dict[str, type[Measure]] = {
    m.property: m for m in (KLMeasure, CalibrationMeasure, ConfidenceMeasure, ScalingMeasure)
}

__all__ = ["MEASURES", "SCALED_METRICS", "CalibrationMeasure", "ConfidenceMeasure", "KLMeasure", "Measure",
           "Measurement", "ScalingMeasure"]
