"""Perturbation robustness (paper 000 §3.2, Fig. 3): a variant's generative QA accuracy and
AUROC(-entropy) under each natural perturbation, against the base under the same
perturbation and against its own unperturbed prompts.

As for calibration (family.py is the one mechanism), a model's hypotheses are decided together: the first
robustness test of a model samples the base and every variant of that model in the run on
the unperturbed prompts and on every planned (perturbation, intensity), tests each gated
metric (paired t-test on per-prompt accuracy, paired bootstrap over prompts for AUROC),
and adjusts all p-values of the model at once (--qrel-correction). A harm fails only when
it passes its threshold and is significant. A metric that cannot fail is reported as not
checked (skipped), never passed: an accuracy drop larger than the base's own accuracy, an
AUROC where every answer is right or every one wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence, cast

import numpy as np

from ..data.qa import run_qa_set
from ..errors import VariantError
from ..metrics import auroc_counts, paired_bootstrap, resample_counts
from ..perturb import load_masked_lm, masked_lm_insertion, perturb_prompt
from ..schema import RobustnessComparison, StratumAccuracy
from .base import unreadable
from .family import BOOTSTRAP_RESAMPLES, Family, FamilyMeasure, Hypothesis, Unit, paired_hypothesis
from .generation import (
    GenerationSettings,
    QAScores,
    prompt_seed,
    qa_unknown_share,
    ranking,
    score_qa,
    unknown_word_share,
)
from .outputs import data_digest

if TYPE_CHECKING:
    from ..data.qa import QASet
    from ..perturb import Perturbation
    from ..settings import Robustness
    from ..variants import Variant

CLEAN: tuple[str, int] = ("none", 0)
# An AUROC from fewer right (or wrong) answers than this is not gated: with one right answer
# it is that answer's rank alone, and a bootstrap over it has no meaningful spread.
MIN_CLASS_ANSWERS = 10
Condition = tuple[str, int]  # (perturbation, intensity); CLEAN: the prompts as they are


def condition_id(cond: Condition) -> str:
    return f"{cond[0]}-i{cond[1]}"


def _auroc(correct: np.ndarray, entropy: np.ndarray) -> float:
    value = ranking("auroc", -entropy, correct)
    return np.nan if value is None else value


def _auroc_drop(c_clean: np.ndarray, e_clean: np.ndarray, c_pert: np.ndarray, e_pert: np.ndarray) -> float:
    return _auroc(c_clean, e_clean) - _auroc(c_pert, e_pert)


def _aurocs(idx: np.ndarray, correct: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """``_auroc`` of each bootstrap resample of prompts ``idx`` (k, prompts) at once (a
    prompt's samples come with it)."""
    per_prompt = correct[0].size
    return auroc_counts(-entropy.ravel(), correct.ravel(), resample_counts(idx, len(correct)),
                        np.arange(correct.size) // per_prompt)


def _auroc_drops(idx: np.ndarray, c_clean: np.ndarray, e_clean: np.ndarray, c_pert: np.ndarray,
                 e_pert: np.ndarray) -> np.ndarray:
    return _aurocs(idx, c_clean, e_clean) - _aurocs(idx, c_pert, e_pert)


def hypotheses(base: QAScores, quant: QAScores, base_clean: QAScores, quant_clean: QAScores,
               threshold: dict[str, float], seed: int) -> tuple[dict[str, Hypothesis], dict[str, str]]:
    """The gated metrics of a variant under one perturbation ((key -> hypothesis), and
    (key -> why it cannot be checked)); a value > 0 is harm."""

    out, unchecked = {}, {}
    b, q = base.per_prompt_accuracy, quant.per_prompt_accuracy
    if b.mean() <= threshold["accuracy"]:
        unchecked["accuracy"] = (f"the base's accuracy under this perturbation is {b.mean():.3g}, not above the "
                                 f"threshold {threshold['accuracy']:g}: no drop could pass it")
    else:
        out["accuracy"] = paired_hypothesis("accuracy", b, q, -1.0)
    qc = quant_clean.per_prompt_accuracy
    db, dq = base_clean.per_prompt_accuracy - b, qc - q
    # the most the variant can lose beyond the base: every answer it gets right unperturbed
    worst = float(qc.mean() - db.mean())
    if worst <= threshold["robust_accuracy"]:
        unchecked["robust_accuracy"] = (f"the variant answers {qc.mean():.3g} of the unperturbed prompts right and the "
                                        f"base loses {db.mean():.3g} under this perturbation: even losing every answer "
                                        f"the variant could not pass the threshold {threshold['robust_accuracy']:g}")
    else:
        out["robust_accuracy"] = paired_hypothesis("robust_accuracy", db, dq, 1.0)
    boot: dict[str, Any] = dict(n_resamples=BOOTSTRAP_RESAMPLES, seed=seed, omit_undefined=True)
    # key -> (base's arrays, variant's, the statistic, its batched form over resamples, sign)
    pairs: dict[str, tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], Callable[..., float], Callable[..., np.ndarray], float]] = {
        "auroc": ((base.correct, base.entropy), (quant.correct, quant.entropy), _auroc, _aurocs, -1.0),
        "robust_auroc": ((base_clean.correct, base_clean.entropy, base.correct, base.entropy),
                         (quant_clean.correct, quant_clean.entropy, quant.correct, quant.entropy), _auroc_drop,
                         _auroc_drops, 1.0),
    }
    for key, (a, bq, fn, batch, sign) in pairs.items():
        counts = [(int(c.sum()), int(c.size - c.sum())) for c in (*a[::2], *bq[::2])]
        fewest = min(min(k) for k in counts)
        if fewest < MIN_CLASS_ANSWERS:
            right, wrong = min(k[0] for k in counts), min(k[1] for k in counts)
            unchecked[key] = (f"AUROC needs at least {MIN_CLASS_ANSWERS} right and {MIN_CLASS_ANSWERS} wrong answers "
                              f"from the base and the variant, but one had only {right} right or {wrong} wrong")
            continue
        base_value, quant_value = fn(*a), fn(*bq)
        try:
            r = paired_bootstrap(fn, a, bq, indexed_statistic=batch, **boot)
        except ValueError as exc:
            unchecked[key] = f"AUROC is undefined on most bootstrap resamples ({exc}); too few right or wrong answers"
            continue
        out[key] = Hypothesis(key, sign * r.difference, float(base_value), float(quant_value), r.pvalue,
                              "paired_bootstrap", (sign * r.ci_high, sign * r.ci_low) if sign < 0 else (r.ci_low, r.ci_high),
                              se=r.se, n=len(a[0]))
    return out, unchecked


