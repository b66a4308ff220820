"""The family-wise gates' one mechanism: every variant of a model scored once, all its
hypotheses collected, corrected together (Holm / Benjamini-Hochberg), each test's decision
looked up. Calibration, confidence and robustness are such families.

Why all at once: a multiple-comparison correction decides one hypothesis from the p-values
of its whole family, but pytest decides a test when it runs. All variants of a model run on
one process (one xdist group per model), so the first test of a model's family scores every
variant of that model that the run tests (on every task or perturbation the run plans for
it), keeps only the small per-question arrays, and decides the family: the hypotheses
(variant x unit x gated metric) of that model. Every later test of the model reads its
decision; no test's outcome depends on the order in which tests run.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Hashable, Literal

from ..metrics import adjust_pvalues
from ..store import VariantError, variant_failure
from .base import Gate, Measure, Measurement

if TYPE_CHECKING:
    from ..variants import Variant

BOOTSTRAP_RESAMPLES = 200  # enough for a standard error (the p-value: ~5% relative error) and a 95% interval
Unit = Hashable  # what one test of a variant is about: a task name, a (perturbation, intensity)


@dataclass(frozen=True)
class Hypothesis:
    """One gated metric of one variant on one unit: ``value`` > 0 is harm (ECE up,
    true-class confidence down, accuracy down, ...); ``pvalue`` tests no change against change."""

    key: str  # the metric's catalog key: ece, conf_true, accuracy, ...
    value: float
    base_value: float
    quant_value: float
    pvalue: float
    test: Literal["paired_ttest", "paired_bootstrap"]
    ci: tuple[float, float] | None = None  # bootstrap CI of the harm


@dataclass(frozen=True)
class Decision:
    failed: bool
    adjusted_pvalue: float
    alpha: float
    threshold: float


def decide(
    family: dict[tuple, Hypothesis],
    thresholds: dict[str, float],
    alpha: dict[str, float],
    correction: Literal["holm", "bh"],
) -> dict[tuple, Decision]:
    """A hypothesis fails when its value exceeds its metric's threshold **and** its p-value,
    adjusted over the whole family (Holm: family-wise error; BH: false discovery rate), is
    at most its metric's level: noise alone does not fail, nor does a significant drift
    too small to matter."""

    keys = list(family)
    if not keys:
        return {}
    adjusted = adjust_pvalues([family[k].pvalue for k in keys], correction)
    out = {}
    for k, p in zip(keys, adjusted.tolist()):
        h = family[k]
        out[k] = Decision(h.value > thresholds[h.key] and p <= alpha[h.key], p, alpha[h.key], thresholds[h.key])
    return out


def decided(h: Hypothesis, d: Decision, correction: str, family_size: int, **detail: object) -> Measurement:
    """A hypothesis and its family-wise decision as a gated measurement: the value, the
    base's, and what the report shows of the test (p-values, level, correction, interval)."""
    significant = d.adjusted_pvalue <= d.alpha
    return Measurement(h.value, h.base_value, None, {
        **detail,
        "quant_value": h.quant_value,
        "pvalue": h.pvalue,
        "adjusted_pvalue": d.adjusted_pvalue,
        "alpha": d.alpha,
        "correction": correction,
        "family_size": family_size,
        "stat_test": h.test,
        "significant": significant,
        **({"ci": list(h.ci)} if h.ci else {}),
    }, significant=significant)


@dataclass
class Family:
    """What a model's family left behind, by variant id ("base" for the base) and unit (and
    metric key): scores, hypotheses and their decisions, metrics that cannot be checked and
    why, report-only comparisons, NaN problems, and the variants that could not be scored."""

    scores: dict[tuple[str, Unit], Any] = field(default_factory=dict)
    hypotheses: dict[tuple[str, Unit, str], Hypothesis] = field(default_factory=dict)
    decisions: dict[tuple, Decision] = field(default_factory=dict)
    unchecked: dict[tuple[str, Unit, str], str] = field(default_factory=dict)
    comparisons: dict[tuple[str, Unit], dict] = field(default_factory=dict)
    problems: dict[tuple[str, Unit], str] = field(default_factory=dict)  # NaN logits
    errors: dict[str, str] = field(default_factory=dict)  # variant id -> one-line reason

    def has(self, variant: Variant, unit: Unit) -> bool:
        """Whether the family has decided (or failed) ``variant`` on ``unit``."""
        return ((variant.id, unit) in self.comparisons or (variant.id, unit) in self.problems
                or variant.id in self.errors)


