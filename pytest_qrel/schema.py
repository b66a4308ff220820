"""results.json's schema, written down once (as lm-eval's ``result_schema.py``), as TypedDicts (a leaf): the
document, each variant, each record with its measure's details, each fitted law, the drift table.
report/results_json.py writes through them; --qrel-merge and --qrel-baseline read through ``schema_check.py``;
docs/results-json.md documents it. A ``NotRequired`` key may be absent from a file a reader is given; a key
present is of its type. JSON has no NaN or infinity: a ``Number`` (or any float of a record's details, which
readers do not check) is "nan", "inf" or "-inf". No ``__future__`` annotations: the checks read them at run time."""

import functools
import sys
from typing import Any, Literal, get_args, get_type_hints

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:  # typing's TypedDict of 3.10 does not know NotRequired
    from typing_extensions import NotRequired, TypedDict

SCHEMA_VERSION = 1

NonFinite = Literal["nan", "inf", "-inf"]
Number = float | NonFinite  # a float, or the name of a non-finite one
Status = Literal["pass", "fail", "skip", "error"]
STATUSES: tuple[str, ...] = get_args(Status)
GATED: tuple[str, ...] = ("pass", "fail")  # the statuses of a record that holds a gated value
VariantStatus = Literal["pass", "fail", "skip", "error", "not run"]  # a variant's overall status
NotRun = dict[str, dict[str, str]]  # model -> property -> why its tests were not run (matrix.without_default_tasks)


class VariantEntry(TypedDict):
    """One of ``variants`` (variants.variant_record, QuantizedInfo.as_dict once quantized,
    results.variant_outcome). A merge needs only ``id`` and ``model``."""
    id: str  # the test ids' variant, e.g. zoo-m-hqq-4b-g64
    model: str
    source: NotRequired[str]  # the model's directory or hub id
    method: NotRequired[str]
    bits: NotRequired[int]
    group_size: NotRequired[int | None]
    quant_ratio: NotRequired[float]  # share of linear weights quantized (paper 004's Q_r)
    granularity: NotRequired[str | None]  # mixed precision's unit: layer or matmul (None at ratio 1)
    checkpoint: NotRequired[str | None]  # a pre-quantized checkpoint's directory
    skip_reason: NotRequired[str | None]  # why its backend cannot produce it
    weight_format: NotRequired[str]
    activation_bits: NotRequired[int | None]
    status: NotRequired[VariantStatus]
    reason: NotRequired[str | None]
    params: NotRequired[int | None]
    total_bits: NotRequired[Number | None]  # quantized weights at effective bits, the rest at their dtype
    effective_bits: NotRequired[float | None]  # paper 002's b + (16 + z) / G over the quantized weights
    quantized_layers: NotRequired[int]
    linear_layers: NotRequired[int]
    storage_bits: NotRequired[float]  # what the quantized weights store per weight on this device
    base_total_bits: NotRequired[float]
    state_dict_bytes: NotRequired[int]
    quantized_fraction: NotRequired[float]
    coverage: NotRequired[float]  # share of the weights asked for that were quantized
    skipped: NotRequired[dict[str, str]]  # layer left at full precision -> why
    regrouped: NotRequired[dict[str, str]]  # layer quantized with another group size -> why
    cache: NotRequired[str]  # hit or miss: run-dependent
    kl_base_forward_passes: NotRequired[int]  # run-dependent: 0 when the base's outputs were read back
    error: NotRequired[str]  # why it could not be quantized


class ComparedEntry(TypedDict):
    """What a baseline reads of a record: its test, status, metric and value."""
    test: str
    status: Status
    metric: str | None
    value: NotRequired[Number | None]


class ResultEntry(ComparedEntry):
    """One of ``results``: one metric of one test (Record.as_dict), its measure's details beside."""
    variant: str
    model: str
    method: str
    bits: int
    group_size: int | None
    property: str | None  # the catalog's records_as: kl, calibration, confidence, robustness, scaling
    passed: NotRequired[bool]
    reason: NotRequired[str | None]
    base_value: NotRequired[Number | None]
    threshold: NotRequired[Number | None]
    task: NotRequired[str | None]  # a per-task record's multiple-choice task
    higher_is_better: NotRequired[bool | None]  # this and the next two: a gated (pass or fail) record's
    coverage: NotRequired[Number | None]
    min_coverage: NotRequired[Number | None]
    baseline_value: NotRequired[Number | None]  # this and the next: a record compared with --qrel-baseline
    change: NotRequired[Number | None]


