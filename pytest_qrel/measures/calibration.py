"""Calibration drift: how much a variant's calibration error on multiple-choice tasks grows
over its base's (paper 003 Table 1, App. B; Brier: paper 000 eq. 5)."""

from __future__ import annotations

from .drift import ChoiceDriftMeasure


class CalibrationMeasure(ChoiceDriftMeasure):
    """Gates the increase of ECE and adaptive CE (paired bootstrap) and of the Brier score
    (paired t-test on per-question terms) over the base, per task."""

    key = "calibration"
