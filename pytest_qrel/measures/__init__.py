"""One module per reliability property: each computes its base's outputs once per model
and its values per variant (KL to base; calibration drift and confidence shift on
multiple-choice tasks; robustness of sampled answers to natural perturbations, and fuzzing
of their agreement with the base; fitted-law bounds over the run's variants)."""

from .base import Measure, Measurement
from .calibration import CalibrationMeasure
from .confidence import ConfidenceMeasure
from .fuzz import FuzzMeasure
from .kl import KLMeasure
from .robustness import ROBUST_GATED, RobustnessMeasure
from .scaling import SCALED_METRICS, ScalingMeasure

# what a suite asks ``qrel.gate`` for -> its measure (the fuzzing test records its metric
# under the robustness property)
MEASURES: dict[str, type[Measure]] = {
    "kl": KLMeasure,
    "calibration": CalibrationMeasure,
    "confidence": ConfidenceMeasure,
    "robustness": RobustnessMeasure,
    "fuzz": FuzzMeasure,
    "scaling": ScalingMeasure,
}

__all__ = ["MEASURES", "ROBUST_GATED", "SCALED_METRICS", "CalibrationMeasure", "ConfidenceMeasure", "FuzzMeasure",
           "KLMeasure", "Measure", "Measurement", "RobustnessMeasure", "ScalingMeasure"]
