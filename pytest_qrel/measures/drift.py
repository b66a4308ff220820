"""Drift of a quantized variant from its base on multiple-choice tasks (paper 003): the gated
hypotheses of one task (a value in the harmful direction and its paired test's p-value), the
report-only comparisons, and the calibration and confidence family that decides them: one
measure (``ChoiceDriftMeasure``) registered under both catalog keys (``CalibrationMeasure``,
``ConfidenceMeasure``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import numpy as np

from ..data.tasks import load_task
from ..engine import encode_pairs, unknown_share
from ..metrics import (
    adaptive_calibration_error,
    adaptive_calibration_error_resamples,
    confidence_shift_by_bin,
    correctness_flips,
    entropy,
    expected_calibration_error,
    expected_calibration_error_rows,
    js_distance,
    paired_bootstrap,
    paired_ttest,
)
from .base import unreadable
from .choices import N_BINS, ChoiceScores, score_task, summary
from .family import BOOTSTRAP_RESAMPLES, Family, FamilyMeasure, Hypothesis, paired_hypothesis, share_hypothesis
from .outputs import data_digest

if TYPE_CHECKING:
    from ..data.types import ChoiceTask
    from ..schema import ChoiceSummary, DriftComparison, Flips
    from ..variants import Variant


def _ece(probs: np.ndarray, correct: np.ndarray) -> float:
    return expected_calibration_error(probs.max(axis=1), correct, n_bins=N_BINS)


def _eces(idx: np.ndarray, probs: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """``_ece`` of each resample of questions ``idx`` (k, questions) at once."""
    return expected_calibration_error_rows(probs.max(axis=1)[idx], correct[idx], n_bins=N_BINS)


def _ace(probs: np.ndarray, labels: np.ndarray) -> float:
    return adaptive_calibration_error(probs, labels, n_bins=N_BINS)


def _aces(idx: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``_ace`` of each resample of questions ``idx`` (k, questions) at once."""
    return adaptive_calibration_error_resamples(probs, labels, idx, n_bins=N_BINS)


