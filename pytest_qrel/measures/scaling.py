"""Fitted-law bounds: a variant's metric against the law fitted on the other variants of its
bit-width (paper 000 §3.3, eq. 6, fitted per bit width), and the run's fits for the report."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

from ..errors import VariantError
from .base import Gate, Measure, Measurement

if TYPE_CHECKING:
    from ..settings import PropertySettings
    from ..variants import Variant

# (variant id, metric) -> the value a test of this process recorded, or None
RecordedValue = Callable[[str, str], "float | None"]


class ScalingMeasure(Measure):
    """Leave-one-out: the law is fitted on the *other* variants of the same bit-width (any
    method, any model) and the variant must fall inside its prediction band at
    ``--qrel-scaling-confidence`` on the worse side: a checkpoint worse than the law predicts
    for its total bits is a regression. Each variant's value is taken from the test that
    measured it in this process, or measured here (on another xdist worker's model)."""

    settings: PropertySettings  # its entry of config.property_settings

    key = "scaling"
    # what it computes (the leave-one-out band): it stores no outputs (its values come from the
    # other measures), but its golden value is checked all the same (base.Measure.version)
    version = 1

    def attach(self, variants: list[Variant], measures: dict[str, Measure], recorded: RecordedValue,
               info_of: Callable[[Variant], dict | None]) -> None:
        """What the law needs from the session: the run's variants, the measures of the
        bounded metrics, the values this process's tests recorded, each variant's bits."""
        self._variants, self._measures, self._recorded, self._info_of = variants, measures, recorded, info_of
        self._values: dict[tuple[str, str], tuple[float, float | None]] = {}
        self._scaled = self.config.catalog.scaled_metrics()

    def threshold(self, variant: Variant) -> float:
        raise NotImplementedError("a fitted law's bound comes with each measurement")

    def value(self, metric: str, variant: Variant) -> tuple[float, float | None]:
        """(the variant's ``metric``, its total model bits), measured once per process;
        VariantError if the variant cannot be measured (its base or quantization failed)."""
        key = (metric, variant.id)
        if key not in self._values:
            value = self._recorded(variant.id, metric)
            if value is None:
                value = self._measures[self._scaled[metric]].measure(variant).value
            self._values[key] = (value, (self._info_of(variant) or {}).get("total_bits"))
        return self._values[key]

    def _other_value(self, metric: str, variant: Variant) -> tuple[float, float | None]:
        try:
            return self.value(metric, variant)
        except VariantError:  # its own tests carry the error; the law has one point fewer
            return math.nan, None

    def measure(self, variant: Variant) -> Measurement:
        return self.gates(variant)[0].measurement

    def gates(self, variant: Variant, task: object = None, metric: str = "kl_to_base", **params: str) -> list[Gate]:
        """The variant's ``metric`` and the worse edge of the band fitted without it."""
        if metric not in self._scaled or task is not None or params:
            raise ValueError(f"Expected a metric in {sorted(self._scaled)} and nothing else, but got "
                             f"{metric!r} {task!r} {params}")
        value, total = self.value(metric, variant)
        if not math.isfinite(value) or total is None:
            return [law_gate(metric, variant.family, value, total, [], self.settings.band_confidence, False)]
        # each bit-width's law over every model; a pruned variant's over its sparsity's
        others = [self._other_value(metric, v) for v in self._variants
                  if v.family == variant.family and v != variant and not v.skip_reason]
        return [law_gate(metric, variant.family, value, total, others, self.settings.band_confidence,
                         self.spec.metric(metric).higher_is_better)]


def law_gate(metric: str, family: str, value: float, total: float | None, others: list[tuple[float, float | None]],
             confidence: float, higher_is_better: bool) -> Gate:
    """A variant's ``metric`` (``value`` at ``total`` model bits) against the law fitted on
    ``others`` (each other variant of its ``family``, variants.law_family: (value, total bits),
    NaN or None where it has none): the gate of a run, and of a merge that re-decides it over
    the runs' union."""
    from ..scaling import fit_log_quadratic  # scipy: only when a law is fitted

    if not math.isfinite(value) or total is None:
        return Gate(metric, Measurement(value, problem=f"{metric} is not finite"), math.nan)
    points = [(b, y) for y, b in others if b is not None and math.isfinite(y)]
    unchecked = None
    if len(points) < 4:  # eq. 6 has three coefficients: a prediction band needs four points
        unchecked = (f"no {family} law to bound {metric} with: the other {family} variants "
                     f"give {len(points)} point{'s' if len(points) != 1 else ''}, and a law of 3 coefficients needs 4")
    else:
        try:
            fit = fit_log_quadratic([b for b, _ in points], [y for _, y in points], name=f"{metric}-{family}")
        except ValueError as exc:  # FitError: degenerate points
            unchecked = f"no {family} law to bound {metric} with: {exc}"
    if unchecked:
        return Gate(metric, Measurement(value, unchecked=unchecked), math.nan)
    lower, upper = (float(x) for x in fit.prediction_interval(total, confidence))
    measurement = Measurement(
        value,
        detail={"predicted": float(fit.predict(total)), "band": [lower, upper],
                "confidence": confidence, "fit_points": fit.n, "fit_adj_r2": fit.adj_r2},
    )
    return Gate(metric, measurement, lower if higher_is_better else upper)
