"""Every option parsed, type-checked and validated once into a frozen QrelConfig."""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import options, parsing
from .baseline import Baseline
from .cache import default_cache_dir
from .checkpoints import Checkpoint, split_prequantized
from .data import calibration_texts
from .data.qa import read_qa_file
from .data.text import KLText, read_kl_text, resolve_kl_text
from .data.tasks import load_task, resolve_task
from .models import ZOO_MODELS, resolve_model
from .parsing import Tolerance
from .perturb import PERTURBATIONS
from .properties import CATALOG, Catalog, Property
from .quant import BACKENDS, get_backend, supported_bits
from .quant.mixed import GRANULARITIES, SELECTIONS

if TYPE_CHECKING:
    from .data.types import TaskRef



# accepted ranges of numeric options (README: "Accepted ranges")
ALPHA_RANGE = (1e-6, 0.5)
MAX_INTENSITY = 64  # edits per prompt
MAX_TEMPERATURE = 5.0
MAX_SAMPLES = 64
MAX_NEW_TOKENS = 512


MAX_KL_TOPK = 4096  # above it, --qrel-kl-topk=all stores less per token than the ids would take
MAX_KL_CONTEXT = 1 << 17


@dataclass(frozen=True)
class KLSettings:
    """The KL suite's settings: the text and its windows, what is stored of the base, and
    the optional gates on the KL's tail and on top-1 agreement."""

    topk: int | None = 1024  # None: the full vocabulary (exact KL)
    text: KLText | None = None  # --qrel-kl-text, read; None: the zoo's sentences
    context: int = 512
    context_given: bool = False  # --qrel-kl-context set by the user (then a model must admit it)
    tokens: int = 32768
    p99_threshold: dict[int, float] | None = None  # by bit-width; None: off
    top1_threshold: float | None = None  # smallest agreement; None: off


@dataclass(frozen=True)
class Robustness:
    """The robustness suite's settings: what is perturbed, on which prompts, how answers are
    sampled, the thresholds, and the fuzzing test's budget and agreement rate."""

    perturbations: tuple[str, ...] = ()
    intensities: tuple[int, ...] = (4, 16)
    qa_file: Path | None = None  # None: the zoo's recall questions
    insertion_model: Path | None = None  # a masked LM for word_insertion; None: the shipped word list
    qa_limit: int | None = 100  # None: every prompt
    samples: int = 4
    temperature: float = 0.7
    max_new_tokens: int = 20
    threshold: dict[str, float] = field(default_factory=dict)  # accuracy, auroc, robust_accuracy, robust_auroc
    fuzz_examples: int = 20
    fuzz_batch: int = 32
    fuzz_agreement: float = 0.5


