"""What the report shows beyond single records, computed once at the end of a run from the
records and variants: the fitted laws and sweet spots (paper 000 eq. 6, paper 002 eq. 2,
paper 004), the calibration and confidence tables (paper 003), the robustness tables
(paper 000 Fig. 3), pruned against quantized variants (paper 000 §4.2). report/ only presents these."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, cast

from .drift_table import drift_summary
from .properties import CATALOG, Catalog
from .pruned_vs_quantized import ModelComparison, compare
from .results import Record
from .schema import DriftTable, FitEntry, RobustnessComparison, VariantEntry
from .variants import law_family

if TYPE_CHECKING:
    pass

CURVE_POINTS = 50
UNPERTURBED = "unperturbed"
# the per-task properties whose records carry paper 003's comparison


# a variant's verdict on one property: PASS, FAIL, ERROR, not checked, SKIP; "-" where the run gated
# none of it; "not run (why)" where its tests were not run for want of data (matrix.without_default_tasks)
Verdict = str


@dataclass(frozen=True)
class SweetSpot:
    """The best variant within one total-bit budget (``sweet_spots``)."""
    total_bits: float
    variant: str
    bits: int
    method: str
    model: str
    value: float


@dataclass(frozen=True)
class StatusCounts:
    """One property's records: passed, failed, not checked (skip) and errored."""
    passed: int
    failed: int
    not_checked: int
    errors: int


@dataclass(frozen=True)
class WorstCase:
    """A variant's worst perturbation at one intensity, by its accuracy."""
    perturbation: str
    accuracy: float
    base_accuracy: float


@dataclass
class StratumCell:
    """One column's accuracy on a prompt stratum: unperturbed, and per perturbed condition."""
    unperturbed: float
    perturbed: dict[str, float] = field(default_factory=dict)


@dataclass
class StratumTable:
    """One prompt stratum (paper 002's recall / utilization): its prompts, accuracy by column."""
    prompts: int
    accuracy: dict[str, StratumCell] = field(default_factory=dict)


@dataclass
class RobustnessTable:
    """One model's robustness tables (paper 000 Fig. 3); a column is ``base`` or a variant id
    without the model's prefix, a condition ``char_swap i4`` or ``unperturbed``."""

    rows: dict[str, dict[str, tuple[float, float | None]]] = field(default_factory=dict)  # condition -> column -> (accuracy, auroc)
    unknown: dict[str, tuple[int, int]] = field(default_factory=dict)  # condition -> (perturbed words, unknown)
    worst: dict[str, dict[int, WorstCase]] = field(default_factory=dict)  # column -> intensity -> worst case
    fuzz: list[Record] = field(default_factory=list)  # the property's other records: the fuzzing test's
    strata: dict[str, StratumTable] = field(default_factory=dict)  # when the prompts name their strata
    inserted_by: str | None = None  # word_insertion's source of words


@dataclass(frozen=True)
class RunSummary:
    """Everything the report presents, computed once: the variants that reported, every
    record (results.json's ``results``), the fitted laws, the sweet spot per bounded metric,
    the calibration / confidence tables, the robustness tables by model and, per model with
    pruned and quantized variants, their comparison at equal total bits."""

    variants: list[VariantEntry]
    records: list[Record]
    fits: list[FitEntry]
    sweet: dict[str, list[SweetSpot]]  # metric -> frontier
    drift: DriftTable
    robustness: dict[str, RobustnessTable]  # by model
    counts: dict[str, StatusCounts]  # by results.json property
    verdicts: dict[str, dict[str, Verdict]]  # variant id -> property -> verdict
    errors: dict[str, str] = field(default_factory=dict)  # a part that could not be computed -> why
    pruned_vs_quantized: list[ModelComparison] = field(default_factory=list)  # paper 000 §4.2, per model
    not_run: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> property -> why (matrix.NotRun)


def attempt(errors: dict[str, str], name: str, compute: Callable[[], Any], empty: Any = None) -> Any:
    """``compute()``, or ``empty`` with its one-line error kept in ``errors[name]``: one part of
    a report that cannot be computed or drawn never costs the rest (or results.json)."""
    try:
        return compute()
    except Exception as exc:  # the error is reported in its place
        errors[name] = f"{type(exc).__name__}: {exc}"
        return empty


