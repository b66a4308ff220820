"""Fitted-law bounds: a variant's metric against the law fitted on the other variants of its
bit-width (paper 000 §3.3, eq. 6, fitted per bit width), and the run's fits for the report."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

from .base import Measure, Measurement

if TYPE_CHECKING:
    from ..results import Results
    from ..variants import Variant

# metrics a fitted law bounds -> the property whose measure produces them
SCALED_METRICS: dict[str, str] = {"kl_to_base": "kl"}
_CURVE_POINTS = 50


class ScalingMeasure(Measure):
    """Leave-one-out: the law is fitted on the *other* variants of the same bit-width (any
    method, any model) and the variant must fall inside its prediction band at
    ``--qrel-scaling-confidence`` on the worse side: a checkpoint worse than the law predicts
    for its total bits is a regression. Each variant's value is taken from the test that
    measured it in this process, or measured here (on another xdist worker's model)."""

    property = "scaling"
    metric = "kl_to_base"

    def attach(self, variants: list[Variant], measures: dict[str, Measure], results: Results,
               info_of: Callable[[Variant], dict]) -> None:
        self._variants, self._measures, self._results, self._info_of = variants, measures, results, info_of
        self._values: dict[tuple[str, str], tuple[float, float | None]] = {}

    def threshold(self, variant: Variant) -> float:
        raise NotImplementedError("a fitted law's bound comes with each measurement")

    def value(self, metric: str, variant: Variant) -> tuple[float, float | None]:
        """(the variant's ``metric``, its total model bits), measured once per process;
        VariantError if the variant cannot be measured (its base or quantization failed)."""
        key = (metric, variant.id)
        if key not in self._values:
            value = self._results.recorded_value(variant.id, metric)
            if value is None:
                value = self._measures[SCALED_METRICS[metric]].measure(variant).value
            self._values[key] = (value, (self._info_of(variant) or {}).get("total_bits"))
        return self._values[key]

    def _other_value(self, metric: str, variant: Variant) -> tuple[float, float | None]:
        from ..store import VariantError

        try:
            return self.value(metric, variant)
        except VariantError:  # its own tests carry the error; the law has one point fewer
            return math.nan, None

    def measure(self, variant: Variant) -> Measurement:
        return self.gates(variant)[0][1]

    def gates(self, variant: Variant, task: str | None = None, metric: str = "kl_to_base",
              **params: str) -> list[tuple[str, Measurement, float]]:
        """The variant's ``metric`` and the worse edge of the band fitted without it."""
        from ..scaling import fit_log_quadratic

        if metric not in SCALED_METRICS or task is not None or params:
            raise ValueError(f"Expected a metric in {sorted(SCALED_METRICS)} and nothing else, but got "
                             f"{metric!r} {task!r} {params}")
        value, total = self.value(metric, variant)
        if not math.isfinite(value) or total is None:
            return [(metric, Measurement(value, problem=f"{metric} is not finite"), math.nan)]
        others = [self._other_value(metric, v) for v in self._variants
                  if v.bits == variant.bits and v != variant and not v.skip_reason]
        points = [(b, y) for y, b in others if b is not None and math.isfinite(y)]
        unchecked = None
        if len(points) < 4:  # eq. 6 has three coefficients: a prediction band needs four points
            unchecked = (f"no {variant.bits}-bit law to bound {metric} with: the other {variant.bits}-bit variants "
                         f"give {len(points)} point{'s' if len(points) != 1 else ''}, and a law of 3 coefficients needs 4")
        else:
            try:
                fit = fit_log_quadratic([b for b, _ in points], [y for _, y in points], name=f"{metric}-{variant.bits}b")
            except ValueError as exc:  # FitError: degenerate points
                unchecked = f"no {variant.bits}-bit law to bound {metric} with: {exc}"
        if unchecked:
            return [(metric, Measurement(value, unchecked=unchecked), math.nan)]
        lower, upper = (float(x) for x in fit.prediction_interval(total, self.config.scaling_confidence))
        measurement = Measurement(
            value,
            detail={"predicted": float(fit.predict(total)), "band": [lower, upper],
                    "confidence": self.config.scaling_confidence, "fit_points": fit.n, "fit_adj_r2": fit.adj_r2},
        )
        return [(metric, measurement, lower if self.higher_is_better else upper)]


FITTED_PROPERTIES = ("kl", "calibration", "confidence")  # whose values the report's laws are fitted on


def _metric_values(records: list[dict], by_id: dict[str, dict]) -> dict[str, dict[str, tuple[float, float | None]]]:
    """Per metric label (``kl_to_base``, or ``ece@zoo_recall`` for a per-task metric), each
    measured variant's (value, threshold): from its own property's test, else its law test."""
    out: dict[str, dict[str, tuple[float, float | None]]] = {}
    for r in records:
        if (r.get("property") not in (*FITTED_PROPERTIES, "scaling") or r.get("status") not in ("pass", "fail")
                or not isinstance(r.get("value"), float) or not math.isfinite(r["value"])
                or not by_id.get(r["variant"], {}).get("total_bits")):
            continue
        label = r["metric"] + (f"@{r['task']}" if r.get("task") else "")
        values = out.setdefault(label, {})
        if r["property"] != "scaling" or r["variant"] not in values:
            threshold = r.get("threshold") if r["property"] != "scaling" else None
            values[r["variant"]] = (float(r["value"]), threshold if isinstance(threshold, float) else None)
    return out


def run_fits(variants: list[dict], records: list[dict]) -> list[dict]:
    """The laws of the run, for results.json and the report: for every metric of results.json
    (KL, and each calibration and confidence metric per task), the log-quadratic law per
    bit-width (paper 000 eq. 6) and the multiplicative law in model size and effective bits
    (paper 002 eq. 2 with its factor ablation, plus group size where the run varies it), and
    paper 004's ratio law when the run varies the ratio; a law with too few points is listed
    as not fitted, with the reason."""
    from ..scaling import ablate_power_law, fit_log_quadratic, fit_power_law

    by_id = {v["id"]: v for v in variants}
    fits: list[dict] = []
    for metric, values in _metric_values(records, by_id).items():
        rows = [(by_id[vid], value) for vid, (value, _) in values.items()]
        for bits in sorted({v["bits"] for v, _ in rows}):
            family = [(v["total_bits"], y) for v, y in rows if v["bits"] == bits]
            entry = {"metric": metric, "law": "log_quadratic", "family": f"{bits}-bit", "bits": bits,
                     "points": [[b, y] for b, y in family]}
            try:
                fit = fit_log_quadratic([b for b, _ in family], [y for _, y in family], name=f"{metric}-{bits}b")
            except ValueError as exc:  # FitError: too few or degenerate points
                fits.append({**entry, "fitted": False, "reason": str(exc)})
                continue
            lo, hi = min(b for b, _ in family), max(b for b, _ in family)
            grid = [lo * (hi / lo) ** (i / (_CURVE_POINTS - 1)) for i in range(_CURVE_POINTS)]
            fits.append({**entry, "fitted": True, **fit.as_dict(),
                         "curve": [[b, float(fit.predict(b))] for b in grid]})
        fits += _ratio_fits(metric, rows, {vid: t for vid, (_, t) in values.items()})
        factors = {"model_size": [float(v["params"]) for v, _ in rows],
                   "effective_bits": [float(v["effective_bits"]) for v, _ in rows]}
        groups = [v.get("group_size") for v, _ in rows]
        if None not in groups and len(set(groups)) > 1:
            factors["group_size"] = [float(g) for g in groups]
        entry = {"metric": metric, "law": "power_law", "family": "all", "factors": sorted(factors)}
        try:
            fit = fit_power_law(factors, [y for _, y in rows], name=f"{metric}-power-law")
        except ValueError as exc:  # too few points, or values a power law cannot take (<= 0)
            fits.append({**entry, "fitted": False, "reason": str(exc)})
            continue
        # paper 002 Table 1: which factors the law needs, by the adjusted R² of each subset
        ablation = [{"factors": list(row.factors), "fitted": row.fit is not None,
                     "adj_r2": row.adj_r2 if row.fit is not None and math.isfinite(row.adj_r2) else None}
                    for row in ablate_power_law(factors, [y for _, y in rows])]
        fits.append({**entry, "fitted": True, **fit.as_dict(), "ablation": ablation})
    return fits


def _ratio_fits(metric: str, rows: list[tuple[dict, float]], threshold: dict[str, float | None]) -> list[dict]:
    """Paper 004 §4.2 (Scaling Law 1), when the run has a mixed-precision ratio axis: per
    bit-width, each model's largest quantization ratio whose value stays within the metric's
    threshold (the loss budget), and model size against it, N = exp(k (1 - Q_r) + c)."""
    from ..scaling import fit_quantization_ratio_law

    if len({v.get("quant_ratio") for v, _ in rows}) < 2:
        return []
    fits = []
    for bits in sorted({v["bits"] for v, _ in rows}):
        tolerable: dict[str, tuple[float, float]] = {}  # model -> (params, largest ratio within budget)
        for v, y in rows:
            budget = threshold.get(v["id"])
            if v["bits"] == bits and budget is not None and y <= budget:
                best = tolerable.get(v["model"], (0.0, 0.0))[1]
                tolerable[v["model"]] = (float(v["params"]), max(best, float(v.get("quant_ratio") or 1.0)))
        entry = {"metric": metric, "law": "quantization_ratio", "family": f"{bits}-bit", "bits": bits,
                 "points": [[q, n] for n, q in tolerable.values()]}
        try:
            fit = fit_quantization_ratio_law([q for _, q in tolerable.values()], [n for n, _ in tolerable.values()],
                                             name=f"{metric}-{bits}b-ratio")
            fits.append({**entry, "fitted": True, **fit.as_dict()})
        except ValueError as exc:
            fits.append({**entry, "fitted": False, "reason": str(exc)})
    return fits


def sweet_spots(variants: list[dict], records: list[dict], metric: str, higher_is_better: bool = False) -> list[dict]:
    """The best variant for each total-bit budget (paper 000's "4-bit peak" question): the
    variants no other variant beats with as few or fewer total bits, by total bits."""
    by_id = {v["id"]: v for v in variants}
    rows = sorted(
        ((by_id[r["variant"]]["total_bits"], r["value"], by_id[r["variant"]]) for r in records
         if r.get("metric") == metric and r.get("status") in ("pass", "fail") and isinstance(r.get("value"), float)
         and math.isfinite(r["value"]) and by_id.get(r["variant"], {}).get("total_bits")),
        key=lambda row: (row[0], -row[1] if higher_is_better else row[1]),
    )
    frontier, best = [], None
    for total, value, v in rows:
        if best is None or (value > best if higher_is_better else value < best):
            best = value
            frontier.append({"total_bits": total, "variant": v["id"], "bits": v["bits"], "method": v["method"],
                             "model": v["model"], "value": value})
    return frontier