@dataclass(frozen=True)
class QrelConfig:
    models: tuple[tuple[str, str], ...]  # (name, source) of full-precision models
    methods: tuple[str, ...]
    bits: tuple[int, ...]
    group_size: int | None
    report_dir: Path
    kl_threshold: dict[int, float]
    allow_pickle: bool
    cache_dir: Path | None  # None: caching off
    quant_ratios: tuple[float, ...] = (1.0,)
    granularity: str = "matmul"
    selection: str = "random"
    trials: int = 20
    calibration_samples: int = 128
    calibration_file: Path | None = None  # None: the shipped zoo calibration set
    seed: int = 0
    min_coverage: float = 1.0
    checkpoints: tuple[Checkpoint, ...] = ()
    scaling_confidence: float = 0.99
    baseline: Baseline | None = None  # an earlier run's results, to compare with
    save_baseline: Path | None = None
    compare_fail: dict[str, Tolerance] = field(
        default_factory=lambda: {"*": ("relative", 0.10), "robustness": ("absolute", 0.05)})
    tasks: tuple[TaskRef, ...] = ()  # multiple-choice tasks of the calibration and confidence suites
    task_limit: int | None = 500  # questions per task (None: all)
    drift_threshold: dict[str, float] = field(default_factory=dict)  # by metric key: ece, conf_true, ...
    flips_threshold: dict[int, float] | None = None  # largest flip rate by bit-width; None: the flips gate is off
    alpha: dict[str, float] = field(default_factory=dict)  # significance level by metric key
    correction: str = "holm"
    tasks_given: bool = False  # False: the default zoo tasks, which only zoo models are tested on
    robustness: Robustness = field(default_factory=Robustness)
    kl: KLSettings = field(default_factory=KLSettings)
    allow_unchecked: bool = False  # a run that checked nothing (or a named model nothing) may pass
    baseline_strict: bool = False  # a metric the baseline does not hold fails
    resume: bool = False  # run only the tests the report directory's journal does not hold
    models_given: bool = False  # --qrel-models named the models (not the default zoo)
    catalog: Catalog = field(default=CATALOG, compare=False, repr=False)  # the run's properties

    @classmethod
    def from_values(cls, values: dict[str, Any], invocation_dir: Path, catalog: Catalog = CATALOG) -> QrelConfig:
        """Parse ``values`` (by option dest; absent or None: the default) into a config;
        anything malformed is a ``pytest.UsageError`` naming the option and what it expected."""
        given = {k: v for k, v in values.items() if v is not None}
        raw = {**options.defaults(), **given}
        models = parsing.strings(options.MODELS, raw.get("qrel_models") or "") or list(ZOO_MODELS)
        resolved, checkpoints = split_prequantized([resolve_model(m) for m in models], raw.get("qrel_base"))
        names = [name for name, _ in resolved]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise pytest.UsageError(f"{options.MODELS}: two models would share the test id {dupes[0]!r}; rename one")
        methods = tuple(parsing.distinct(options.METHODS, parsing.strings(options.METHODS, raw["qrel_methods"])))
        _check_methods(methods, explicit="qrel_methods" in given)
        valid_bits = supported_bits()
        bits = tuple(parsing.distinct(options.BITS, parsing.ints(options.BITS, raw["qrel_bits"])))
        if not bits:
            raise pytest.UsageError(f"{options.BITS}: expected at least one bit-width in {valid_bits}")
        for b in bits:
            if b not in valid_bits:
                raise pytest.UsageError(
                    f"{options.BITS}: no backend quantizes to {b} bits; valid bit-widths: {', '.join(map(str, valid_bits))}"
                )
        kl_threshold = parsing.bit_map(options.KL_THRESHOLD, raw["qrel_kl_threshold"])
        missing = [b for b in bits + tuple(c[4] for c in checkpoints) if b not in kl_threshold]
        if missing:
            raise pytest.UsageError(f"{options.KL_THRESHOLD}: no threshold for {missing[0]}-bit variants")
        quant_ratios = tuple(parsing.distinct(options.QUANT_RATIO, parsing.floats(options.QUANT_RATIO, raw["qrel_quant_ratio"])))
        if not quant_ratios or any(not 0 < r <= 1 for r in quant_ratios):
            raise pytest.UsageError(f"{options.QUANT_RATIO}: expected ratios in (0, 1], but got {raw['qrel_quant_ratio']!r}")
        granularity = parsing.choice(options.QUANT_GRANULARITY, raw["qrel_quant_granularity"], GRANULARITIES)
        selection = parsing.choice(options.QUANT_SELECT, raw["qrel_quant_select"], SELECTIONS)
        trials = parsing.integer(options.QUANT_TRIALS, raw["qrel_quant_trials"], minimum=1)
        samples = parsing.integer(options.CALIBRATION_SAMPLES, raw["qrel_calibration_samples"], minimum=1)
        seed = parsing.integer(options.SEED, raw["qrel_seed"], minimum=0)
        min_coverage = parsing.floats(options.MIN_COVERAGE, raw["qrel_min_coverage"])
        if len(min_coverage) != 1 or not 0 <= min_coverage[0] <= 1:
            raise pytest.UsageError(
                f"{options.MIN_COVERAGE}: expected one number in [0, 1], but got {raw['qrel_min_coverage']!r}"
            )
        calibration_file, available = _calibration_source(raw.get("qrel_calibration_file"), invocation_dir)
        if samples > available:
            raise pytest.UsageError(
                f"{options.CALIBRATION_SAMPLES}: {samples} asked for, but "
                f"{calibration_file or 'the shipped calibration set'} has {available} documents"
            )
        confidence = parsing.floats(options.SCALING_CONFIDENCE, raw["qrel_scaling_confidence"])
        if len(confidence) != 1 or not 0 < confidence[0] < 1:
            raise pytest.UsageError(
                f"{options.SCALING_CONFIDENCE}: expected one number in (0, 1), but got {raw['qrel_scaling_confidence']!r}"
            )
        baseline = None
        if raw.get("qrel_baseline") is not None:
            baseline = Baseline.read(parsing.path(options.BASELINE, raw["qrel_baseline"], invocation_dir))
        save_baseline = None
        if raw.get("qrel_save_baseline") is not None:
            save_baseline = parsing.path(options.SAVE_BASELINE, raw["qrel_save_baseline"], invocation_dir)
            _writable_dir(options.SAVE_BASELINE, save_baseline.parent, save_baseline)
        report_dir = parsing.path(options.REPORT_DIR, raw["qrel_report_dir"], invocation_dir)
        _writable_dir(options.REPORT_DIR, report_dir)
        cache_dir = None
        if not parsing.boolean(options.NO_CACHE, raw.get("qrel_no_cache", False)):
            cache_dir = _writable_cache_dir(raw.get("qrel_cache_dir"), invocation_dir)
        drift = _drift_options(raw, invocation_dir, catalog)
        drift["flips_threshold"] = _flips_threshold(raw.get("qrel_flips_threshold"), bits + tuple(c[4] for c in checkpoints))
        return cls(
            models=resolved,
            methods=methods,
            bits=bits,
            group_size=parsing.group_size(raw["qrel_group_size"]),
            report_dir=report_dir,
            kl_threshold=kl_threshold,
            allow_pickle=parsing.boolean(options.ALLOW_PICKLE, raw.get("qrel_allow_pickle", False)),
            allow_unchecked=parsing.boolean(options.ALLOW_UNCHECKED, raw.get("qrel_allow_unchecked", False)),
            models_given=bool(raw.get("qrel_models")),
            cache_dir=cache_dir,
            quant_ratios=quant_ratios,
            granularity=granularity,
            selection=selection,
            trials=trials,
            calibration_samples=samples,
            calibration_file=calibration_file,
            seed=seed,
            min_coverage=min_coverage[0],
            checkpoints=tuple(checkpoints),
            scaling_confidence=confidence[0],
            baseline=baseline,
            save_baseline=save_baseline,
            compare_fail=_compare_fail(raw, catalog),
            baseline_strict=parsing.boolean(options.BASELINE_STRICT, raw.get("qrel_baseline_strict", False)),
            resume=parsing.boolean(options.RESUME, raw.get("qrel_resume", False)),
            **drift,
            robustness=_robustness_options(raw, invocation_dir, catalog),
            kl=_kl_options(raw, invocation_dir, bits + tuple(c[4] for c in checkpoints)),
            catalog=catalog,
        )


