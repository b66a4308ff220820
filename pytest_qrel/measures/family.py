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
from typing import TYPE_CHECKING, AbstractSet, Any, Callable, ClassVar, Mapping, cast

from ..errors import VariantError, variant_failure
from ..model_state import ModelState
from .base import Gate, Measure, Measurement
from .hypotheses import (  # noqa: F401  (re-exported: the families and the tests import them from here)
    BOOTSTRAP_RESAMPLES,
    POWER,
    Decision,
    Hypothesis,
    Unit,
    decide,
    decided,
    judge,
    minimum_detectable_effect,
    paired_hypothesis,
    share_hypothesis,
    share_sample_size,
)

if TYPE_CHECKING:
    from ..variants import Variant

@dataclass
class Family:
    """What a model's family left behind, by variant id ("base" for the base) and unit (and
    metric key): scores, hypotheses and their decisions, metrics that cannot be checked and
    why, report-only comparisons, NaN problems, and the variants that could not be scored."""

    scores: dict[tuple[str, Unit], Any] = field(default_factory=dict)
    hypotheses: dict[tuple[str, Unit, str], Hypothesis] = field(default_factory=dict)
    thresholds: dict[tuple[str, Unit, str], float] = field(default_factory=dict)  # each hypothesis's
    decisions: dict[tuple, Decision] = field(default_factory=dict)
    unchecked: dict[tuple[str, Unit, str], str] = field(default_factory=dict)
    comparisons: dict[tuple[str, Unit], Mapping[str, Any]] = field(default_factory=dict)  # schema.DriftComparison, ...
    problems: dict[tuple[str, Unit], str] = field(default_factory=dict)  # NaN logits
    errors: dict[str, str] = field(default_factory=dict)  # variant id -> one-line reason

    def has(self, variant: Variant, unit: Unit) -> bool:
        """Whether the family has decided (or failed) ``variant`` on ``unit``."""
        return ((variant.id, unit) in self.comparisons or (variant.id, unit) in self.problems
                or variant.id in self.errors)


@dataclass
class FamilyState(ModelState):
    """What the family measures keep per base model (dropped with the base when the store moves on)."""

    # each family of the model by its measures' family_key (calibration and confidence share
    # one): made at the family's first test, extended when a test asks for what it lacks
    families: dict[str, Family] = field(default_factory=dict)