class FamilyMeasure(Measure):
    """A property decided family-wise per model. Subclasses say which catalog properties share
    the family (``members``), how a model is scored on units, and which hypotheses a variant's
    scores give; this class plans, scores every variant once, corrects and answers each test."""

    family_key: ClassVar[str]  # the store scratch key of the family (members share it)
    members: ClassVar[tuple[str, ...]]  # results.json properties decided in one family

    def __init__(self, config, store) -> None:  # noqa: ANN001 - as Measure
        super().__init__(config, store)
        self._planned: set[tuple[Variant, Unit, str]] = set()

    def plan(self, planned: set[tuple[Variant, object, str]]) -> None:
        """Every measure of the run gets the same set; the members of a family keep theirs."""
        self._planned = {(v, u, p) for v, u, p in planned if p in self.members and self.is_unit(u)}

    def measure(self, variant: Variant) -> Measurement:
        raise TypeError(f"{self.key} is gated per metric and {self.unit_name}: use gates(variant, unit)")

    # -- what a subclass says -----------------------------------------------------------------------

    unit_name: ClassVar[str] = "task"

    def is_unit(self, unit: object) -> bool:
        return isinstance(unit, str)

    @abstractmethod
    def thresholds(self) -> dict[str, float]:
        """Threshold by metric key of every member's metrics."""

    @abstractmethod
    def score(self, model, tokenizer, units: list[Unit]) -> dict[Unit, Any]:  # noqa: ANN001
        """One model's scores on each of ``units`` (the base's and each variant's)."""

    @abstractmethod
    def base_units(self, units: set[Unit]) -> list[Unit]:
        """The units the base must be scored on for a variant tested on ``units``."""

    @abstractmethod
    def variant_units(self, units: set[Unit]) -> list[Unit]:
        """The units a variant tested on ``units`` must be scored on."""

    @abstractmethod
    def add_hypotheses(self, fam: Family, variant: Variant, unit: Unit, props: set[str]) -> None:
        """From the family's scores, add ``variant``'s hypotheses on ``unit`` for ``props``
        (or its problem, or what cannot be checked and why)."""

    @abstractmethod
    def detail(self, fam: Family, variant: Variant, unit: Unit) -> dict:
        """What every record of ``variant`` on ``unit`` carries besides the decision."""

    # -- the family ---------------------------------------------------------------------------------

    def family(self, variant: Variant, unit: Unit) -> Family:
        scratch = self.store.scratch(variant)
        fam: Family | None = scratch.get(self.family_key)
        if fam is None or not fam.has(variant, unit):
            # the model's planned tests, and this one (a test nobody planned, e.g. called directly)
            planned = {(v, u, p) for v, u, p in self._planned if v.model == variant.model and not v.skip_reason}
            planned.add((variant, unit, self.property))
            scratch[self.family_key] = fam = self._extend(fam or Family(), variant, planned)
        return fam

    def _extend(self, fam: Family, current: Variant, planned: set[tuple[Variant, Unit, str]]) -> Family:
        """Score the base and every planned variant (``current`` last, so the store still
        holds it for the variant's other properties), add their hypotheses, decide anew."""
        props: dict[tuple[Variant, Unit], set[str]] = {}
        for v, u, p in planned:
            props.setdefault((v, u), set()).add(p)
        units = {v: {u for w, u in props if w == v} for v, _ in props}
        base = self.store.base(current)
        missing = [u for u in self.base_units(set().union(*units.values())) if ("base", u) not in fam.scores]
        if missing:
            for u, s in self.score(base.model, base.tokenizer, missing).items():
                if s.nonfinite:
                    raise VariantError(f"the base model's logits are NaN or inf on {s.nonfinite} {self.unit_name} "
                                       f"items of {self.unit_label(u)}")
                fam.scores[("base", u)] = s
        for v in sorted(units, key=lambda v: (v == current, v.id)):
            todo = [u for u in self.variant_units(units[v]) if (v.id, u) not in fam.scores]
            if v.id in fam.errors:
                continue
            if todo:
                try:
                    got = self.score(self.store.quantized(v), self.store.base(v).tokenizer, todo)
                except Exception as exc:  # noqa: BLE001 - that variant's tests show it, the rest go on
                    fam.errors[v.id] = variant_failure(exc)
                    continue
                fam.scores.update({(v.id, u): s for u, s in got.items()})
            for u in sorted(units[v], key=repr):
                if (v.id, u) not in fam.comparisons and (v.id, u) not in fam.problems:
                    self.add_hypotheses(fam, v, u, props[(v, u)])
        fam.decisions = decide(fam.hypotheses, self.thresholds(), self.config.alpha, self.config.correction)  # type: ignore[arg-type]
        return fam

    def unit_label(self, unit: Unit) -> str:
        return str(unit)

    # -- one test's gates ---------------------------------------------------------------------------

    def gates(self, variant: Variant, task: object = None, **params: str) -> list[Gate]:
        if not self.is_unit(task) or params:
            raise TypeError(f"Expected a {self.unit_name} for property {self.key!r}, but got {task!r} {params}")
        unit = self.unit(task)
        fam = self.family(variant, unit)
        if variant.id in fam.errors:
            raise VariantError(fam.errors[variant.id])
        detail = self.detail(fam, variant, unit)
        thresholds = self.thresholds()
        out = []
        for m in self.spec.metrics:
            threshold = thresholds[m.key]
            if (variant.id, unit) in fam.problems:
                out.append(Gate(m.name, Measurement(float("nan"), None, fam.problems[(variant.id, unit)], detail), threshold))
            elif (variant.id, unit, m.key) in fam.unchecked:
                out.append(Gate(m.name, Measurement(float("nan"), None, None, detail,
                                                    unchecked=fam.unchecked[(variant.id, unit, m.key)]), threshold))
            else:
                h, d = fam.hypotheses[(variant.id, unit, m.key)], fam.decisions[(variant.id, unit, m.key)]
                out.append(Gate(m.name, decided(h, d, self.config.correction, len(fam.hypotheses), **detail,
                                                comparison=fam.comparisons[(variant.id, unit)]), threshold))
        return out

    def unit(self, task: object) -> Unit:
        """The unit a test's parameter names (checked by ``is_unit``)."""
        return task  # type: ignore[return-value]