def per_question_brier(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each question's term of the Brier score (paper 000 eq. 5); their mean is ``brier_score``."""
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    return ((probs - onehot) ** 2).sum(axis=1)


# ECE and ACE are tested by a paired bootstrap whose p-value comes from the spread of the
# resampled differences (stats.paired_bootstrap); with a handful of questions that spread is
# far too small (3 questions: p = 4e-4 for an ECE increase no test could establish), so below
# this many questions they are not checked (the paired t-tests of the other metrics account
# for small samples themselves).
MIN_BOOTSTRAP_QUESTIONS = 30


def hypotheses(base: ChoiceScores, quant: ChoiceScores, seed: int = 0,
               flips_threshold: float | None = None) -> dict[str, Hypothesis]:
    """Every gated metric of ``quant`` against ``base`` on the same questions, with the
    paired test of paper 003 (t-test on per-question values, Tables 2, 4, 5) where the
    metric is a mean of per-question values, and a paired bootstrap where it is not (ECE,
    ACE: a question's term depends on the others in its bin). With ``flips_threshold``, the
    flip rate too (Dutta et al. 2024 §3), tested exactly against that threshold."""

    out: dict[str, Hypothesis] = {}
    bp, qp = base.probs, quant.probs
    for key, fn, batch, a, b in (
        ("ece", _ece, _eces, (bp, base.correct), (qp, quant.correct)),
        ("ace", _ace, _aces, (bp, base.labels), (qp, quant.labels)),
    ):
        boot = paired_bootstrap(fn, a, b, n_resamples=BOOTSTRAP_RESAMPLES, seed=seed, indexed_statistic=batch)
        out[key] = Hypothesis(key, boot.difference, fn(*a), fn(*b), boot.pvalue, "paired_bootstrap",
                              (boot.ci_low, boot.ci_high), se=boot.se, n=len(base.labels))
    pairs = {
        # key: (base per-question, quant per-question, sign: +1 when an increase is harm)
        "brier": (per_question_brier(bp, base.labels), per_question_brier(qp, quant.labels), 1.0),
        "conf_true": (base.true_class_confidence, quant.true_class_confidence, -1.0),
        "entropy": (entropy(base.log_probs, axis=1), entropy(quant.log_probs, axis=1), 1.0),
    }
    for key, (b_vals, q_vals, sign) in pairs.items():
        out[key] = paired_hypothesis(key, b_vals, q_vals, sign)
    if flips_threshold is not None:
        f = correctness_flips(base.correct, quant.correct)
        out["flips"] = share_hypothesis("flips", f.count, f.n, flips_threshold)
    return out


def flips(base: ChoiceScores, quant: ChoiceScores) -> Flips:
    """The questions whose correctness changes from base to variant, each way apart and
    together (Dutta et al. 2024, arXiv 2407.09141, §3 "flips"): shares of the task's questions
    and counts. The accuracy change is wrong_to_right - right_to_wrong; the flip rate, their
    sum, shows what that difference hides."""
    f = correctness_flips(base.correct, quant.correct)
    return {"right_to_wrong": f.right_to_wrong / f.n, "wrong_to_right": f.wrong_to_right / f.n, "flip_rate": f.rate,
            "right_to_wrong_count": f.right_to_wrong, "wrong_to_right_count": f.wrong_to_right, "questions": f.n}


def comparison(base: ChoiceScores, quant: ChoiceScores) -> DriftComparison:
    """What the report shows beside the gates (paper 003 Tables 1-2, Fig. 1, App. B): both
    models' numbers, their deltas, the questions whose correctness flips (Dutta et al. 2024),
    the Jensen-Shannon distance of true-class probabilities, and the mean confidence shift
    per bin of base confidence."""

    b, q = summary(base), summary(quant)
    # the deltas key by key: in memory every value of a ChoiceSummary is a float (conf_err's NaN
    # too; only results.json writes it as "nan", schema.Number)
    bf, qf = cast("dict[str, float]", b), cast("dict[str, float]", q)
    shift = confidence_shift_by_bin(base.probs.max(axis=1), quant.probs.max(axis=1), n_bins=N_BINS)
    conf_t = paired_ttest(quant.probs.max(axis=1), base.probs.max(axis=1))
    return {
        "base": b,
        "quantized": q,
        "delta": cast("ChoiceSummary", {k: qf[k] - bf[k] for k in bf}),
        "flips": flips(base, quant),
        "conf_pvalue": conf_t.pvalue,
        "js_distance_true_class": js_distance(base.true_class_confidence, quant.true_class_confidence),
        "shift_by_bin": {
            "bin_edges": shift.bin_edges.tolist(),
            "counts": shift.counts.tolist(),
            "mean_base": [None if math.isnan(x) else x for x in shift.mean_base.tolist()],
            "mean_shift": [None if math.isnan(x) else x for x in shift.mean_shift.tolist()],
        },
    }


class ChoiceDriftMeasure(FamilyMeasure):
    """Gates drift from the base on multiple-choice tasks (paper 003); calibration and
    confidence subclass it with their catalog keys and share one family per model."""

    family_key = "choice_family"
    members = ("calibration", "confidence")
    # what the family computes (choices.py's scores, this module's hypotheses): in the key of the
    # stored scores, which calibration and confidence share; bump it when they change
    # (base.Measure.version)
    version = 1

    def __init__(self, config, store) -> None:  # config, store: as Measure.__init__
        super().__init__(config, store)
        self._tasks: dict[str, ChoiceTask] = {}

    def task(self, name: str) -> ChoiceTask:
        """The run's questions of task ``name``: subsampled with --qrel-task-limit and --qrel-seed."""
        ref = next((r for r in self.config.tasks if r.name == name), None)
        if ref is None:
            raise ValueError(f"Expected a task of --qrel-tasks ({', '.join(r.name for r in self.config.tasks)}), but got {name!r}")
        if name not in self._tasks:
            self._tasks[name] = load_task(ref).subsample(self.config.task_limit, self.config.seed)
        return self._tasks[name]

    def unit(self, task: object) -> str:
        self.task(str(task))  # an unknown task name is an error here, before any model is loaded
        return str(task)

    def thresholds(self) -> dict[str, float]:
        """The members' thresholds by metric key (their threshold options', else the catalog's)."""
        return {k: t for m in self.members for k, t in self.config.property_settings[m].threshold.items()}

    def variant_thresholds(self, variant: Variant) -> dict[str, float]:
        """The drift thresholds, and the flip rate's for the variant's bit-width when
        --qrel-flips-threshold is given."""
        flips = self.config.property_settings["calibration"].flips_threshold
        return {**self.thresholds(), **({"flips": flips[variant.bits]} if flips else {})}

    def score(self, model, tokenizer, units: list) -> dict:
        return {t: score_task(model, tokenizer, self.task(t)) for t in units}

    def base_units(self, units: set) -> list:
        return sorted(units)

    def describe(self, unit: object) -> dict:
        task = self.task(str(unit))
        return {"questions": data_digest(task.contexts, task.continuations, task.labels, task.choices)}

    def decode(self, arrays: dict) -> ChoiceScores:
        return ChoiceScores.from_arrays(arrays)

    variant_units = base_units

    def add_hypotheses(self, fam: Family, variant: Variant, unit: object, props: set[str]) -> None:
        q = fam.scores[(variant.id, unit)]
        if q.nonfinite:
            fam.problems[(variant.id, unit)] = f"NaN or inf logits on {q.nonfinite} of {len(q.labels)} questions of {unit}"
            return
        base = fam.scores[("base", unit)]
        fam.comparisons[(variant.id, unit)] = comparison(base, q)
        gated = self.variant_thresholds(variant)
        hyps = hypotheses(base, q, seed=self.config.seed, flips_threshold=gated.get("flips"))
        n = len(base.labels)
        unknown = unreadable(self.unknown_share(variant, unit), f"task {unit}")
        for prop in sorted(props):
            for key in self.config.catalog[prop].keys:
                if key not in gated:  # an optional gate that is off is left out of the family
                    continue
                if unknown:  # questions the tokenizer cannot read say nothing about the model
                    fam.unchecked[(variant.id, unit, key)] = unknown
                elif hyps[key].test == "paired_bootstrap" and n < MIN_BOOTSTRAP_QUESTIONS:
                    fam.unchecked[(variant.id, unit, key)] = (
                        f"{key} is tested by a paired bootstrap over questions, which needs at least "
                        f"{MIN_BOOTSTRAP_QUESTIONS} (the task has {n}); --qrel-task-limit >= "
                        f"{MIN_BOOTSTRAP_QUESTIONS} would decide it")
                else:
                    fam.hypotheses[(variant.id, unit, key)] = hyps[key]

    def unknown_share(self, variant: Variant, unit: object) -> float:
        """Of the task's tokens (each context and continuation, encoded as they are scored), the
        share that are the model's tokenizer's unknown token."""
        task, tokenizer = self.task(str(unit)), self.store.base(variant).tokenizer
        pairs = encode_pairs(tokenizer, [(c, k) for c, ks in zip(task.contexts, task.continuations) for k in ks])
        return unknown_share(tokenizer, (ctx + cont for ctx, cont in pairs))

    def detail(self, fam: Family, variant: Variant, unit: object) -> dict:
        task = self.task(str(unit))
        return {"task": unit, "stratum": task.stratum, "questions": len(task)}


class CalibrationMeasure(ChoiceDriftMeasure):
    """Calibration drift (paper 003 Table 1, App. B; Brier: paper 000 eq. 5): gates the increase
    of ECE and adaptive CE (paired bootstrap) and of the Brier score (paired t-test on
    per-question terms) over the base, per task."""

    key = "calibration"


class ConfidenceMeasure(ChoiceDriftMeasure):
    """Confidence shift (paper 003 §3.2, Table 2): gates the drop of true-class confidence and
    the increase of predictive entropy from the base (paired t-tests on per-question values),
    per task."""

    key = "confidence"