class RobustnessMeasure(FamilyMeasure):
    """Gates the four robustness metrics of one variant under one (perturbation, intensity)."""

    key = "robustness"
    settings: Robustness  # its entry of config.property_settings
    family_key = "robust_family"
    # what the family computes (generation.py's sampled answers and their scores, the perturbed
    # prompts, this module's hypotheses): in the key of its stored scores; bump it when they
    # change (base.Measure.version)
    version = 1
    members = ("robustness",)
    unit_name = "(perturbation, intensity)"
    sample_option = "--qrel-qa-limit"

    def __init__(self, config, store) -> None:  # config, store: as Measure.__init__
        super().__init__(config, store)
        self._prompts: dict[Condition, tuple[list[str], list[int]]] = {}
        self._insertion_function: Perturbation | None = None  # the masked-LM insertion, once loaded

    def is_unit(self, unit: object) -> bool:
        return isinstance(unit, tuple) and len(unit) == 2

    def unit(self, task: object) -> Condition:
        return (str(task[0]), int(task[1]))  # type: ignore[index]

    def unit_label(self, unit: object) -> str:
        return condition_id(unit)  # type: ignore[arg-type]

    def thresholds(self) -> dict[str, float]:
        return self.settings.threshold

    # -- prompts ------------------------------------------------------------------------------------

    def qa(self) -> QASet:
        """The run's prompts: the QA file or the zoo's, subsampled with --qrel-qa-limit and --qrel-seed."""
        return run_qa_set(self.settings.qa_file, self.settings.qa_limit, self.config.seed)

    def prompts(self, cond: Condition) -> tuple[list[str], list[int]]:
        """The prompts under ``cond`` (scaffolding and answers untouched) and their sampling seeds."""
        if cond not in self._prompts:
            name, intensity = cond
            seed = self.config.seed
            clean = self.qa().prompts
            function = self._insertion() if name == "word_insertion" else None
            perturbed = list(clean) if cond == CLEAN else [perturb_prompt(p, name, intensity, seed, function=function)
                                                           for p in clean]
            self._prompts[cond] = (perturbed, [prompt_seed(seed, name, intensity, p) for p in clean])
        return self._prompts[cond]

    def _insertion(self) -> Perturbation | None:
        """word_insertion by the user's masked LM (--qrel-insertion-model), loaded once; None:
        the shipped word list."""
        path = self.settings.insertion_model
        if path is None:
            return None
        if self._insertion_function is None:
            try:
                self._insertion_function = masked_lm_insertion(*load_masked_lm(path))
            except ValueError as exc:
                raise VariantError(f"--qrel-insertion-model: {exc}") from None
        return self._insertion_function

    def score(self, model, tokenizer, units: list) -> dict[Unit, QAScores]:
        """One model's answers on every condition of ``units``, sampled in one batched run."""
        r = self.settings
        qa, n = self.qa(), len(self.qa())
        prompts, seeds = [], []
        for cond in units:
            p, s = self.prompts(cond)
            prompts += p
            seeds += s
        scored = score_qa(model, tokenizer, prompts, qa.answers * len(units), seeds,
                          GenerationSettings(r.samples, r.temperature, r.max_new_tokens))
        out: dict[Unit, QAScores] = {}  # by condition
        for k, cond in enumerate(units):
            part = slice(k * n, (k + 1) * n)
            out[cond] = QAScores(scored.correct[part], scored.entropy[part], scored.ref_loglik[part],
                                 scored.ref_brier[part], scored.answers[part],
                                 None if scored.finite is None else scored.finite[part])
        return out

    def base_units(self, units: set) -> list:
        return sorted(units | {CLEAN})

    def describe(self, unit: object) -> dict:
        r = self.settings
        prompts, seeds = self.prompts(unit)  # type: ignore[arg-type]
        return {"prompts": data_digest(prompts, seeds, self.qa().answers),
                "generation": [r.samples, r.temperature, r.max_new_tokens]}

    def decode(self, arrays: dict) -> QAScores:
        return QAScores.from_arrays(arrays)

    def variant_units(self, units: set) -> list:
        return [CLEAN, *sorted(units - {CLEAN})]

    def add_hypotheses(self, fam: Family, variant: Variant, unit: object, props: set[str]) -> None:
        cond: Condition = unit  # type: ignore[assignment]
        q, qc = fam.scores[(variant.id, cond)], fam.scores[(variant.id, CLEAN)]
        if q.nonfinite or qc.nonfinite:
            fam.problems[(variant.id, cond)] = (f"NaN or inf logits on {q.nonfinite} of {len(q.correct)} prompts under "
                                                f"{condition_id(cond)} and {qc.nonfinite} unperturbed")
            return
        b, bc = fam.scores[("base", cond)], fam.scores[("base", CLEAN)]
        hyps, why = hypotheses(b, q, bc, qc, self.thresholds(), self.config.seed)
        qa = self.qa()
        unknown = unreadable(qa_unknown_share(self.store.base(variant).tokenizer, qa.prompts, qa.answers),
                             f"the QA prompts and answers ({qa.name})")
        if unknown:  # every gate of the model's prompts: answers to unknown tokens say nothing about it
            why, hyps = {k: unknown for k in (*hyps, *why)}, {}
        fam.hypotheses.update({(variant.id, cond, k): h for k, h in hyps.items()})
        fam.unchecked.update({(variant.id, cond, k): w for k, w in why.items()})
        comparison: RobustnessComparison = {"base": b.summary(), "quantized": q.summary(),
                                            "base_unperturbed": bc.summary(), "quantized_unperturbed": qc.summary()}
        if self.qa().strata:
            comparison["strata"] = stratum_accuracy(self.qa().strata, base=b, quantized=q, base_unperturbed=bc,
                                                    quantized_unperturbed=qc)
        fam.comparisons[(variant.id, cond)] = comparison

    def unknown_share(self, variant: Variant, cond: Condition) -> tuple[int, int]:
        return unknown_word_share(self.store.base(variant).tokenizer, self.qa().prompts, self.prompts(cond)[0])

    def detail(self, fam: Family, variant: Variant, unit: object) -> dict:
        cond: Condition = unit  # type: ignore[assignment]
        r = self.settings
        words, unknown = self.unknown_share(variant, cond)
        return {
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


def stratum_accuracy(strata: Sequence[str], **scores: QAScores) -> dict[str, StratumAccuracy]:
    """Per stratum of the prompts (paper 002's recall / utilization): its prompt count and the
    accuracy of each of ``scores`` (schema.StratumAccuracy's: base, quantized and both
    unperturbed) over its prompts' sampled answers."""
    labels = np.asarray(strata)
    out: dict[str, StratumAccuracy] = {}
    for stratum in sorted(set(strata)):
        rows = labels == stratum
        out[stratum] = cast(StratumAccuracy, {"prompts": int(rows.sum()),
                                              **{k: float(v.correct[rows].mean()) for k, v in scores.items()}})
    return out
