"""Paper 000 §4.2 reproduced per model (its Figs. 9-10 against Fig. 6): each pruned variant beside
the quantized variants to compare it with at equal total bits, by KL to base and accuracy drop,
and whether 000's finding (a quantized model no larger beats a 50%- or 2:4-pruned one on both)
holds. Computed once at the end of a run from the records and the drift rows; report/ presents it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import mean
from typing import TYPE_CHECKING

from .properties import CATALOG, Catalog
from .schema import PrunedPair, PrunedPoint, PrunedVsQuantized, VariantEntry, Winner

if TYPE_CHECKING:
    from .results import Record
    from .schema import DriftRow

KL_METRIC = "kl_to_base"
ACCURACY_DROP = "accuracy_drop"
METRICS = (KL_METRIC, ACCURACY_DROP)
# paper 000 §4.2: "both 50% sparse and semi-structured models exhibit noticeable degradation"
FINDING_SPARSITIES = ("0.5", "2:4")


@dataclass(frozen=True)
class Point:
    """One variant of a model as the comparison places it: total bits, KL to base and accuracy
    drop (the mean over the run's tasks of base accuracy minus its own; None without tasks)."""
    variant: str
    method: str
    bits: int
    sparsity: str | None  # a pruned variant's asked sparsity; None for a quantized one
    total_bits: float
    kl_to_base: float | None
    accuracy_drop: float | None

    def value(self, metric: str) -> float | None:
        return self.kl_to_base if metric == KL_METRIC else self.accuracy_drop

    def as_dict(self) -> PrunedPoint:
        return {"variant": self.variant, "method": self.method, "bits": self.bits, "sparsity": self.sparsity,
                "total_bits": self.total_bits, "kl_to_base": self.kl_to_base, "accuracy_drop": self.accuracy_drop}


def winner(quantized: Point | None, pruned: Point, metric: str) -> Winner | None:
    """Which of the two is better on ``metric`` (lower is better on both): None if either lacks it."""
    q = None if quantized is None else quantized.value(metric)
    p = pruned.value(metric)
    if q is None or p is None:
        return None
    return "quantized" if q < p else "pruned" if p < q else "equal"


@dataclass(frozen=True)
class Pairing:
    """A pruned variant and the quantized variants it is compared with: the best (lowest KL)
    whose total bits are at most its own, and the nearest larger one; None where there is none."""
    pruned: Point
    smaller: Point | None
    larger: Point | None

    def as_dict(self) -> PrunedPair:
        return {"pruned": self.pruned.variant,
                "smaller": None if self.smaller is None else self.smaller.variant,
                "larger": None if self.larger is None else self.larger.variant,
                "better_smaller": {m: winner(self.smaller, self.pruned, m) for m in METRICS},
                "better_larger": {m: winner(self.larger, self.pruned, m) for m in METRICS}}


@dataclass(frozen=True)
class Finding:
    """Paper 000's finding on one model: each 50%- and 2:4-pruned variant with a KL is beaten on
    every compared metric (strictly lower KL and accuracy drop) by a quantized variant no larger.
    ``beaten_by``: per such pruned variant, the lowest-KL quantized variant that beats it, or None;
    ``holds`` is None (with ``reason``) when the model has no such pruned variant."""
    holds: bool | None
    metrics: tuple[str, ...]
    beaten_by: dict[str, str | None]
    reason: str | None = None


@dataclass(frozen=True)
class ModelComparison:
    """One model's pruned-vs-quantized comparison: its variants' points, each pruned variant's
    pairing and the finding."""
    model: str
    base_total_bits: float | None
    points: tuple[Point, ...]
    pairs: tuple[Pairing, ...]
    finding: Finding

    def point(self, variant: str) -> Point:
        return next(p for p in self.points if p.variant == variant)

    def as_dict(self) -> PrunedVsQuantized:
        f = self.finding
        return {"model": self.model, "base_total_bits": self.base_total_bits,
                "points": [p.as_dict() for p in self.points], "pairs": [p.as_dict() for p in self.pairs],
                "finding": {"holds": f.holds, "metrics": list(f.metrics), "beaten_by": dict(f.beaten_by),
                            "reason": f.reason}}


def _finite(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def accuracy_drops(rows: list[DriftRow]) -> dict[str, float]:
    """Per variant, the mean over its model's tasks of (base accuracy - its accuracy), from the
    drift rows; a variant missing one of its model's tasks has none (its mean would not compare)."""
    tasks: dict[str, set[str | None]] = {}
    drops: dict[str, dict[str | None, float]] = {}
    for row in rows:
        tasks.setdefault(row["model"], set()).add(row["task"])
        drops.setdefault(row["variant"], {})[row["task"]] = -row["delta"]["accuracy"]
    model_of = {row["variant"]: row["model"] for row in rows}
    return {vid: mean(by_task.values()) for vid, by_task in drops.items() if set(by_task) == tasks[model_of[vid]]}


def _points(variants: list[VariantEntry], records: list[Record], drops: dict[str, float],
            catalog: Catalog) -> list[Point]:
    fitted = catalog.fitted()  # KL's own records, not the fitted-law bounds that carry the same metric
    kl = {r.variant: value for r in records if r.metric == KL_METRIC and r.property in fitted and r.gated
          and (value := _finite(r.value)) is not None}
    points = []
    for v in variants:
        total = _finite(v.get("total_bits"))
        if total is None or (v["id"] not in kl and v["id"] not in drops):
            continue
        points.append(Point(v["id"], v.get("method", "?"), v.get("bits", 0), v.get("sparsity"), total,
                            kl.get(v["id"]), drops.get(v["id"])))
    return sorted(points, key=lambda p: p.total_bits)  # stable: the run's matrix order at equal bits


def _best(candidates: list[Point]) -> Point | None:
    """The lowest KL (then the lowest accuracy drop, then the fewest bits); None if none."""
    inf = math.inf
    return min(candidates, default=None, key=lambda p: (inf if p.kl_to_base is None else p.kl_to_base,
                                                        inf if p.accuracy_drop is None else p.accuracy_drop, p.total_bits))


def _beats(q: Point, p: Point, metrics: tuple[str, ...]) -> bool:
    """Whether quantized ``q`` is no larger than pruned ``p`` and strictly better on each metric
    ``p`` has (a metric ``p`` has and ``q`` lacks cannot be shown: not beaten)."""
    return q.total_bits <= p.total_bits and all(winner(q, p, m) == "quantized" for m in metrics if p.value(m) is not None)


def _finding(pairs: list[Pairing], quantized: list[Point], metrics: tuple[str, ...],
             partial: frozenset[str] = frozenset()) -> Finding:
    # a variant with asked-for layers not pruned as asked (``partial``) is not 50%- or 2:4-pruned
    checked = [pair.pruned for pair in pairs if pair.pruned.sparsity in FINDING_SPARSITIES
               and pair.pruned.kl_to_base is not None and pair.pruned.variant not in partial]
    if not checked:
        return Finding(None, metrics, {}, "no 50%- or 2:4-pruned variant pruned as asked with a KL to base")
    beaten_by = {p.variant: (b.variant if (b := _best([q for q in quantized if _beats(q, p, metrics)])) else None)
                 for p in checked}
    return Finding(all(b is not None for b in beaten_by.values()), metrics, beaten_by)


def compare(variants: list[VariantEntry], records: list[Record], drift_rows: list[DriftRow],
            catalog: Catalog = CATALOG) -> list[ModelComparison]:
    """Per model that has both pruned and quantized variants with a value: each pruned variant's
    pairing and paper 000's finding; an empty list for a run without pruning."""
    drops = accuracy_drops(drift_rows)
    out = []
    for model in dict.fromkeys(v["model"] for v in variants):
        own = [v for v in variants if v["model"] == model]
        points = _points(own, records, drops, catalog)
        pruned = [p for p in points if p.sparsity is not None]
        quantized = [p for p in points if p.sparsity is None]
        if not pruned or not quantized:
            continue
        pairs = [Pairing(p, _best([q for q in quantized if q.total_bits <= p.total_bits]),
                         min((q for q in quantized if q.total_bits > p.total_bits), default=None,
                             key=lambda q: (q.total_bits, math.inf if q.kl_to_base is None else q.kl_to_base)))
                 for p in pruned]
        metrics = tuple(m for m in METRICS if any(p.value(m) is not None for p in pruned))
        base = next((b for v in own if (b := _finite(v.get("base_total_bits"))) is not None), None)
        partial = frozenset(v["id"] for v in own if v.get("sparsity") is not None and v.get("skipped"))
        out.append(ModelComparison(model, base, tuple(points), tuple(pairs), _finding(pairs, quantized, metrics, partial)))
    return out
