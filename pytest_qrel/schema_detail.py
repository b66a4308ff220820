"""The details of results.json's records, by measure (a leaf, split from schema.py, which
re-exports them): the statistical gates, KL, the drift comparisons, robustness, fuzzing, the
fitted-law bounds and the baseline comparison. No ``from __future__ import annotations``: the
checks read these annotations at run time."""

import sys
from typing import Literal

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:  # typing's TypedDict of 3.10 does not know NotRequired
    from typing_extensions import NotRequired, TypedDict

NonFinite = Literal["nan", "inf", "-inf"]
Number = float | NonFinite  # a float, or the name of a non-finite one


class TestDetail(TypedDict, total=False):
    """A statistical gate's test and the family's decision (measures/hypotheses.py)."""
    quant_value: float  # the variant's own level (the value is its change from the base)
    pvalue: float
    adjusted_pvalue: float  # after the family-wise correction
    alpha: float
    correction: str  # holm or bh
    family_size: int
    stat_test: str  # paired_ttest, paired_bootstrap, binomial
    significant: bool
    ci: list[float]
    power: float  # a pass's power to detect a harm of its threshold
    minimum_detectable: float


class KLStatistics(TypedDict):
    """A ``kl_to_base`` record's statistics (measures/kl.py; llama.cpp's --kl-divergence)."""
    tokens: int
    sequences: int
    kl_text: str
    kl_text_note: NotRequired[str]  # a model outside the zoo measured on the shipped prose
    kl_unknown_share: NotRequired[float]  # of the text's tokens, the tokenizer's unknown token (> 0.05: not checked)
    kl_topk: int | Literal["all"]
    kl_decided: Literal["exact", "bounds"]
    kl_lower: float  # certified bounds of the mean; the value is their midpoint
    kl_upper: float
    kl_bound_width: float
    kl_stored_lower: float  # the bounds from the stored top-k, before an exact recompute
    kl_stored_upper: float
    kl_stored_bound_width: float
    kl_se: Number
    kl_median: float
    kl_p90: float
    kl_p99: float
    kl_p999: float
    kl_max: float
    top1_agreement: float
    top1_se: float
    dp_mean: float
    dp_rms: float
    ln_ppl_ratio: float


class KLTailDetail(TypedDict, total=False):
    """A ``kl_p99`` record's bounds (the value is their midpoint) and a ``top1_agreement``'s error."""
    kl_p99_lower: float
    kl_p99_upper: float
    kl_decided: Literal["exact", "bounds"]
    tokens: int
    top1_se: float
    nonfinite_tokens: int  # tokens whose quantized logits were NaN or infinite (the value is NaN)
    kl_text: str


class ChoiceSummary(TypedDict):
    """One model's numbers on a multiple-choice task (paper 003; measures/choices.py)."""
    accuracy: float
    accuracy_norm: float
    ece: float
    ace: float
    brier: float
    conf: float
    conf_err: Number  # NaN when every answer is right
    conf_true: float
    entropy: float


class Flips(TypedDict):
    """Questions whose correctness changed (Dutta et al. 2024 §3): shares and counts."""
    right_to_wrong: float
    wrong_to_right: float
    flip_rate: float
    right_to_wrong_count: int
    wrong_to_right_count: int
    questions: int


class ShiftByBin(TypedDict):
    """Mean true-class confidence shift per bin of base confidence (paper 003 Fig. 1)."""
    bin_edges: list[float]
    counts: list[int]
    mean_base: list[float | None]
    mean_shift: list[float | None]


class DriftComparison(TypedDict):
    """What a calibration or confidence record shows beside its gate (measures/drift.py)."""
    base: ChoiceSummary
    quantized: ChoiceSummary
    delta: ChoiceSummary  # quantized - base
    flips: NotRequired[Flips]
    conf_pvalue: float
    js_distance_true_class: float
    shift_by_bin: ShiftByBin


class DriftDetail(TypedDict, total=False):
    """A calibration or confidence record's details."""
    stratum: str | None  # the task's knowledge stratum: memorization or utilization
    questions: int
    comparison: DriftComparison


class QASummary(TypedDict):
    """One model's sampled answers under one condition (measures/generation.py)."""
    accuracy: float
    entropy: float
    ref_loglik: float
    ref_brier: float
    auroc_entropy: float | None  # None where every answer is right or every one wrong
    auprc_entropy: float | None
    auroc_loglik: float | None
    auprc_loglik: float | None
    answers: int


class StratumAccuracy(TypedDict):
    """Accuracy over one prompt stratum's prompts (paper 002's recall / utilization)."""
    prompts: int
    base: float
    quantized: float
    base_unperturbed: float
    quantized_unperturbed: float


class RobustnessComparison(TypedDict):
    """A robustness record's four summaries: both models perturbed and unperturbed."""
    base: QASummary
    quantized: QASummary
    base_unperturbed: QASummary
    quantized_unperturbed: QASummary
    strata: NotRequired[dict[str, StratumAccuracy]]  # when the prompts name their strata


class RobustnessDetail(TypedDict, total=False):
    """A robustness record's condition and what it was measured on."""
    perturbation: str
    intensity: int
    prompts: int
    samples: int
    perturbed_words: int
    unknown_words: int  # perturbed words the tokenizer maps to its unknown token
    inserted_by: str  # word_insertion's source of words
    comparison: RobustnessComparison


class ShrunkExample(TypedDict):
    """One prompt of the fuzzing test's shrunk failing batch."""
    prompt: str
    perturbed: str
    perturbation: str
    intensity: int
    seed: int
    base_answer: str
    answer: str
    agree: bool


class FuzzDetail(TypedDict, total=False):
    """The fuzzing record's batches (measures/fuzz.py)."""
    fuzz_examples: int
    fuzz_batch: int
    batches_run: int
    shrunk_example: list[ShrunkExample]
    power: float


class LawDetail(TypedDict, total=False):
    """A fitted-law bound's band (measures/scaling.py, paper 000 eq. 6)."""
    predicted: float
    band: list[float]
    confidence: float
    fit_points: int
    fit_adj_r2: float


class BaselineDetail(TypedDict, total=False):
    """What a record says of --qrel-baseline beyond its baseline_value."""
    baseline: Literal["not in the baseline"]
    baseline_bounds: list[Number]  # the baseline's certified bounds of its value
