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

from .schema_detail import (
    BaselineDetail as BaselineDetail,
)
from .schema_detail import (
    ChoiceSummary as ChoiceSummary,
)
from .schema_detail import (
    DriftComparison as DriftComparison,
)
from .schema_detail import (
    DriftDetail as DriftDetail,
)
from .schema_detail import (
    Flips as Flips,
)
from .schema_detail import (
    FuzzDetail as FuzzDetail,
)
from .schema_detail import (
    KLStatistics as KLStatistics,
)
from .schema_detail import (
    KLTailDetail as KLTailDetail,
)
from .schema_detail import (
    LawDetail as LawDetail,
)
from .schema_detail import (  # re-exported: schema.X names every type of results.json
    NonFinite as NonFinite,
)
from .schema_detail import (
    Number as Number,
)
from .schema_detail import (
    QASummary as QASummary,
)
from .schema_detail import (
    RobustnessComparison as RobustnessComparison,
)
from .schema_detail import (
    RobustnessDetail as RobustnessDetail,
)
from .schema_detail import (
    ShiftByBin as ShiftByBin,
)
from .schema_detail import (
    ShrunkExample as ShrunkExample,
)
from .schema_detail import (
    StratumAccuracy as StratumAccuracy,
)
from .schema_detail import (
    TestDetail as TestDetail,
)

SCHEMA_VERSION = 1

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
    sparsity: NotRequired[str | None]  # a pruned variant's asked sparsity ("0.5", "2:4"); its bits are 8
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
    measured_sparsity: NotRequired[float]  # a pruned variant: zeros over the weights asked to be pruned
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
    family: str  # "<bits>-bit", "sparsity <s>" (pruned variants, variants.law_family), or "all"
    fitted: bool
    bits: NotRequired[int]
    sparsity: NotRequired[str]  # a pruned family's asked sparsity
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


class PrunedPoint(TypedDict):
    """One variant of ``pruned_vs_quantized.points`` (pruned_vs_quantized.Point)."""
    variant: str
    method: str
    bits: int
    sparsity: str | None  # a pruned variant's asked sparsity; null for a quantized one
    total_bits: float
    kl_to_base: float | None
    accuracy_drop: float | None  # mean over the run's tasks of base accuracy minus its own


Winner = Literal["quantized", "pruned", "equal"]


class PrunedPair(TypedDict):
    """A pruned variant and the quantized ones it is compared with at equal total bits."""
    pruned: str
    smaller: str | None  # the lowest-KL quantized variant with at most its total bits
    larger: str | None  # the nearest quantized variant with more total bits
    better_smaller: dict[str, Winner | None]  # metric -> which is better (null: not measured)
    better_larger: dict[str, Winner | None]


class PrunedFinding(TypedDict):
    """Paper 000's finding on one model: each 50%/2:4-pruned variant beaten by a quantized one no larger."""
    holds: bool | None  # null: no such pruned variant (reason)
    metrics: list[str]  # what it was decided on: kl_to_base, and accuracy_drop with tasks
    beaten_by: dict[str, str | None]  # pruned variant -> the lowest-KL quantized one beating it, or null
    reason: str | None


class PrunedVsQuantized(TypedDict):
    """One model of ``pruned_vs_quantized`` (paper 000 §4.2, Figs. 9-10 against Fig. 6)."""
    model: str
    base_total_bits: float | None
    points: list[PrunedPoint]
    pairs: list[PrunedPair]
    finding: PrunedFinding


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
    pruned_vs_quantized: NotRequired[list[PrunedVsQuantized]]  # when a model has pruned and quantized variants
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
