"""The calibration and confidence gates' shared work: every variant of a model scored on
every task once, all its hypotheses tested together, each test's decision looked up.

Why all at once: a multiple-comparison correction (Holm, Benjamini-Hochberg) decides one
hypothesis from the p-values of its whole family, but pytest decides a test when it runs.
All variants of a model run on one process (one xdist group per model), so the first
calibration or confidence test of a model scores every variant of that model that the run
tests, keeps only the per-question arrays, and decides the family: the hypotheses
(variant x task x gated metric) of that model. Every later test of the model reads its
decision; no test's outcome depends on the order in which tests run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..store import VariantError, variant_failure
from .base import Measure, Measurement
from .drift import GATED, Decision, Hypothesis, comparison, decide, decided, hypotheses

if TYPE_CHECKING:
    from ..data.tasks import ChoiceTask
    from ..variants import Variant
    from .choices import ChoiceScores


@dataclass
class Family:
    """What a model's family left behind: per (variant id, task) the comparison and the
    hypotheses, per (variant id, task, metric key) the decision; errors by variant id."""

    hypotheses: dict[tuple[str, str, str], Hypothesis] = field(default_factory=dict)
    decisions: dict[tuple[str, str, str], Decision] = field(default_factory=dict)
    comparisons: dict[tuple[str, str], dict] = field(default_factory=dict)
    problems: dict[tuple[str, str], str] = field(default_factory=dict)  # NaN logits
    errors: dict[str, str] = field(default_factory=dict)  # variant id -> one-line reason


class ChoiceDriftMeasure(Measure):
    """Gates drift from the base on multiple-choice tasks (paper 003); calibration and
    confidence subclass it with their metrics."""

    def __init__(self, config, store) -> None:  # noqa: ANN001 - as Measure
        super().__init__(config, store)
        self._planned: set[tuple[Variant, str | None, str]] = set()
        self._tasks: dict[str, ChoiceTask] = {}

    def plan(self, planned: set[tuple[Variant, str | None, str]]) -> None:
        """Every measure of the run gets the same set, so both properties build one family."""
        self._planned = {p for p in planned if p[2] in GATED}

    def threshold(self, variant: Variant) -> float:
        raise TypeError(f"{self.property} is gated per metric and task: use gates(variant, task)")

    def measure(self, variant: Variant) -> Measurement:
        raise TypeError(f"{self.property} is measured per task: use gates(variant, task)")

    # -- tasks and scores -------------------------------------------------------------------------

    def task(self, name: str) -> ChoiceTask:
        """The run's questions of task ``name``: subsampled with --qrel-task-limit and --qrel-seed."""
        from ..data.tasks import load_task

        ref = next((r for r in self.config.tasks if r.name == name), None)
        if ref is None:
            raise ValueError(f"Expected a task of --qrel-tasks ({', '.join(r.name for r in self.config.tasks)}), but got {name!r}")
        if name not in self._tasks:
            self._tasks[name] = load_task(ref).subsample(self.config.task_limit, self.config.seed)
        return self._tasks[name]

    def base_scores(self, variant: Variant, task: str) -> ChoiceScores:
        """The base model's scores on ``task``, once per model (the store's per-model scratch)."""
        from .choices import score_task

        scratch = self.store.scratch(variant).setdefault("choice_base_scores", {})
        if task not in scratch:
            base = self.store.base(variant)
            scratch[task] = score_task(base.model, base.tokenizer, self.task(task))
            if scratch[task].nonfinite:
                raise VariantError(f"the base model's logits are NaN or inf on {scratch[task].nonfinite} questions of {task}")
        return scratch[task]

    # -- the family ------------------------------------------------------------------------------

    def family(self, variant: Variant, task: str) -> Family:
        scratch = self.store.scratch(variant)
        if "choice_family" not in scratch:
            scratch["choice_family"] = self._build_family(variant, task)
        fam: Family = scratch["choice_family"]
        if (variant.id, task) not in fam.comparisons and variant.id not in fam.errors and (variant.id, task) not in fam.problems:
            # a test nobody planned (e.g. called directly): its own family of one (variant, task)
            scratch["choice_family"] = fam = self._extend(fam, variant, [(variant, task, self.property)])
        return fam

    def _build_family(self, variant: Variant, task: str) -> Family:
        planned = [p for p in self._planned if p[0].model == variant.model and not p[0].skip_reason]
        if not any(p[0] == variant and p[1] == task for p in planned):
            planned.append((variant, task, self.property))
        return self._extend(Family(), variant, planned)

    def _extend(self, fam: Family, current: Variant, planned: list[tuple[Variant, str | None, str]]) -> Family:
        """Score every planned variant (``current`` last, so the store still holds it for
        the variant's other properties) on its planned tasks, and decide the family anew."""
        props: dict[tuple[Variant, str], set[str]] = {}
        for v, t, prop in planned:
            props.setdefault((v, str(t)), set()).add(prop)
        variants = sorted({v for v, _ in props}, key=lambda v: (v == current, v.id))
        from .choices import score_task

        for v in variants:
            tasks = sorted(t for (w, t) in props if w == v)
            try:
                model = self.store.quantized(v)
                tokenizer = self.store.base(v).tokenizer
                scores = {t: score_task(model, tokenizer, self.task(t)) for t in tasks}
            except Exception as exc:  # noqa: BLE001 - that variant's tests show it, the rest go on
                fam.errors[v.id] = variant_failure(exc)
                continue
            for t in tasks:
                q = scores[t]
                if q.nonfinite:
                    fam.problems[(v.id, t)] = f"NaN or inf logits on {q.nonfinite} of {len(q.labels)} questions of {t}"
                    continue
                base = self.base_scores(v, t)
                fam.comparisons[(v.id, t)] = comparison(base, q)
                hyps = hypotheses(base, q, seed=self.config.seed)
                for prop in props[(v, t)]:
                    for key in GATED[prop]:
                        fam.hypotheses[(v.id, t, key)] = hyps[key]
        fam.decisions = decide(fam.hypotheses, self.config.drift_threshold, self.config.alpha, self.config.correction)  # type: ignore[arg-type]
        return fam

    # -- one test's gates --------------------------------------------------------------------------

    def gates(self, variant: Variant, task: str | None = None) -> list[tuple[str, Measurement, float]]:
        if task is None:
            raise TypeError(f"Expected a task for property {self.property!r}, but got none")
        self.task(task)  # an unknown task name is an error here, before any model is loaded
        fam = self.family(variant, task)
        if variant.id in fam.errors:
            raise VariantError(fam.errors[variant.id])
        out = []
        for key, metric in GATED[self.property].items():
            threshold = self.config.drift_threshold[key]
            if (variant.id, task) in fam.problems:
                out.append((metric, Measurement(float("nan"), None, fam.problems[(variant.id, task)], {"task": task}), threshold))
                continue
            h, d = fam.hypotheses[(variant.id, task, key)], fam.decisions[(variant.id, task, key)]
            measurement = decided(h, d, self.config.correction, len(fam.hypotheses), task=task,
                                  stratum=self.task(task).stratum, questions=len(self.task(task)),
                                  comparison=fam.comparisons[(variant.id, task)])
            out.append((metric, measurement, threshold))
        return out

