"""Each suite's settings parsed from its options: the calibration and confidence tasks and
levels, the flips gate, the robustness suite and KL at real scale. ``config.QrelConfig``
holds them; every value out of its accepted range (README: "Accepted ranges") is a
``pytest.UsageError`` naming the option."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import options, parsing
from .data.qa import read_qa_file
from .data.tasks import load_task, resolve_task
from .data.text import KLText, read_kl_text, resolve_kl_text
from .perturb import PERTURBATIONS
from .properties import Catalog, Property

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
    text: KLText | None = None  # --qrel-kl-text, checked (read as far as the windows need); None: the zoo's sentences
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
    intensities: tuple[int, ...] = (4,)
    qa_file: Path | None = None  # None: the zoo's robustness questions
    insertion_model: Path | None = None  # a masked LM for word_insertion; None: the shipped word list
    qa_limit: int | None = 100  # None: every prompt
    samples: int = 4
    temperature: float = 0.7
    max_new_tokens: int = 20
    threshold: dict[str, float] = field(default_factory=dict)  # accuracy, auroc, robust_accuracy, robust_auroc
    fuzz_examples: int = 10
    fuzz_batch: int = 32
    fuzz_agreement: float = 0.5


def kl_settings(raw: dict[str, Any], invocation_dir: Path, bits: tuple[int, ...], context_given: bool) -> KLSettings:
    """The KL suite's text, windows, stored top-k and optional gates; a missing text file or
    an unknown task stops the run now, naming it. ``context_given``: the user set
    --qrel-kl-context (to any value, the default's included)."""
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
    p99 = p99_thresholds(raw.get("qrel_kl_p99_threshold"), bits)
    top1 = top1_threshold(raw.get("qrel_top1_threshold"))
    return KLSettings(
        topk=topk,
        text=text,
        context=parsing.integer(options.KL_CONTEXT, raw["qrel_kl_context"], minimum=4, maximum=MAX_KL_CONTEXT),
        context_given=context_given,
        tokens=parsing.integer(options.KL_TOKENS, raw["qrel_kl_tokens"], minimum=1),
        p99_threshold=p99,
        top1_threshold=top1,
    )


def metric_thresholds(raw: dict[str, Any], prop: Property) -> dict[str, float]:
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


def flips_threshold(value: Any, bits: tuple[int, ...]) -> dict[int, float] | None:
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


def drift_settings(raw: dict[str, Any], invocation_dir: Path, catalog: Catalog) -> dict[str, Any]:
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
    thresholds = {**metric_thresholds(raw, catalog["calibration"]), **metric_thresholds(raw, catalog["confidence"])}
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


def robustness_settings(raw: dict[str, Any], invocation_dir: Path, catalog: Catalog,
                        intensities_given: bool = False) -> Robustness:
    """The robustness suite's options; a QA file is read now, so a missing or malformed one
    stops the run at start-up with the reason. --qrel-robustness-full: every prompt, and paper
    000's two intensities unless ``intensities_given`` (--qrel-intensities named them)."""

    names = parsing.strings(options.PERTURBATIONS, raw["qrel_perturbations"]) if "qrel_perturbations" in raw else sorted(PERTURBATIONS)
    for name in names:
        if name not in PERTURBATIONS:
            raise pytest.UsageError(
                f"{options.PERTURBATIONS}: unknown perturbation {name!r}; valid: {', '.join(sorted(PERTURBATIONS))}"
            )
    if not names or len(set(names)) != len(names):
        raise pytest.UsageError(f"{options.PERTURBATIONS}: expected distinct perturbation names, but got {raw.get('qrel_perturbations')!r}")
    full = parsing.boolean(options.ROBUSTNESS_FULL, raw.get("qrel_robustness_full", False))
    intensities = parsing.ints(options.INTENSITIES, raw["qrel_intensities"] if intensities_given or not full
                               else options.FULL_INTENSITIES)
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
    if full:
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
        threshold=metric_thresholds(raw, catalog["robustness"]),
        fuzz_examples=parsing.integer(options.FUZZ_EXAMPLES, raw["qrel_fuzz_examples"], minimum=1),
        fuzz_batch=parsing.integer(options.FUZZ_BATCH, raw["qrel_fuzz_batch"], minimum=1),
        fuzz_agreement=agreement[0],
    )


def p99_thresholds(value: Any, bits: tuple[int, ...]) -> dict[int, float] | None:
    """--qrel-kl-p99-threshold by bit-width (one bound for all, bits:nats pairs, a TOML table or
    list); None: off. A run's settings and a merge's check of its records both read it here."""
    if value is None:
        return None
    # a TOML table or list of pairs as --qrel-kl-threshold takes
    if isinstance(value, (dict, list)) or ":" in str(value):
        p99 = parsing.bit_map(options.KL_P99_THRESHOLD, value)
        missing = [b for b in bits if b not in p99]
        if missing:
            raise pytest.UsageError(f"{options.KL_P99_THRESHOLD}: no threshold for {missing[0]}-bit variants")
    else:
        one = parsing.floats(options.KL_P99_THRESHOLD, str(value))
        if len(one) != 1:
            raise pytest.UsageError(f"{options.KL_P99_THRESHOLD}: expected one positive number or bits:nats "
                                    f"pairs, but got {value!r}")
        p99 = {b: one[0] for b in bits}
    zero = next((b for b, t in p99.items() if not 0 < t < math.inf), None)
    if zero is not None:  # a zero tail bound fails every variant: a typo, as a zero threshold is
        raise pytest.UsageError(f"{options.KL_P99_THRESHOLD}: expected a positive, finite p99 bound for each "
                                f"bit-width, but got {zero}:{p99[zero]}")
    return p99


def top1_threshold(value: Any) -> float | None:
    """--qrel-top1-threshold: the least top-1 agreement with the base; None: off."""
    if value is None:
        return None
    one = parsing.floats(options.TOP1_THRESHOLD, value)
    if len(one) != 1 or not 0 < one[0] <= 1:
        raise pytest.UsageError(f"{options.TOP1_THRESHOLD}: expected one agreement in (0, 1], but got {value!r}")
    return one[0]