def _kl_options(raw: dict[str, Any], invocation_dir: Path, bits: tuple[int, ...]) -> KLSettings:
    """The KL suite's text, windows, stored top-k and optional gates; a missing text file or
    an unknown task stops the run now, naming it."""
    topk_raw = str(raw["qrel_kl_topk"]).strip().lower()
    topk = None if topk_raw == "all" else parsing.integer(options.KL_TOPK, raw["qrel_kl_topk"], minimum=1,
                                                           maximum=MAX_KL_TOPK)
    text = None
    if raw.get("qrel_kl_text") is not None:
        spec = parsing.strings(options.KL_TEXT, raw["qrel_kl_text"])
        if len(spec) != 1:
            raise pytest.UsageError(f"{options.KL_TEXT}: expected one file or task, but got {raw['qrel_kl_text']!r}")
        try:  # read now: a missing file, an unknown task or an empty text stops the run before any test
            text = read_kl_text(resolve_kl_text(spec[0], invocation_dir),
                                parsing.boolean(options.ALLOW_TASK_CODE, raw.get("qrel_allow_task_code", False)))
        except ValueError as exc:
            raise pytest.UsageError(f"{options.KL_TEXT}: {exc}") from None
    p99 = None
    if raw.get("qrel_kl_p99_threshold") is not None:
        value = str(raw["qrel_kl_p99_threshold"])
        if ":" in value:
            p99 = parsing.bit_map(options.KL_P99_THRESHOLD, value)
            missing = [b for b in bits if b not in p99]
            if missing:
                raise pytest.UsageError(f"{options.KL_P99_THRESHOLD}: no threshold for {missing[0]}-bit variants")
        else:
            one = parsing.floats(options.KL_P99_THRESHOLD, value)
            if len(one) != 1 or not 0 < one[0] < math.inf:
                raise pytest.UsageError(f"{options.KL_P99_THRESHOLD}: expected one positive number or bits:nats "
                                        f"pairs, but got {value!r}")
            p99 = {b: one[0] for b in bits}
    top1 = None
    if raw.get("qrel_top1_threshold") is not None:
        one = parsing.floats(options.TOP1_THRESHOLD, raw["qrel_top1_threshold"])
        if len(one) != 1 or not 0 < one[0] <= 1:
            raise pytest.UsageError(f"{options.TOP1_THRESHOLD}: expected one agreement in (0, 1], but got "
                                    f"{raw['qrel_top1_threshold']!r}")
        top1 = one[0]
    return KLSettings(
        topk=topk,
        text=text,
        context=parsing.integer(options.KL_CONTEXT, raw["qrel_kl_context"], minimum=4, maximum=MAX_KL_CONTEXT),
        context_given=raw.get("qrel_kl_context") not in (None, options.DEFAULT_KL_CONTEXT),
        tokens=parsing.integer(options.KL_TOKENS, raw["qrel_kl_tokens"], minimum=1),
        p99_threshold=p99,
        top1_threshold=top1,
    )