def summarize(variants: list[VariantEntry], records: list[Record], catalog: Catalog = CATALOG,
              not_run: dict[str, dict[str, str]] | None = None) -> RunSummary:
    """Everything the report shows; a part that cannot be computed is left empty and its
    error kept in ``errors``, so the rest of the report (and results.json) is still written.
    ``not_run``: per model, the properties whose tests were not run and why."""
    errors: dict[str, str] = {}
    scaled = [m for p in catalog.with_axis("scaled") for m in p.metrics]
    # in the variants' (the matrix's) order, whatever order the reports came in (xdist): the
    # same run gives the same results.json
    position = {v["id"]: i for i, v in enumerate(variants)}
    records = sorted(records, key=lambda r: (position.get(r.variant, len(position)), r.test, r.metric or ""))
    drift: DriftTable = attempt(errors, "calibration and confidence summary", lambda: drift_summary(records, variants),
                                {"tasks": [], "knowledge": []})
    return RunSummary(
        variants, records,
        attempt(errors, "fitted laws", lambda: run_fits(variants, records, catalog), []),
        attempt(errors, "sweet spots", lambda: {m.name: sweet_spots(variants, records, m.name, m.higher_is_better)
                                                for m in scaled}, {}),
        drift,
        attempt(errors, "robustness summary", lambda: robustness_summary(records, catalog), {}),
        counts(records, catalog),
        attempt(errors, "verdicts", lambda: verdicts(variants, records, catalog, not_run), {}),
        errors,
        attempt(errors, "pruned vs quantized comparison",
                lambda: compare(variants, records, drift["tasks"], catalog), []),
        dict(not_run or {}),
    )


def verdicts(variants: list[VariantEntry], records: list[Record], catalog: Catalog = CATALOG,
             not_run: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, Verdict]]:
    """Which checkpoints may ship, at a glance: per variant (in the run's order) and property, ERROR if a test errored, FAIL if a metric failed, PASS if one passed, else
    ``not checked``; ``-`` where the run gated none of it (SKIP for a pair its backend lacks);
    ``not run (why)`` where ``not_run`` says its model's tests of it were not run (a column of its own
    when no model ran it: a property the run asked for never vanishes from the matrix)."""
    not_run = not_run or {}
    asked = {p for props in not_run.values() for p in props}
    counted = list(counts(records, catalog))
    props = [p for p in catalog.recorded() if p in counted or p in asked]  # catalog order, then any other
    props += list(dict.fromkeys(p for p in [*counted, *sorted(asked)] if p not in props))
    out: dict[str, dict[str, Verdict]] = {}
    for v in variants:
        row: dict[str, Verdict] = {}
        for prop in props:
            statuses = {r.status for r in records if r.variant == v["id"] and r.property == prop}
            why = not_run.get(v["model"], {}).get(prop)
            row[prop] = ("ERROR" if "error" in statuses else "FAIL" if "fail" in statuses else "PASS" if "pass" in statuses
                         else "not checked" if statuses else f"not run ({why})" if why
                         else "SKIP" if v.get("skip_reason") else "-")
        out[v["id"]] = row
    return out


def not_run_lines(not_run: dict[str, dict[str, str]]) -> list[str]:
    """The summary's and report.md's lines of what was not run and why, one per model and reason:
    ``calibration, confidence: not run for my-model: name its tasks with --qrel-tasks=…``."""
    lines = []
    for model, props in not_run.items():
        for why in dict.fromkeys(props.values()):
            lines.append(f"{', '.join(p for p, w in props.items() if w == why)}: not run for {model}: {why}")
    return lines


def counts(records: list[Record], catalog: Catalog = CATALOG) -> dict[str, StatusCounts]:
    """Per results.json property (catalog order, then any other): how many records passed,
    failed, were not checked (skip) and errored."""
    props = [p for p in catalog.recorded() if any(r.property == p for r in records)]
    props += sorted({r.property for r in records if r.property and r.property not in props})
    return {p: StatusCounts(*(sum(r.property == p and r.status == s for r in records) for s in ("pass", "fail", "skip", "error")))
            for p in props}


def _metric_values(records: list[Record], by_id: dict[str, VariantEntry], catalog: Catalog) -> dict[str, dict[str, tuple[float, float | None]]]:
    """Per metric label (``kl_to_base``, or ``ece@zoo_recall`` for a per-task metric), each
    measured variant's (value, threshold): from its own property's test, else its law test."""
    out: dict[str, dict[str, tuple[float, float | None]]] = {}
    scaled = tuple(p.records_as for p in catalog.with_axis("scaled"))
    for r in records:
        if (r.property not in (*catalog.fitted(), *scaled) or not r.gated
                or not isinstance(r.value, float) or not math.isfinite(r.value)
                or not (r.variant in by_id and by_id[r.variant].get("total_bits"))):
            continue
        label = r.label()
        values = out.setdefault(label, {})
        if r.property not in scaled or r.variant not in values:
            threshold = r.threshold if r.property not in scaled else None
            values[r.variant] = (float(r.value), threshold if isinstance(threshold, float) else None)
    return out


