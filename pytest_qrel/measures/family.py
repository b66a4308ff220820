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
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Hashable, Literal

import numpy as np

from ..metrics import adjust_pvalues, binomial_pvalue_above, binomial_upper_bound, paired_ttest
from ..store import VariantError, variant_failure
from .base import Gate, Measure, Measurement
from .outputs import Outputs

if TYPE_CHECKING:
    from ..variants import Variant

BOOTSTRAP_RESAMPLES = 200  # enough for a standard error (the p-value: ~5% relative error) and a 95% interval
Unit = Hashable  # what one test of a variant is about: a task name, a (perturbation, intensity)


@dataclass(frozen=True)
class Hypothesis:
    """One gated metric of one variant on one unit: ``value`` > 0 is harm (ECE up,
    true-class confidence down, accuracy down, ...); ``pvalue`` tests no change against change,
    except for a share of samples (``exact_binomial``), whose null is its threshold (see
    ``share_hypothesis``)."""

    key: str  # the metric's catalog key: ece, conf_true, accuracy, ...
    value: float
    base_value: float
    quant_value: float
    pvalue: float
    test: Literal["paired_ttest", "paired_bootstrap", "exact_binomial"]
    ci: tuple[float, float] | None = None  # bootstrap CI of the harm
    se: float = math.nan  # standard error of ``value``: sd of the paired differences / sqrt(n), or the bootstrap's
    n: int = 0  # paired samples (questions, prompts) the test saw
    df: int | None = None  # the t-test's degrees of freedom (None: a normal approximation, the bootstrap)
    events: int | None = None  # for a share (exact_binomial): the samples that show the event


def paired_hypothesis(key: str, base: np.ndarray, quant: np.ndarray, sign: float) -> Hypothesis:
    """A metric that is a mean of per-sample values: its harm ``sign * mean(quant - base)``
    with the paired t-test of paper 003 (Tables 2, 4, 5) and its standard error."""
    t = paired_ttest(quant, base)
    d = quant - base
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.nan
    return Hypothesis(key, sign * float(d.mean()), float(base.mean()), float(quant.mean()), t.pvalue, "paired_ttest",
                      se=se, n=int(d.size), df=int(d.size) - 1)


def share_hypothesis(key: str, events: int, n: int, threshold: float) -> Hypothesis:
    """A metric that is the share of ``n`` samples showing an event (questions whose
    correctness flips, Dutta et al. 2024 §3), with the exact one-sided binomial test of
    H0: share <= threshold. Not a test of no change, as the other gates': the base against
    itself shows no event, so any one event would reject "share = 0"; against the threshold,
    a small p-value says the share is above what is tolerated. ``judge`` passes it only when
    the share is significantly below the threshold (its exact upper bound)."""
    share = events / n
    return Hypothesis(key, share, 0.0, share, binomial_pvalue_above(events, n, threshold), "exact_binomial",
                      se=math.sqrt(share * (1 - share) / n), n=n, events=events)


def share_sample_size(share: float, threshold: float, level: float, limit: int = 10**7) -> int | None:
    """The fewest samples with which a share of ``share`` would be decided at ``level``: its
    exact upper bound below ``threshold`` (PASS), or its exact test against ``threshold``
    significant (FAIL); None at the threshold itself, or beyond ``limit`` samples."""

    def decided(n: int) -> bool:
        k = round(share * n)
        if share < threshold:
            return binomial_upper_bound(k, n, level) < threshold
        return binomial_pvalue_above(k, n, threshold) <= level

    if share == threshold or not decided(limit):
        return None
    low, high = 1, 1
    while not decided(high):
        low, high = high, high * 2
    while high - low > 1:  # the rounding of share * n makes this nearly, not exactly, monotone
        mid = (low + high) // 2
        low, high = (low, mid) if decided(mid) else (mid, high)
    return high


POWER = 0.8  # a PASS says the gate would have caught a harm of its threshold's size this often


def minimum_detectable_effect(h: Hypothesis, level: float) -> float:
    """The smallest harm the two-sided test of ``h`` at ``level`` detects with probability
    ``POWER``: (q(1 - level/2) + q(POWER)) x se, q the t quantile with the test's degrees of
    freedom (the normal one for the bootstrap), as for a paired t-test's sample size (and
    TensorRT-LLM's accuracy gate: alpha, beta, sigma, n). Infinite with no spread to go by."""
    from scipy import stats

    if not h.se > 0:
        return math.inf
    q = stats.t(h.df) if h.df else stats.norm
    return float((q.ppf(1 - level / 2) + q.ppf(POWER)) * h.se)