class FamilyMeasure(Measure):
    """A property decided family-wise per model. Subclasses say which catalog properties share
    the family (``members``), how a model is scored on units, and which hypotheses a variant's
    scores give; this class plans, scores every variant once, corrects and answers each test."""

    family_key: ClassVar[str]  # the family's key in FamilyState.families (members share it)
    members: ClassVar[tuple[str, ...]]  # results.json properties decided in one family

    def __init__(self, config, store) -> None:  # config, store: as Measure.__init__
        super().__init__(config, store)
        self._planned: set[tuple[Variant, Unit, str]] = set()

    def plan(self, planned: AbstractSet[tuple[Variant, object, str]]) -> None:
        """Every measure of the run gets the same set; the members of a family keep theirs."""
        self._planned = {(v, u, p) for v, u, p in planned if p in self.members and self.is_unit(u)}

    def measure(self, variant: Variant) -> Measurement:
        raise TypeError(f"{self.key} is gated per metric and {self.unit_name}: use gates(variant, unit)")

    # -- what a subclass says -----------------------------------------------------------------------

    unit_name: ClassVar[str] = "task"
    sample_option: ClassVar[str] = "--qrel-task-limit"  # what sets the samples a unit has

    def is_unit(self, unit: object) -> bool:
        return isinstance(unit, str)

    @abstractmethod
    def thresholds(self) -> dict[str, float]:
        """Threshold by metric key of every member's metrics that have one for every variant."""

    def variant_thresholds(self, variant: Variant) -> dict[str, float]:
        """Threshold by metric key of the metrics gated on ``variant``: ``thresholds()``, and
        those that depend on the variant; a metric that is off (no threshold) is absent."""
        return self.thresholds()

    @abstractmethod
    def score(self, model, tokenizer, units: list[Unit]) -> dict[Unit, Any]:
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
        self.store.base(variant)  # held before its state is asked for (VariantError if it cannot load)
        state = self.store.state(variant, FamilyState)
        fam = state.families.get(self.family_key)
        if fam is None or not fam.has(variant, unit):
            # the model's planned tests, and this one (a test nobody planned, e.g. called directly)
            planned = {(v, u, p) for v, u, p in self._planned if v.model == variant.model and not v.skip_reason}
            planned.add((variant, unit, self.property))
            state.families[self.family_key] = fam = self._extend(fam or Family(), variant, planned)
        return fam

    def _extend(self, fam: Family, current: Variant, planned: set[tuple[Variant, Unit, str]]) -> Family:
        """Score the base and every planned variant, add their hypotheses, decide anew. Scores
        are outputs (outputs.py): computed once across workers and reruns; what another worker
        is computing now is waited for last, after everything this one can do meanwhile."""
        props: dict[tuple[Variant, Unit], set[str]] = {}
        for v, u, p in planned:
            props.setdefault((v, u), set()).add(p)
        units = {v: {u for w, u in props if w == v} for v, _ in props}
        self.store.base(current)  # a base that cannot load fails every test of its model, here
        jobs: list[tuple[Variant | None, list[Unit]]] = []
        missing = [u for u in self.base_units(set().union(*units.values())) if ("base", u) not in fam.scores]
        if missing:
            jobs.append((None, missing))
        for v in sorted(units, key=lambda v: (v == current, v.id)):  # current last: the store keeps it
            todo = [u for u in self.variant_units(units[v]) if (v.id, u) not in fam.scores]
            if todo and v.id not in fam.errors:
                jobs.append((v, todo))
        deferred = [job for job in jobs if not self._score_job(fam, current, *job, ahead=True)]
        for job in deferred:
            self._score_job(fam, current, *job, ahead=False)
        for v in sorted(units, key=lambda v: v.id):
            if v.id in fam.errors:
                continue
            limits = self.variant_thresholds(v)
            for u in sorted(units[v], key=repr):
                if (v.id, u) not in fam.comparisons and (v.id, u) not in fam.problems:
                    self.add_hypotheses(fam, v, u, props[(v, u)])
                    fam.thresholds.update({k: limits[k[2]] for k in fam.hypotheses if k[:2] == (v.id, u)})
        fam.decisions = decide(fam.hypotheses, fam.thresholds, self.config.alpha, self.config.correction)  # type: ignore[arg-type]
        return fam

    def _score_job(self, fam: Family, current: Variant, variant: Variant | None, todo: list[Unit], ahead: bool) -> bool:
        """Scores of the base (``variant`` None) or of ``variant`` on ``todo`` into ``fam``;
        False if ``ahead`` and another process is computing them now."""
        outputs = self.outputs()
        kind = f"{self.family_key}_scores"
        kept = all(self.describe(u) is not None for u in todo)
        # outputs.get describes a unit only to key what it keeps: with a model key, i.e. when kept
        describe = cast("Callable[[Unit], dict[str, Any]]", self.describe)
        if variant is None:
            base = self.store.base(current)
            got = outputs.get(kind, outputs.model_key(current, base=True) if kept else None, todo, describe,
                              lambda us: self.score(base.model, base.tokenizer, us), self.encode, self.decode, ahead)
            if got is None:
                return False
            for u, s in got.items():
                if s.nonfinite:
                    raise VariantError(f"the base model's logits are NaN or inf on {s.nonfinite} {self.unit_name} "
                                       f"items of {self.unit_label(u)}")
                fam.scores[("base", u)] = s
            return True
        try:
            got = outputs.get(kind, outputs.model_key(variant, base=False) if kept else None, todo, describe,
                              lambda us: self.score(self.store.quantized(variant), self.store.base(variant).tokenizer, us),
                              self.encode, self.decode, ahead)
        except Exception as exc:  # that variant's tests show it, the rest go on
            fam.errors[variant.id] = variant_failure(exc)
            return True
        if got is None:
            return False
        fam.scores.update({(variant.id, u): s for u, s in got.items()})
        return True

    def describe(self, unit: Unit) -> dict[str, Any] | None:
        """Everything a model's score on ``unit`` depends on besides the model: the data's
        content and the settings (the key of the stored score, outputs.py). None (this
        default, e.g. a plugin's family): its scores are not kept, each process computes them."""
        return None

    @staticmethod
    def encode(score: Any) -> dict[str, Any]:
        """The arrays of a score that ``decode`` reads back (``score.arrays()``)."""
        return score.arrays()

    def decode(self, arrays: dict[str, Any]) -> Any:
        """A score read back from the arrays ``encode`` stored."""
        raise NotImplementedError(f"{type(self).__name__} describes its scores but cannot read them back")

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
        if variant not in self.store.info:  # its scores were read back: what it is, for its records
            self.store.quantized(variant)
        detail = self.detail(fam, variant, unit)
        thresholds = self.variant_thresholds(variant)
        out = []
        for m in self.spec.metrics:
            if m.key not in thresholds:  # off: an optional gate whose option is not given
                continue
            threshold = thresholds[m.key]
            if (variant.id, unit) in fam.problems:
                out.append(Gate(m.name, Measurement(float("nan"), None, fam.problems[(variant.id, unit)], detail), threshold))
            elif (variant.id, unit, m.key) in fam.unchecked:
                # not checked, but what was measured is kept for the report's tables
                shown = {**detail, "comparison": fam.comparisons[(variant.id, unit)]}
                out.append(Gate(m.name, Measurement(float("nan"), None, None, shown,
                                                    unchecked=fam.unchecked[(variant.id, unit, m.key)]), threshold))
            else:
                h, d = fam.hypotheses[(variant.id, unit, m.key)], fam.decisions[(variant.id, unit, m.key)]
                out.append(Gate(m.name, judge(h, d, self.config.correction, len(fam.hypotheses), self.sample_option,
                                              **detail, comparison=fam.comparisons[(variant.id, unit)]), threshold))
        return out

    def unit(self, task: object) -> Unit:
        """The unit a test's parameter names (checked by ``is_unit``)."""
        return task