def measured(v: VariantEntry, key: Literal["total_bits", "params", "effective_bits"]) -> float:
    """What a quantized variant measured (variants.QuantizedInfo), as a law's coordinate: only the
    records of a variant with total bits reach a law or a sweet spot, and such a variant has all
    three. schema.VariantEntry allows a non-finite total's name, but that is only how results.json
    could spell one, and a merge's reader refuses it: in memory these are numbers."""
    return cast(float, v[key])


def run_fits(variants: list[VariantEntry], records: list[Record], catalog: Catalog = CATALOG) -> list[FitEntry]:
    """The laws of the run, for results.json and the report: for every metric of results.json
    (KL, and each calibration and confidence metric per task), the log-quadratic law per
    bit-width (paper 000 eq. 6) and the multiplicative law in model size and effective bits
    (paper 002 eq. 2 with its factor ablation, plus group size where the run varies it), and
    paper 004's ratio law when the run varies the ratio; a law with too few points is listed
    as not fitted, with the reason."""
    from .scaling import ablate_power_law, fit_log_quadratic, fit_power_law  # scipy: only at the end of a run

    by_id = {v["id"]: v for v in variants}
    fits: list[Any] = []  # schema.FitEntry, with the fit's statistics (ScalingFit.as_dict) when fitted
    for metric, values in _metric_values(records, by_id, catalog).items():
        rows = [(by_id[vid], value) for vid, (value, _) in values.items()]
        firsts = {law_family(v): v for v, _ in sorted(rows, key=lambda r: (r[0].get("sparsity") is not None, r[0]["bits"]))}
        for name, first in firsts.items():
            bits = first["bits"]
            family = [(measured(v, "total_bits"), y) for v, y in rows if law_family(v) == name]
            law = {"metric": metric, "law": "log_quadratic", "family": name, "bits": bits,
                   **({"sparsity": first["sparsity"]} if first.get("sparsity") is not None else {}),
                   "points": [[b, y] for b, y in family]}
            try:
                fit = fit_log_quadratic([b for b, _ in family], [y for _, y in family],
                                        name=f"{metric}-{bits}b" if "sparsity" not in law else
                                        f"{metric}-sparsity-{first['sparsity']}")
            except ValueError as exc:  # FitError: too few or degenerate points
                fits.append({**law, "fitted": False, "reason": str(exc)})
                continue
            lo, hi = min(b for b, _ in family), max(b for b, _ in family)
            grid = [lo * (hi / lo) ** (i / (CURVE_POINTS - 1)) for i in range(CURVE_POINTS)]
            fits.append({**law, "fitted": True, **fit.as_dict(),
                         "curve": [[b, float(fit.predict(b))] for b in grid]})
        # paper 002's and 004's laws are of quantization: a pruned variant is in its sparsity's law only
        rows = [(v, y) for v, y in rows if v.get("sparsity") is None]
        if not rows:
            continue
        fits += _ratio_fits(metric, rows, {vid: t for vid, (_, t) in values.items()})
        factors = {"model_size": [float(measured(v, "params")) for v, _ in rows],
                   "effective_bits": [float(measured(v, "effective_bits")) for v, _ in rows]}
        groups = [v.get("group_size") for v, _ in rows]
        if None not in groups and len(set(groups)) > 1:
            factors["group_size"] = [float(g) for g in groups if g is not None]  # none is None: for the checker
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


def _ratio_fits(metric: str, rows: list[tuple[VariantEntry, float]], threshold: dict[str, float | None]) -> list[FitEntry]:
    """Paper 004 §4.2 (Scaling Law 1), when the run has a mixed-precision ratio axis: per
    bit-width, each model's largest quantization ratio whose value stays within the metric's
    threshold (the loss budget), and model size against it, N = exp(k (1 - Q_r) + c)."""
    from .scaling import fit_quantization_ratio_law

    if len({v.get("quant_ratio") for v, _ in rows}) < 2:
        return []
    fits: list[Any] = []
    for bits in sorted({v["bits"] for v, _ in rows}):
        tolerable: dict[str, tuple[float, float]] = {}  # model -> (params, largest ratio within budget)
        for v, y in rows:
            budget = threshold.get(v["id"])
            if v["bits"] == bits and budget is not None and y <= budget:
                best = tolerable.get(v["model"], (0.0, 0.0))[1]
                tolerable[v["model"]] = (float(measured(v, "params")), max(best, float(v.get("quant_ratio") or 1.0)))
        entry = {"metric": metric, "law": "quantization_ratio", "family": f"{bits}-bit", "bits": bits,
                 "points": [[q, n] for n, q in tolerable.values()]}
        try:
            fit = fit_quantization_ratio_law([q for _, q in tolerable.values()], [n for n, _ in tolerable.values()],
                                             name=f"{metric}-{bits}b-ratio")
            fits.append({**entry, "fitted": True, **fit.as_dict()})
        except ValueError as exc:
            fits.append({**entry, "fitted": False, "reason": str(exc)})
    return fits