def judge(h: Hypothesis, d: Decision, correction: str, family_size: int, sample_option: str,
          **detail: object) -> Measurement:
    """A hypothesis and its family-wise decision as a gated measurement. A harm past its
    threshold and significant fails; anything else passes only if the test could have
    detected a harm of the threshold's size at power ``POWER`` at the strictest level the
    correction gives a hypothesis of the family (Bonferroni's alpha / m: Holm's first step,
    BH's smallest); otherwise it is not checked, with the sample size that would suffice."""
    measurement = decided(h, d, correction, family_size, **detail)
    if d.failed:
        return measurement
    level = d.alpha / max(family_size, 1)
    if h.test == "exact_binomial":
        return _judge_share(h, d, measurement, level, correction, family_size, sample_option)
    mde = minimum_detectable_effect(h, level)
    if mde <= d.threshold:
        return replace(measurement, detail={**measurement.detail, "minimum_detectable": mde, "power": POWER})
    if math.isinf(mde):
        why = (f"{h.key}: base and variant do not differ on any of the {h.n or 'its'} samples, so the data show "
               f"nothing of the spread a harm of {d.threshold:g} would have")
    else:
        needed = math.ceil(h.n * (mde / d.threshold) ** 2) if h.n else None
        why = (f"{h.key}: with {h.n} samples the smallest harm this test detects at power {POWER:g} (level "
               f"{level:.2g}: {correction} over {family_size} hypotheses) is {mde:.3g}, above the threshold "
               f"{d.threshold:g}" + (f"; {sample_option} >= {needed} would suffice" if needed else ""))
    return replace(measurement, unchecked=why)


def _judge_share(h: Hypothesis, d: Decision, measurement: Measurement, level: float, correction: str,
                 family_size: int, sample_option: str) -> Measurement:
    """A share that did not fail passes only when the exact one-sided test rejects "share >=
    threshold" at ``level`` (the strictest level of the family, as for the other gates): its
    Clopper-Pearson upper bound is below the threshold, so a share of the threshold's size
    would pass at most that often. Otherwise it is not checked, with the sample size that would
    decide the observed share."""
    assert h.events is not None
    upper = binomial_upper_bound(h.events, h.n, level)
    if upper < d.threshold:
        return replace(measurement, detail={**measurement.detail, "upper_bound": upper, "bound_level": level})
    needed = share_sample_size(h.value, d.threshold, level)
    where = f"level {level:.2g}: {correction} over {family_size} hypotheses"
    if h.value < d.threshold:
        why = (f"{h.key}: with {h.n} samples the share {h.value:.3g} is below the threshold {d.threshold:g}, but "
               f"its exact upper bound {upper:.3g} ({where}) is not, so a share of {d.threshold:g} could not be ruled out")
    else:
        why = (f"{h.key}: with {h.n} samples the share {h.value:.3g} is not below the threshold {d.threshold:g}, nor "
               f"significantly above it (adjusted p = {d.adjusted_pvalue:.3g} > {d.alpha:g}; {where})")
    why += f"; {sample_option} >= {needed} would decide it" if needed else ""
    return replace(measurement, unchecked=why, detail={**measurement.detail, "upper_bound": upper, "bound_level": level})


@dataclass(frozen=True)
class Decision:
    failed: bool
    adjusted_pvalue: float
    alpha: float
    threshold: float


def decide(
    family: dict[tuple, Hypothesis],
    thresholds: dict,
    alpha: dict[str, float],
    correction: Literal["holm", "bh"],
) -> dict[tuple, Decision]:
    """A hypothesis fails when its value exceeds its metric's threshold **and** its p-value,
    adjusted over the whole family (Holm: family-wise error; BH: false discovery rate), is
    at most its metric's level: noise alone does not fail, nor does a significant drift
    too small to matter. ``thresholds`` holds a threshold by metric key, or by hypothesis
    key where it depends on the variant (a flip rate's, per bit-width)."""

    keys = list(family)
    if not keys:
        return {}
    adjusted = adjust_pvalues([family[k].pvalue for k in keys], correction)
    out = {}
    for k, p in zip(keys, adjusted.tolist()):
        h = family[k]
        threshold = thresholds[k] if k in thresholds else thresholds[h.key]
        out[k] = Decision(h.value > threshold and p <= alpha[h.key], p, alpha[h.key], threshold)
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
    thresholds: dict[tuple[str, Unit, str], float] = field(default_factory=dict)  # each hypothesis's
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
        outputs = Outputs(self.config, self.store)
        kind = f"{self.family_key}_scores"
        kept = all(self.describe(u) is not None for u in todo)
        if variant is None:
            base = self.store.base(current)
            got = outputs.get(kind, outputs.model_key(current, base=True) if kept else None, todo, self.describe,
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
            got = outputs.get(kind, outputs.model_key(variant, base=False) if kept else None, todo, self.describe,
                              lambda us: self.score(self.store.quantized(variant), self.store.base(variant).tokenizer, us),
                              self.encode, self.decode, ahead)
        except Exception as exc:  # noqa: BLE001 - that variant's tests show it, the rest go on
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
        return task  # type: ignore[return-value]