def _check_methods(methods: tuple[str, ...], explicit: bool) -> None:
    """Known methods only; a method the user named whose library is missing is an error
    (the gate must not go green having checked nothing); the default list may skip."""
    if not methods:
        raise pytest.UsageError(f"{options.METHODS}: expected at least one method in {sorted(BACKENDS)}")
    for method in methods:
        if method not in BACKENDS:
            raise pytest.UsageError(
                f"{options.METHODS}: unknown method {method!r}; valid methods: {', '.join(sorted(BACKENDS))}"
            )
        backend = get_backend(method)
        missing = backend.missing_packages()
        if explicit and missing:
            raise pytest.UsageError(
                f"{options.METHODS}: {method} needs {', '.join(missing)}, which is not installed: "
                f"pip install 'pytest-qrel[{backend.extra}]'"
            )


def _compare_fail(raw: dict[str, Any], catalog: Catalog) -> dict[str, Tolerance]:
    """The tolerances against a baseline: the default ones, and those the option names (each
    a metric, a property or ``*`` of the catalog)."""
    valid = ("*", *catalog.recorded(), *dict.fromkeys(m.name for p in catalog for m in p.metrics))
    default = parsing.tolerances(options.COMPARE_FAIL, options.DEFAULT_COMPARE_FAIL, valid)
    return {**default, **parsing.tolerances(options.COMPARE_FAIL, raw["qrel_compare_fail"], valid)}


def _thresholds(raw: dict[str, Any], prop: Property) -> dict[str, float]:
    """A property's thresholds by metric key: its catalog defaults, and what its threshold
    option (metric:value pairs) sets; a key the catalog does not list is a usage error."""
    flag = prop.threshold_option
    given = parsing.metric_map(flag, raw[flag.lstrip("-").replace("-", "_")], prop.option_keys) if flag else {}
    for key, value in given.items():
        upper = prop.metric(key).upper
        if upper is not None and value >= upper:
            raise pytest.UsageError(f"{flag}: expected {key} in [0, {upper:g}): no {prop.metric(key).name} can reach "
                                    f"{value:g}, so that gate could never fail, but got {key}:{value:g}")
    return {**prop.default_thresholds(), **given}


def _flips_threshold(value: Any, bits: tuple[int, ...]) -> dict[int, float] | None:
    """The largest flip rate by bit-width: one share for every bit-width, or bits:share pairs
    naming each bit-width of the run; None (the gate is off) when the option is not given."""
    if value is None:
        return None
    flag = options.FLIPS_THRESHOLD
    expected = "expected one share in (0, 1) or bits:share pairs like 2:0.3,4:0.1"
    if isinstance(value, bool):
        raise pytest.UsageError(f"{flag}: {expected}, but got {value!r}")
    if isinstance(value, dict):
        pairs = [(str(b), v) for b, v in value.items()]
    elif isinstance(value, (int, float, str)) and ":" not in str(value):
        pairs = [("*", value)]
    else:
        pairs = [tuple(p.partition(":")[::2]) for p in parsing.strings(flag, value)]
    shares: dict[int, float] = {}
    for b, v in pairs:
        try:
            share = math.nan if isinstance(v, bool) else float(v)
            bit = None if b == "*" else int(b)
        except (TypeError, ValueError):
            raise pytest.UsageError(f"{flag}: {expected}, but got {value!r}") from None
        if not 0 < share < 1:  # NaN too
            raise pytest.UsageError(f"{flag}: {expected} (at 0 any flip would fail, at 1 none could), but got {value!r}")
        shares.update(dict.fromkeys(bits, share) if bit is None else {bit: share})
    missing = [b for b in bits if b not in shares]
    if missing:
        raise pytest.UsageError(f"{flag}: no threshold for {missing[0]}-bit variants")
    return shares


