"""The calibration and confidence section of the report and of results.json (``drift``): one
row per (variant, task) with both models' numbers, deltas and gates, and the accuracy drop by
knowledge stratum (paper 002 §3)."""

from __future__ import annotations

import math
from statistics import mean
from typing import TYPE_CHECKING, cast

from .properties import CATALOG
from .schema import DriftRow, DriftTable, KnowledgeRow, VariantEntry

if TYPE_CHECKING:
    from .results import Record

DRIFT_PROPERTIES = tuple(p.records_as for p in CATALOG.with_axis("task"))


def drift_summary(records: list[Record], variants: list[VariantEntry]) -> DriftTable:
    """results.json's ``drift`` section: one row per (variant, task) with both models'
    numbers, the deltas, every gated metric's p-values and outcome, and per model the
    accuracy drop per bit-width by knowledge stratum."""
    bits_of = {v["id"]: v for v in variants}
    rows: dict[tuple[str, str | None], DriftRow] = {}
    for r in records:
        if r.property not in DRIFT_PROPERTIES or "comparison" not in r.detail:
            continue
        key = (r.variant, r.task)
        row = rows.setdefault(key, cast(DriftRow, {  # with the comparison's keys (schema.DriftComparison)
            "model": r.model, "variant": r.variant, "method": r.method, "bits": r.bits,
            "total_bits": bits_of[r.variant].get("total_bits") if r.variant in bits_of else None,
            "task": r.task, "stratum": r.detail.get("stratum"), "questions": r.detail.get("questions"),
            **r.detail["comparison"], "gates": {},
        }))
        # a record with a comparison is a measured one: it has its metric
        row["gates"][cast(str, r.metric)] = {
            "value": r.value, "threshold": r.threshold, "status": r.status, "pvalue": r.detail.get("pvalue"),
            "adjusted_pvalue": r.detail.get("adjusted_pvalue"), "alpha": r.detail.get("alpha"),
            "significant": r.detail.get("significant")}
    table = sorted(rows.values(), key=lambda x: (x["model"], x["task"], x["total_bits"] or math.inf, x["variant"]))
    knowledge = []
    # paper 002's strata are of quantization bit-widths: a pruned variant is in the task rows only
    pruned = {v["id"] for v in variants if v.get("sparsity") is not None}
    quantized = [x for x in table if x["variant"] not in pruned]
    for model in dict.fromkeys(x["model"] for x in quantized):
        for bits in sorted({x["bits"] for x in quantized if x["model"] == model}):
            entry = cast(KnowledgeRow, {"model": model, "bits": bits})
            for stratum, heldout in (("memorization", False), ("utilization", False), ("utilization_heldout", True)):
                drops = [-x["delta"]["accuracy"] for x in quantized if x["model"] == model and x["bits"] == bits
                         and x["stratum"] == stratum.removesuffix("_heldout") and _heldout(x["task"]) == heldout]
                entry[f"accuracy_drop_{stratum}"] = mean(drops) if drops else None  # type: ignore[literal-required]
            drops_true = [x["delta"]["conf_true"] for x in quantized if x["model"] == model and x["bits"] == bits]
            entry["conf_true_drop"] = -mean(drops_true) if drops_true else None
            knowledge.append(entry)
    return {"tasks": table, "knowledge": knowledge}


def _heldout(task: str | None) -> bool:
    """Held-out people (the zoo's ``*_heldout`` tasks) are reported apart from trained ones."""
    return task is not None and task.endswith("_heldout")