def sweet_spots(variants: list[VariantEntry], records: list[Record], metric: str,
                higher_is_better: bool = False) -> list[SweetSpot]:
    """The best variant for each total-bit budget (paper 000's "4-bit peak" question): the
    variants no other variant beats with as few or fewer total bits, by total bits."""
    by_id = {v["id"]: v for v in variants}
    rows = sorted(
        ((measured(by_id[r.variant], "total_bits"), r.value, by_id[r.variant]) for r in records
         if r.metric == metric and r.gated and isinstance(r.value, float)
         and math.isfinite(r.value) and r.variant in by_id and by_id[r.variant].get("total_bits")),
        key=lambda row: (row[0], -row[1] if higher_is_better else row[1]),
    )
    frontier, best = [], None
    for total, value, v in rows:
        if best is None or (value > best if higher_is_better else value < best):
            best = value
            frontier.append(SweetSpot(total, v["id"], v["bits"], v["method"], v["model"], value))
    return frontier


def shown(records: list[Record], catalog: Catalog = CATALOG) -> list[Record]:
    """The records the per-variant tables list: a property per condition (robustness) has
    several metrics per perturbation and intensity, so only its failures and errors are listed
    there (its own table has every value); every record of the other properties."""
    many = {(p.records_as, m.name) for p in catalog.with_axis("condition") for m in p.metrics}
    return [r for r in records if (r.property, r.metric) not in many or r.status in ("fail", "error")]


def robustness_summary(records: list[Record], catalog: Catalog = CATALOG) -> dict[str, RobustnessTable]:
    """By model, the tables of the per-condition properties (catalog axis ``condition``): their
    records' comparisons (schema.RobustnessComparison) as rows, unknown words, worst cases and
    strata; and the other gated records of their property (the fuzzing test's)."""
    conditions = catalog.with_axis("condition")
    recorded = {p.records_as for p in conditions}
    others = {(p.records_as, m.name) for p in catalog if p.records_as in recorded and p.axis != "condition"
              for m in p.metrics}
    out: dict[str, RobustnessTable] = {}
    seen: set[tuple[str, str, int]] = set()
    for r in records:
        if r.property not in recorded:
            continue
        model = out.setdefault(r.model, RobustnessTable())
        if (r.property, r.metric) in others:
            model.fuzz.append(r)
            continue
        d = r.detail
        comp: RobustnessComparison | None = d.get("comparison")
        key = (r.variant, d.get("perturbation"), d.get("intensity"))
        if not comp or key in seen:
            continue
        seen.add(key)  # type: ignore[arg-type]
        label = f"{d['perturbation']} i{d['intensity']}"
        column = r.variant.removeprefix(f"{r.model}-")
        for row, who, s in ((UNPERTURBED, "base", comp["base_unperturbed"]), (UNPERTURBED, column, comp["quantized_unperturbed"]),
                            (label, "base", comp["base"]), (label, column, comp["quantized"])):
            model.rows.setdefault(row, {})[who] = (s["accuracy"], s.get("auroc_entropy"))
        model.unknown[label] = (d.get("perturbed_words", 0), d.get("unknown_words", 0))
        for stratum, acc in comp.get("strata", {}).items():
            cells = model.strata.setdefault(stratum, StratumTable(acc["prompts"])).accuracy
            for who, clean, perturbed in ((("base", acc["base_unperturbed"], acc["base"]),
                                           (column, acc["quantized_unperturbed"], acc["quantized"]))):
                cells.setdefault(who, StratumCell(clean)).perturbed[label] = perturbed
        if d.get("inserted_by"):
            model.inserted_by = d["inserted_by"]
        worst = model.worst.setdefault(column, {})
        current = worst.get(d["intensity"])
        if current is None or comp["quantized"]["accuracy"] < current.accuracy:
            worst[d["intensity"]] = WorstCase(d["perturbation"], comp["quantized"]["accuracy"], comp["base"]["accuracy"])
    return out