def _drift_options(raw: dict[str, Any], invocation_dir: Path, catalog: Catalog) -> dict[str, Any]:
    """Tasks, subsampling, thresholds, levels and correction of the calibration and
    confidence gates; a named lm-eval task or task file is loaded now, so a missing
    dataset or a malformed file stops the run at start-up with the reason."""
    refs = []
    allow_code = parsing.boolean(options.ALLOW_TASK_CODE, raw.get("qrel_allow_task_code", False))
    for spec in parsing.strings(options.TASKS, raw["qrel_tasks"]):
        try:
            ref = resolve_task(spec, invocation_dir, allow_code)
            if ref.kind != "zoo":
                load_task(ref)
        except ValueError as exc:
            raise pytest.UsageError(f"{options.TASKS}: {exc}") from None
        if any(r.name == ref.name for r in refs):
            raise pytest.UsageError(f"{options.TASKS}: two tasks are named {ref.name!r}; test ids must be unique")
        refs.append(ref)
    if not refs:
        raise pytest.UsageError(f"{options.TASKS}: expected at least one task")
    limit = raw["qrel_task_limit"]
    task_limit = None if isinstance(limit, str) and limit.strip().lower() == "all" else parsing.integer(options.TASK_LIMIT, limit, minimum=2)
    thresholds = {**_thresholds(raw, catalog["calibration"]), **_thresholds(raw, catalog["confidence"])}
    metrics = catalog.tested_keys()
    alpha_raw = raw["qrel_alpha"]
    if isinstance(alpha_raw, (int, float)) or (isinstance(alpha_raw, str) and ":" not in alpha_raw):
        level = parsing.floats(options.ALPHA, alpha_raw)
        if len(level) != 1:
            raise pytest.UsageError(f"{options.ALPHA}: expected one level or metric:level pairs, but got {alpha_raw!r}")
        alpha = dict.fromkeys(metrics, level[0])
    else:
        alpha = {**dict.fromkeys(metrics, float(options.DEFAULT_ALPHA)), **parsing.metric_map(options.ALPHA, alpha_raw, metrics)}
    for key, a in alpha.items():
        if not ALPHA_RANGE[0] <= a <= ALPHA_RANGE[1]:
            raise pytest.UsageError(f"{options.ALPHA}: expected a level in [{ALPHA_RANGE[0]:g}, {ALPHA_RANGE[1]:g}] "
                                    f"(below it nothing could fail, above it noise would), but got {key}:{a:g}")
    correction = parsing.choice(options.CORRECTION, raw["qrel_correction"], ("holm", "bh"))
    return {"tasks": tuple(refs), "task_limit": task_limit, "drift_threshold": thresholds, "alpha": alpha,
            "correction": correction, "tasks_given": raw["qrel_tasks"] != options.DEFAULT_TASKS}


