"""One module per reliability property (calibration and confidence share drift.py): each
computes its base's outputs once per model and its values per variant (KL to base;
calibration drift and confidence shift on multiple-choice tasks; robustness of sampled answers
to natural perturbations, and fuzzing of their agreement with the base; fitted-law bounds over
the run's variants)."""

from .base import Gate, Measure, Measurement
from .drift import CalibrationMeasure, ConfidenceMeasure
from .family import FamilyMeasure
from .fuzz import FuzzMeasure
from .kl import KLMeasure
from .registry import MEASURES, registered_properties
from .robustness import RobustnessMeasure
from .scaling import ScalingMeasure

__all__ = ["MEASURES", "CalibrationMeasure", "ConfidenceMeasure", "FamilyMeasure", "FuzzMeasure", "Gate",
           "KLMeasure", "Measure", "Measurement", "RobustnessMeasure", "ScalingMeasure", "registered_properties"]