# which of ResultEntry's keys a record writes when gated, when compared with a baseline, when set
GATED_KEYS, BASELINE_KEYS, OWN_KEYS = ("higher_is_better", "coverage", "min_coverage"), ("baseline_value", "change"), ("task",)


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


class FitStatistics(TypedDict):
    """A fitted law (``scaling.ScalingFit.as_dict``); a non-finite statistic is None."""
    name: str
    form: str
    coefficients: dict[str, float | None]
    stderr: dict[str, float | None]
    r2: float | None
    adj_r2: float | None
    n: int
    dof: int
    residual_std: float | None


class AblationEntry(TypedDict):
    """One factor subset of a power law (paper 002 Table 1)."""
    factors: list[str]
    fitted: bool
    adj_r2: float | None


class FitEntry(TypedDict):
    """One law of ``fits`` (summary.run_fits), with the fit's statistics when fitted."""
    metric: str  # kl_to_base, or ece_increase@zoo_recall for a per-task metric
    law: Literal["log_quadratic", "power_law", "quantization_ratio"]
    family: str  # "<bits>-bit", or "all"
    fitted: bool
    bits: NotRequired[int]
    points: NotRequired[list[list[float]]]  # (total bits, value); (ratio, params) for the ratio law
    factors: NotRequired[list[str]]
    reason: NotRequired[str]  # why it was not fitted
    name: NotRequired[str]
    form: NotRequired[str]
    coefficients: NotRequired[dict[str, float | None]]
    stderr: NotRequired[dict[str, float | None]]
    r2: NotRequired[float | None]
    adj_r2: NotRequired[float | None]
    n: NotRequired[int]
    dof: NotRequired[int]
    residual_std: NotRequired[float | None]
    curve: NotRequired[list[list[float]]]  # the log-quadratic law drawn over the family's range
    ablation: NotRequired[list[AblationEntry]]


class GateOutcome(TypedDict):
    """One gated metric of a drift row."""
    value: float | None
    threshold: float | None
    status: Status
    pvalue: float | None
    adjusted_pvalue: float | None
    alpha: float | None
    significant: bool | None


class DriftRow(DriftComparison):
    """One (variant, task) of ``drift.tasks`` (drift_table.drift_summary)."""
    model: str
    variant: str
    method: str
    bits: int
    total_bits: float | None
    task: str | None
    stratum: str | None
    questions: int | None
    gates: dict[str, GateOutcome]  # metric -> outcome


class KnowledgeRow(TypedDict):
    """Per model and bit-width, the mean accuracy drop by knowledge stratum (paper 002)."""
    model: str
    bits: int
    accuracy_drop_memorization: float | None
    accuracy_drop_utilization: float | None
    accuracy_drop_utilization_heldout: float | None
    conf_true_drop: float | None


class DriftTable(TypedDict):
    """``drift``: the calibration and confidence tables (paper 003 Tables 1-2)."""
    tasks: list[DriftRow]
    knowledge: list[KnowledgeRow]


class BaselineUsed(TypedDict):
    """The --qrel-baseline a run compared with: its absolute path and sha256."""
    path: str
    sha256: str


class RunInfo(TypedDict):
    """What a run records for a later merge (report.run.run_info)."""
    settings: dict[str, Any]  # option (without --qrel-) -> value as given: string, bool, list, table
    models_named: list[str] | None  # the models named with --qrel-models
    baseline_used: NotRequired[BaselineUsed]
    not_run: NotRequired[NotRun]


class ResultsDocument(TypedDict):
    """The whole of results.json."""
    schema: int  # SCHEMA_VERSION
    variants: list[VariantEntry]
    results: list[ResultEntry]
    fits: NotRequired[list[FitEntry]]
    drift: NotRequired[DriftTable]  # when the run had calibration or confidence records
    settings: NotRequired[dict[str, Any]]  # a merge needs them
    models_named: NotRequired[list[str] | None]
    baseline_used: NotRequired[BaselineUsed]
    not_run: NotRequired[NotRun]  # only when a property was not run


@functools.cache  # a TypedDict's hints never change
def hints(kind: type) -> dict[str, Any]:
    """The keys ``kind`` (a TypedDict) declares and their types, in order."""
    return get_type_hints(kind)


def keys_of(kind: type) -> tuple[str, ...]:
    """The keys ``kind`` declares, in order."""
    return tuple(hints(kind))


def number(value: Any) -> Any:
    """A value as the run held it: results.json writes NaN and infinities as their names."""
    return float(value) if isinstance(value, str) and value in get_args(NonFinite) else value
