"""Each property's settings parsed from its options (``config.QrelConfig.property_settings``,
by catalog key): what an option's declaration parses (``options.Option.parse``) goes to the
property it names under its field; what needs the run (its bit-widths, files read now, the
invocation directory) is parsed here. Also the run's tasks and levels. Every value out of its
accepted range (README: "Accepted ranges") is a ``pytest.UsageError`` naming the option."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest

from . import options, parsing
from .data.qa import read_qa_file
from .data.tasks import load_task, resolve_task
from .data.text import KLText, read_kl_text, resolve_kl_text
from .data.types import TaskRef
from .options import Option
from .perturb import PERTURBATIONS
from .properties import CALIBRATION, KL, ROBUSTNESS, Catalog, Property

# accepted ranges of numeric options (README: "Accepted ranges"; those a parser checks: options.py)
ALPHA_RANGE = (1e-6, 0.5)
MAX_INTENSITY = 64  # edits per prompt


@dataclass(frozen=True)
class PropertySettings:
    """The settings of a property whose options need no more than their declarations (a
    plugin's, or a built-in one's thresholds): each option's parsed value by its field, read
    as an attribute (``settings.threshold``)."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(f"no setting {name!r}; set: {', '.join(self.__dict__.get('values', {}))}") from None


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
    threshold: dict[int, float] = field(default_factory=dict)  # the largest mean KL by bit-width


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


@dataclass(frozen=True)
class _Run:
    """What a property's options that need the run are parsed against."""

    raw: dict[str, Any]  # every option's value by dest, defaults applied, as written
    invocation_dir: Path
    bits: tuple[int, ...]  # the run's bit-widths, pre-quantized checkpoints' included
    given: set[str]  # the dests of the options the user set


def property_settings(raw: dict[str, Any], parsed: dict[str, Any], opts: tuple[Option, ...], invocation_dir: Path,
                      catalog: Catalog, bits: tuple[int, ...], given: set[str]) -> dict[str, Any]:
    """Each catalog property's settings, by its key: its options' parsed values by field, and
    for a property with options that need the run, the typed settings its builder makes."""
    run = _Run(raw, invocation_dir, bits, given)
    out: dict[str, Any] = {}
    for prop in catalog:
        fields = {opt.name: parsed[opt.dest] for opt in opts if opt.prop == prop.key and opt.dest in parsed}
        build = _BUILDERS.get(prop.key)
        out[prop.key] = build(fields, run) if build else PropertySettings(fields)
    return out


def _kl_settings(fields: dict[str, Any], run: _Run) -> KLSettings:
    """The KL suite's text, windows, stored top-k and optional gates; a missing text file or
    an unknown task stops the run now, naming it."""
    missing = [b for b in run.bits if b not in fields["threshold"]]
    if missing:
        raise pytest.UsageError(f"{options.KL_THRESHOLD}: no threshold for {missing[0]}-bit variants")
    text = None
    if run.raw.get("qrel_kl_text") is not None:
        spec = parsing.strings(options.KL_TEXT, run.raw["qrel_kl_text"])
        if len(spec) != 1:
            raise pytest.UsageError(f"{options.KL_TEXT}: expected one file or task, but got {run.raw['qrel_kl_text']!r}")
        try:  # read now: a missing file, an unknown task or an empty text stops the run before any test
            text = read_kl_text(resolve_kl_text(spec[0], run.invocation_dir),
                                parsing.boolean(options.ALLOW_TASK_CODE, run.raw.get("qrel_allow_task_code", False)))
        except ValueError as exc:
            raise pytest.UsageError(f"{options.KL_TEXT}: {exc}") from None
    # context_given: the user set --qrel-kl-context (to any value, the default's included)
    return KLSettings(**fields, text=text, context_given="qrel_kl_context" in run.given,
                      p99_threshold=p99_thresholds(run.raw.get("qrel_kl_p99_threshold"), run.bits))


def _calibration_settings(fields: dict[str, Any], run: _Run) -> PropertySettings:
    """The calibration thresholds, and the flip rate's per bit-width (off unless given)."""
    return PropertySettings({**fields, "flips_threshold": flips_threshold(run.raw.get("qrel_flips_threshold"), run.bits)})


def metric_thresholds(raw: dict[str, Any], prop: Property) -> dict[str, float]:
    """A property's thresholds by metric key: its catalog defaults, and what its threshold
    option (metric:value pairs) sets; a key the catalog does not list is a usage error."""
    flag = prop.threshold_option
    return parsing.thresholds_of(prop)(flag, raw[flag.lstrip("-").replace("-", "_")]) if flag else prop.default_thresholds()


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
        pairs = [(b, v) for b, _, v in (p.partition(":") for p in parsing.strings(flag, value))]
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


def drift_settings(raw: dict[str, Any], parsed: dict[str, Any], invocation_dir: Path, catalog: Catalog,
                   given: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """The run's multiple-choice tasks and their subsampling, and the levels and correction of
    every gate with a statistical test; a named lm-eval task or task file is loaded now, so a
    missing dataset or a malformed file stops the run at start-up with the reason."""
    refs: list[TaskRef] = []
    allow_code = parsed["qrel_allow_task_code"]
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
    return {"tasks": tuple(refs), "task_limit": parsed["qrel_task_limit"], "alpha": alpha,
            "correction": parsed["qrel_correction"], "tasks_given": "qrel_tasks" in given}


def _robustness_settings(fields: dict[str, Any], run: _Run) -> Robustness:
    """The robustness suite's options; a QA file is read now, so a missing or malformed one
    stops the run at start-up with the reason. --qrel-robustness-full: every prompt, and paper
    000's two intensities unless --qrel-intensities names them."""
    raw, invocation_dir = run.raw, run.invocation_dir
    names = parsing.strings(options.PERTURBATIONS, raw["qrel_perturbations"]) if "qrel_perturbations" in raw else sorted(PERTURBATIONS)
    for name in names:
        if name not in PERTURBATIONS:
            raise pytest.UsageError(
                f"{options.PERTURBATIONS}: unknown perturbation {name!r}; valid: {', '.join(sorted(PERTURBATIONS))}"
            )
    if not names or len(set(names)) != len(names):
        raise pytest.UsageError(f"{options.PERTURBATIONS}: expected distinct perturbation names, but got {raw.get('qrel_perturbations')!r}")
    full = fields.pop("full")
    intensities = parsing.ints(options.INTENSITIES, raw["qrel_intensities"] if "qrel_intensities" in run.given or not full
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
    if full:
        fields["qa_limit"] = None
    return Robustness(**fields, perturbations=tuple(names), intensities=tuple(intensities), qa_file=qa_file,
                      insertion_model=insertion_model)


# the properties with options that need the run, by catalog key -> what makes their settings
_BUILDERS: dict[str, Callable[[dict[str, Any], _Run], Any]] = {
    KL.key: _kl_settings, CALIBRATION.key: _calibration_settings, ROBUSTNESS.key: _robustness_settings}


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
    return parsing.agreement(options.TOP1_THRESHOLD, value)