def _robustness_options(raw: dict[str, Any], invocation_dir: Path, catalog: Catalog) -> Robustness:
    """The robustness suite's options; a QA file is read now, so a missing or malformed one
    stops the run at start-up with the reason."""

    names = parsing.strings(options.PERTURBATIONS, raw["qrel_perturbations"]) if "qrel_perturbations" in raw else sorted(PERTURBATIONS)
    for name in names:
        if name not in PERTURBATIONS:
            raise pytest.UsageError(
                f"{options.PERTURBATIONS}: unknown perturbation {name!r}; valid: {', '.join(sorted(PERTURBATIONS))}"
            )
    if not names or len(set(names)) != len(names):
        raise pytest.UsageError(f"{options.PERTURBATIONS}: expected distinct perturbation names, but got {raw.get('qrel_perturbations')!r}")
    intensities = parsing.ints(options.INTENSITIES, raw["qrel_intensities"])
    parsing.distinct(options.INTENSITIES, intensities)
    if not intensities or any(not 1 <= i <= MAX_INTENSITY for i in intensities):
        raise pytest.UsageError(f"{options.INTENSITIES}: expected integers in [1, {MAX_INTENSITY}] (edits per prompt), "
                                f"but got {raw['qrel_intensities']!r}")
    qa_file = None
    if raw.get("qrel_qa_file") is not None:
        qa_file = parsing.path(options.QA_FILE, raw["qrel_qa_file"], invocation_dir)
        try:
            read_qa_file(qa_file)
        except ValueError as exc:
            raise pytest.UsageError(f"{options.QA_FILE}: {exc}") from None
    insertion_model = None
    if raw.get("qrel_insertion_model") is not None:
        insertion_model = parsing.path(options.INSERTION_MODEL, raw["qrel_insertion_model"], invocation_dir)
        if not (insertion_model / "config.json").is_file():
            raise pytest.UsageError(
                f"{options.INSERTION_MODEL}: expected a local masked-LM directory with a config.json, but got {insertion_model}"
            )
    limit = raw["qrel_qa_limit"]
    qa_limit = None if isinstance(limit, str) and limit.strip().lower() == "all" else parsing.integer(options.QA_LIMIT, limit, minimum=2)
    if parsing.boolean(options.ROBUSTNESS_FULL, raw.get("qrel_robustness_full", False)):
        qa_limit = None
    temperature = parsing.floats(options.TEMPERATURE, raw["qrel_temperature"])
    if len(temperature) != 1 or not 0 <= temperature[0] <= MAX_TEMPERATURE:
        raise pytest.UsageError(f"{options.TEMPERATURE}: expected one number in [0, {MAX_TEMPERATURE:g}], "
                                f"but got {raw['qrel_temperature']!r}")
    agreement = parsing.floats(options.FUZZ_AGREEMENT, raw["qrel_fuzz_agreement"])
    if len(agreement) != 1 or not 0 <= agreement[0] <= 1:
        raise pytest.UsageError(f"{options.FUZZ_AGREEMENT}: expected one number in [0, 1], but got {raw['qrel_fuzz_agreement']!r}")
    return Robustness(
        perturbations=tuple(names),
        intensities=tuple(intensities),
        qa_file=qa_file,
        insertion_model=insertion_model,
        qa_limit=qa_limit,
        samples=parsing.integer(options.SAMPLES, raw["qrel_samples"], minimum=1, maximum=MAX_SAMPLES),
        temperature=temperature[0],
        max_new_tokens=parsing.integer(options.MAX_NEW_TOKENS, raw["qrel_max_new_tokens"], minimum=1, maximum=MAX_NEW_TOKENS),
        threshold=_thresholds(raw, catalog["robustness"]),
        fuzz_examples=parsing.integer(options.FUZZ_EXAMPLES, raw["qrel_fuzz_examples"], minimum=1),
        fuzz_batch=parsing.integer(options.FUZZ_BATCH, raw["qrel_fuzz_batch"], minimum=1),
        fuzz_agreement=agreement[0],
    )


def _writable_dir(flag: str, path: Path, file: Path | None = None) -> None:
    """``path`` is a directory this process may write into, or one it may create (nothing is
    created here: a plain pytest run leaves no trace), and ``file``, if given, is not a
    directory: an output that cannot be written stops the run now, not after every test."""
    if file is not None and file.is_dir():
        raise pytest.UsageError(f"{flag}: expected a file path, but {file} is a directory")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise pytest.UsageError(f"{flag}: cannot write to {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise pytest.UsageError(f"{flag}: cannot write to {path}: {existing} is not writable")


def _writable_cache_dir(value: Any, invocation_dir: Path) -> Path:
    """The cache directory, created and checked writable now rather than mid-run."""
    if value is None:
        path = default_cache_dir()
    else:
        path = parsing.path(options.CACHE_DIR, value, invocation_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".qrel-probe-"):
            pass
    except OSError as exc:
        raise pytest.UsageError(
            f"{options.CACHE_DIR}: cannot write to {path} ({exc.strerror or type(exc).__name__}); "
            f"choose a writable directory or pass {options.NO_CACHE}"
        ) from None
    return path


def _calibration_source(value: Any, invocation_dir: Path) -> tuple[Path | None, int]:
    """The calibration file (None: the shipped set) and how many documents it holds."""
    path = None if value is None else parsing.path(options.CALIBRATION_FILE, value, invocation_dir)
    try:
        return path, len(calibration_texts(path))  # exists, is JSONL, has rows with text
    except ValueError as exc:
        raise pytest.UsageError(f"{options.CALIBRATION_FILE}: {exc}") from None
