"""Perturbation robustness (paper 000 §3.2, Fig. 3): a variant's generative QA accuracy and
AUROC(-entropy) under each natural perturbation, against the base under the same
perturbation and against its own unperturbed prompts.

As for calibration (see family.py), a model's hypotheses are decided together: the first
robustness test of a model samples the base and every variant of that model in the run on
the unperturbed prompts and on every planned (perturbation, intensity), tests each gated
metric (paired t-test on per-prompt accuracy, paired bootstrap over prompts for AUROC),
and adjusts all p-values of the model at once (--qrel-correction). A harm fails only when
it passes its threshold and is significant. A metric that cannot fail is reported as not
checked (skipped), never passed: an accuracy drop larger than the base's own accuracy, an
AUROC where every answer is right or every one wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..store import VariantError, variant_failure
from .base import Measure, Measurement
from .drift import BOOTSTRAP_RESAMPLES, Hypothesis, decide, decided

if TYPE_CHECKING:
    from ..data.qa import QASet
    from ..variants import Variant
    from .generation import QAScores

# gated metrics: key in options (thresholds, levels) -> results.json metric
ROBUST_GATED: dict[str, str] = {
    "accuracy": "accuracy_drop",
    "auroc": "auroc_drop",
    "robust_accuracy": "robust_accuracy_drop",
    "robust_auroc": "robust_auroc_drop",
}
CLEAN: tuple[str, int] = ("none", 0)
# An AUROC from fewer right (or wrong) answers than this is not gated: with one right answer
# it is that answer's rank alone, and a bootstrap over it has no meaningful spread.
MIN_CLASS_ANSWERS = 10
Condition = tuple[str, int]  # (perturbation, intensity); CLEAN: the prompts as they are


def condition_id(cond: Condition) -> str:
    return f"{cond[0]}-i{cond[1]}"


@dataclass
class RobustFamily:
    """What a model's family left behind, by variant id and condition (and metric key)."""

    scores: dict[tuple[str, Condition], QAScores] = field(default_factory=dict)  # "base" for the base
    hypotheses: dict[tuple[str, Condition, str], Hypothesis] = field(default_factory=dict)
    unchecked: dict[tuple[str, Condition, str], str] = field(default_factory=dict)
    decisions: dict = field(default_factory=dict)
    problems: dict[tuple[str, Condition], str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _auroc(correct: np.ndarray, entropy: np.ndarray) -> float:
    from .generation import ranking

    value = ranking("auroc", -entropy, correct)
    return np.nan if value is None else value


def _auroc_drop(c_clean: np.ndarray, e_clean: np.ndarray, c_pert: np.ndarray, e_pert: np.ndarray) -> float:
    return _auroc(c_clean, e_clean) - _auroc(c_pert, e_pert)


def hypotheses(base: QAScores, quant: QAScores, base_clean: QAScores, quant_clean: QAScores,
               threshold: dict[str, float], seed: int) -> tuple[dict[str, Hypothesis], dict[str, str]]:
    """The gated metrics of a variant under one perturbation ((key -> hypothesis), and
    (key -> why it cannot be checked)); a value > 0 is harm."""
    from ..metrics import paired_bootstrap, paired_ttest

    out, unchecked = {}, {}
    b, q = base.per_prompt_accuracy, quant.per_prompt_accuracy
    if b.mean() <= threshold["accuracy"]:
        unchecked["accuracy"] = (f"the base's accuracy under this perturbation is {b.mean():.3g}, not above the "
                                 f"threshold {threshold['accuracy']:g}: no drop could pass it")
    else:
        t = paired_ttest(q, b)
        out["accuracy"] = Hypothesis("accuracy", float(np.mean(b - q)), float(b.mean()), float(q.mean()), t.pvalue, "paired_ttest")
    db, dq = base_clean.per_prompt_accuracy - b, quant_clean.per_prompt_accuracy - q
    t = paired_ttest(dq, db)
    out["robust_accuracy"] = Hypothesis("robust_accuracy", float(np.mean(dq - db)), float(db.mean()), float(dq.mean()),
                                        t.pvalue, "paired_ttest")
    boot = dict(n_resamples=BOOTSTRAP_RESAMPLES, seed=seed, omit_undefined=True)
    pairs = {
        "auroc": ((base.correct, base.entropy), (quant.correct, quant.entropy), _auroc, -1.0),
        "robust_auroc": ((base_clean.correct, base_clean.entropy, base.correct, base.entropy),
                         (quant_clean.correct, quant_clean.entropy, quant.correct, quant.entropy), _auroc_drop, 1.0),
    }
    for key, (a, bq, fn, sign) in pairs.items():
        counts = [(int(c.sum()), int(c.size - c.sum())) for c in (*a[::2], *bq[::2])]
        fewest = min(min(k) for k in counts)
        if fewest < MIN_CLASS_ANSWERS:
            right, wrong = min(k[0] for k in counts), min(k[1] for k in counts)
            unchecked[key] = (f"AUROC needs at least {MIN_CLASS_ANSWERS} right and {MIN_CLASS_ANSWERS} wrong answers "
                              f"from the base and the variant, but one had only {right} right or {wrong} wrong")
            continue
        base_value, quant_value = fn(*a), fn(*bq)
        try:
            r = paired_bootstrap(fn, a, bq, **boot)
        except ValueError as exc:
            unchecked[key] = f"AUROC is undefined on most bootstrap resamples ({exc}); too few right or wrong answers"
            continue
        out[key] = Hypothesis(key, sign * r.difference, float(base_value), float(quant_value), r.pvalue,
                              "paired_bootstrap", (sign * r.ci_high, sign * r.ci_low) if sign < 0 else (r.ci_low, r.ci_high))
    return out, unchecked


class RobustnessMeasure(Measure):
    """Gates the four robustness metrics of one variant under one (perturbation, intensity)."""

    property = "robustness"
    metric = "accuracy_drop"

    def __init__(self, config, store) -> None:  # noqa: ANN001 - as Measure
        super().__init__(config, store)
        self._planned: set[tuple[Variant, Condition]] = set()
        self._prompts: dict[Condition, tuple[list[str], list[int]]] = {}
        self._prompts_by: dict[str, object] = {}  # the masked-LM insertion, once loaded

    def plan(self, planned: set) -> None:
        self._planned = {(v, t) for v, t, prop in planned if prop == self.property and isinstance(t, tuple)}

    def threshold(self, variant: Variant) -> float:
        raise TypeError("robustness is gated per metric and perturbation: use gates(variant, (name, intensity))")

    def measure(self, variant: Variant) -> Measurement:
        raise TypeError("robustness is measured per perturbation: use gates(variant, (name, intensity))")

    # -- prompts ------------------------------------------------------------------------------------

    def qa(self) -> QASet:
        """The run's prompts: the QA file or the zoo's, subsampled with --qrel-qa-limit and --qrel-seed."""
        from ..data.qa import run_qa_set

        return run_qa_set(self.config.robustness.qa_file, self.config.robustness.qa_limit, self.config.seed)

    def prompts(self, cond: Condition) -> tuple[list[str], list[int]]:
        """The prompts under ``cond`` (scaffolding and answers untouched) and their sampling seeds."""
        if cond not in self._prompts:
            from ..perturb import perturb_prompt
            from .generation import prompt_seed

            name, intensity = cond
            seed = self.config.seed
            clean = self.qa().prompts
            function = self._insertion() if name == "word_insertion" else None
            perturbed = list(clean) if cond == CLEAN else [perturb_prompt(p, name, intensity, seed, function=function)
                                                           for p in clean]
            self._prompts[cond] = (perturbed, [prompt_seed(seed, name, intensity, p) for p in clean])
        return self._prompts[cond]

    def _insertion(self):  # noqa: ANN202 - a Perturbation, or None for the shipped word list
        """word_insertion by the user's masked LM (--qrel-insertion-model), loaded once."""
        path = self.config.robustness.insertion_model
        if path is None:
            return None
        if "insertion" not in self._prompts_by:
            from ..perturb import load_masked_lm, masked_lm_insertion

            try:
                self._prompts_by["insertion"] = masked_lm_insertion(*load_masked_lm(path))
            except ValueError as exc:
                raise VariantError(f"--qrel-insertion-model: {exc}") from None
        return self._prompts_by["insertion"]

    def scores(self, model, tokenizer, conds: list[Condition]) -> dict[Condition, QAScores]:  # noqa: ANN001
        """One model's answers on every condition of ``conds``, sampled in one batched run."""
        from .generation import GenerationSettings, QAScores, score_qa

        r = self.config.robustness
        qa, n = self.qa(), len(self.qa())
        prompts, seeds = [], []
        for cond in conds:
            p, s = self.prompts(cond)
            prompts += p
            seeds += s
        scored = score_qa(model, tokenizer, prompts, qa.answers * len(conds), seeds,
                          GenerationSettings(r.samples, r.temperature, r.max_new_tokens))
        out = {}
        for k, cond in enumerate(conds):
            part = slice(k * n, (k + 1) * n)
            out[cond] = QAScores(scored.correct[part], scored.entropy[part], scored.ref_loglik[part],
                                 scored.ref_brier[part], scored.answers[part], scored.finite[part])
        return out

    def unknown_share(self, variant: Variant, cond: Condition) -> tuple[int, int]:
        from .generation import unknown_word_share

        return unknown_word_share(self.store.base(variant).tokenizer, self.qa().prompts, self.prompts(cond)[0])

    # -- the family ----------------------------------------------------------------------------------

    def family(self, variant: Variant, cond: Condition) -> RobustFamily:
        scratch = self.store.scratch(variant)
        fam: RobustFamily | None = scratch.get("robust_family")
        if fam is None or (variant.id, cond) not in fam.scores and variant.id not in fam.errors:
            planned = {(v, c) for v, c in self._planned if v.model == variant.model and not v.skip_reason}
            planned.add((variant, cond))
            scratch["robust_family"] = fam = self._build(fam or RobustFamily(), variant, planned)
        return fam

    def _build(self, fam: RobustFamily, current: Variant, planned: set[tuple[Variant, Condition]]) -> RobustFamily:
        """Sample the base and every planned variant (``current`` last, so the store still
        holds it for its other properties), test every hypothesis, decide them together."""
        conds = {v: sorted({c for w, c in planned if w == v} - {CLEAN}) for v, _ in planned}
        everything = sorted({c for cs in conds.values() for c in cs} | {CLEAN})
        base = self.store.base(current)
        missing = [c for c in everything if ("base", c) not in fam.scores]
        if missing:
            for cond, s in self.scores(base.model, base.tokenizer, missing).items():
                if s.nonfinite:
                    raise VariantError(f"the base model's logits are NaN or inf on {condition_id(cond)} prompts")
                fam.scores[("base", cond)] = s
        r = self.config.robustness
        for v in sorted(conds, key=lambda v: (v == current, v.id)):
            todo = [c for c in [CLEAN, *conds[v]] if (v.id, c) not in fam.scores]
            if not todo:
                continue
            try:
                got = self.scores(self.store.quantized(v), self.store.base(v).tokenizer, todo)
            except Exception as exc:  # noqa: BLE001 - that variant's tests show it, the rest go on
                fam.errors[v.id] = variant_failure(exc)
                continue
            fam.scores.update({(v.id, c): s for c, s in got.items()})
            for cond in conds[v]:
                q, qc = fam.scores[(v.id, cond)], fam.scores[(v.id, CLEAN)]
                if q.nonfinite or qc.nonfinite:
                    fam.problems[(v.id, cond)] = (f"NaN or inf logits on {q.nonfinite} of {len(q.correct)} prompts under "
                                                  f"{condition_id(cond)} and {qc.nonfinite} unperturbed")
                    continue
                hyps, why = hypotheses(fam.scores[("base", cond)], q, fam.scores[("base", CLEAN)], qc,
                                       r.threshold, self.config.seed)
                fam.hypotheses.update({(v.id, cond, k): h for k, h in hyps.items()})
                fam.unchecked.update({(v.id, cond, k): w for k, w in why.items()})
        fam.decisions = decide(fam.hypotheses, r.threshold, self.config.alpha, self.config.correction)  # type: ignore[arg-type]
        return fam

    # -- one test's gates ------------------------------------------------------------------------------

    def gates(self, variant: Variant, task=None, **params: str) -> list[tuple[str, Measurement, float]]:  # noqa: ANN001
        if not (isinstance(task, tuple) and len(task) == 2):
            raise TypeError(f"Expected a (perturbation, intensity) for property robustness, but got {task!r}")
        cond: Condition = (str(task[0]), int(task[1]))
        fam = self.family(variant, cond)
        if variant.id in fam.errors:
            raise VariantError(fam.errors[variant.id])
        r = self.config.robustness
        words, unknown = self.unknown_share(variant, cond)
        common = {
            "perturbation": cond[0],
            "intensity": cond[1],
            "prompts": len(self.qa()),
            "samples": r.samples,
            "perturbed_words": words,
            "unknown_words": unknown,
            **({"inserted_by": f"the masked LM at {r.insertion_model}" if r.insertion_model else
                "the shipped list of semantically light words (no --qrel-insertion-model)"}
               if cond[0] == "word_insertion" else {}),
        }
        if (variant.id, cond) in fam.problems:
            return [(m, Measurement(float("nan"), None, fam.problems[(variant.id, cond)], common), r.threshold[k])
                    for k, m in ROBUST_GATED.items()]
        summaries = {
            "base": fam.scores[("base", cond)].summary(),
            "quantized": fam.scores[(variant.id, cond)].summary(),
            "base_unperturbed": fam.scores[("base", CLEAN)].summary(),
            "quantized_unperturbed": fam.scores[(variant.id, CLEAN)].summary(),
        }
        out = []
        for key, metric in ROBUST_GATED.items():
            threshold = r.threshold[key]
            if (variant.id, cond, key) in fam.unchecked:
                out.append((metric, Measurement(float("nan"), None, None, common,
                                                unchecked=fam.unchecked[(variant.id, cond, key)]), threshold))
                continue
            h, d = fam.hypotheses[(variant.id, cond, key)], fam.decisions[(variant.id, cond, key)]
            out.append((metric, decided(h, d, self.config.correction, len(fam.hypotheses), **common,
                                        comparison=summaries), threshold))
        return out
