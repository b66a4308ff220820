"""Confidence shift: how much a variant's confidence in the true answer falls, and its
predictive entropy grows, from its base on multiple-choice tasks (paper 003 §3.2, Table 2)."""

from __future__ import annotations

from .drift import ChoiceDriftMeasure


class ConfidenceMeasure(ChoiceDriftMeasure):
    """Gates the drop of true-class confidence and the increase of predictive entropy from
    the base (paired t-tests on per-question values, as paper 003), per task."""

    key = "confidence"
