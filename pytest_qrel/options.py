"""Every ``--qrel-*`` option, its ini twin and its ``[tool.qrel]`` twin, in one place.

Precedence: command line > ``[tool.qrel]`` in the rootdir's pyproject.toml > pytest ini
(``qrel_models = ...`` in pytest.ini / tox.ini / ``[tool.pytest.ini_options]``) > default.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import parsing, placement, progress
from .parsing import Parser, boolean, choice_of, integer_in, number_in
from .properties import CALIBRATION, CONFIDENCE, FUZZ, KL, ROBUSTNESS, SCALING, Property
from .quant.mixed import GRANULARITIES, SELECTIONS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MODELS = "--qrel-models"
METHODS = "--qrel-methods"
BITS = "--qrel-bits"
SPARSITIES = "--qrel-sparsities"
GROUP_SIZE = "--qrel-group-size"
REPORT_DIR = "--qrel-report-dir"
KL_THRESHOLD = "--qrel-kl-threshold"
KL_P99_THRESHOLD = "--qrel-kl-p99-threshold"
TOP1_THRESHOLD = "--qrel-top1-threshold"
KL_TOPK = "--qrel-kl-topk"
KL_TEXT = "--qrel-kl-text"
KL_CONTEXT = "--qrel-kl-context"
KL_TOKENS = "--qrel-kl-tokens"
ALLOW_PICKLE = "--qrel-allow-pickle"
ALLOW_UNCHECKED = "--qrel-allow-unchecked"
ALLOW_TASK_CODE = "--qrel-allow-task-code"
QUANT_RATIO = "--qrel-quant-ratio"
QUANT_GRANULARITY = "--qrel-quant-granularity"
QUANT_SELECT = "--qrel-quant-select"
QUANT_TRIALS = "--qrel-quant-trials"
CALIBRATION_SAMPLES = "--qrel-calibration-samples"
CALIBRATION_FILE = "--qrel-calibration-file"
SMOOTHQUANT_ALPHA = "--qrel-smoothquant-alpha"
SEED = "--qrel-seed"
PERTURBATIONS = "--qrel-perturbations"
INTENSITIES = "--qrel-intensities"
QA_FILE = "--qrel-qa-file"
INSERTION_MODEL = "--qrel-insertion-model"
QA_LIMIT = "--qrel-qa-limit"
ROBUSTNESS_FULL = "--qrel-robustness-full"
SAMPLES = "--qrel-samples"
TEMPERATURE = "--qrel-temperature"
MAX_NEW_TOKENS = "--qrel-max-new-tokens"
ROBUSTNESS_THRESHOLD = "--qrel-robustness-threshold"
FUZZ_EXAMPLES = "--qrel-fuzz-examples"
FUZZ_BATCH = "--qrel-fuzz-batch"
FUZZ_AGREEMENT = "--qrel-fuzz-agreement"
CACHE_DIR = "--qrel-cache-dir"
NO_CACHE = "--qrel-no-cache"
BASE = "--qrel-base"
MIN_COVERAGE = "--qrel-min-coverage"
SCALING_CONFIDENCE = "--qrel-scaling-confidence"
BASELINE = "--qrel-baseline"
SAVE_BASELINE = "--qrel-save-baseline"
COMPARE_FAIL = "--qrel-compare-fail"
BASELINE_STRICT = "--qrel-baseline-strict"
RESUME = "--qrel-resume"
PROGRESS = "--qrel-progress"
MERGE = "--qrel-merge"
TASKS = "--qrel-tasks"
TASK_LIMIT = "--qrel-task-limit"
CALIBRATION_THRESHOLD = "--qrel-calibration-threshold"
CONFIDENCE_THRESHOLD = "--qrel-confidence-threshold"
FLIPS_THRESHOLD = "--qrel-flips-threshold"
ALPHA = "--qrel-alpha"
CORRECTION = "--qrel-correction"

DEFAULT_METHODS = "hqq,bnb"
# what --qrel-methods takes, as its help lists it: quant.BACKENDS and quant.PRUNERS (a layer up;
# tests/unit/test_sparsity_axis.py checks that this is their list)
QUANT_METHODS = ("rtn", "hqq", "bnb", "bnb-fp4", "gptq", "awq", "quanto", "quanto-fp8", "quanto-a8", "quanto-fp8-a8",
                 "smoothquant")
PRUNE_METHODS = ("wanda", "sparsegpt")
DEFAULT_BITS = "2,3,4,8"
DEFAULT_SPARSITIES = "0.1,0.3,0.5,2:4"  # paper 000 §4.2's (Figs. 9-10)
DEFAULT_GROUP_SIZE = "64"
DEFAULT_REPORT_DIR = "qrel-report"


def metric_defaults(prop: Property) -> str:
    """A property's default thresholds as its option writes them (metric:value pairs)."""
    return ",".join(f"{key}:{value:g}" for key, value in prop.default_thresholds().items())


# thresholds and levels: from the catalog (properties.py), where each one's source is cited
DEFAULT_KL_THRESHOLD = ",".join(f"{b}:{t:g}" for b, t in KL.metrics[0].threshold.items())  # type: ignore[union-attr]
DEFAULT_SCALING_CONFIDENCE = "0.99"
# robustness metrics are differences that sit near 0: a relative tolerance of them is noise,
# so they get an absolute one on the scale of their thresholds
DEFAULT_COMPARE_FAIL = f"*:10%,{ROBUSTNESS.records_as}:0.05"
DEFAULT_TASKS = "zoo_recall,zoo_utilization,zoo_utilization_heldout"
DEFAULT_TASK_LIMIT = "500"
DEFAULT_CALIBRATION_THRESHOLD = metric_defaults(CALIBRATION)
DEFAULT_CONFIDENCE_THRESHOLD = metric_defaults(CONFIDENCE)
DEFAULT_ALPHA = f"{CALIBRATION.metrics[0].alpha:g}"
DEFAULT_KL_TOPK = "1024"
DEFAULT_KL_CONTEXT = "512"
DEFAULT_KL_TOKENS = "32768"
DEFAULT_INTENSITIES = "4"  # paper 000 Table 7's (its recommendations average the 15 perturbations at 4)
FULL_INTENSITIES = "4,16"  # paper 000 App. B: --qrel-robustness-full
DEFAULT_FUZZ_EXAMPLES = "10"
DEFAULT_QA_LIMIT = "100"
DEFAULT_ROBUSTNESS_THRESHOLD = metric_defaults(ROBUSTNESS)
DEFAULT_FUZZ_AGREEMENT = f"{FUZZ.metrics[0].threshold:g}"

# accepted ranges of numeric options (README: "Accepted ranges")
MAX_SAMPLES = 64
MAX_TEMPERATURE = 5.0
MOST_NEW_TOKENS = 512
MAX_KL_TOPK = 4096  # above it, --qrel-kl-topk=all stores less per token than the ids would take
MAX_KL_CONTEXT = 1 << 17


@dataclass(frozen=True)
class Option:
    """One option, declared once: flag, help, default, parser, and the property whose settings
    (``QrelConfig.property_settings[prop]``) it sets; its ini name, ``[tool.qrel]`` key, --help,
    README's table row and results.json ``settings`` key are generated from it."""

    flag: str
    help: str
    default: str | None
    is_flag: bool = False  # on when given; parsed with parsing.boolean
    # (flag, value) -> typed value; None: parsed where it needs the run (paths, bit-widths, files read now)
    parse: Parser | None = None
    prop: str | None = None  # the catalog key of the property it belongs to; None: the run's own
    field: str = ""  # its name in the property's settings; "" (the default): the key, - as _

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def name(self) -> str:
        """Its field in the settings it sets."""
        return self.field or self.key.replace("-", "_")

    @property
    def key(self) -> str:
        """The name in ``[tool.qrel]``: the flag without its ``--qrel-`` prefix."""
        return self.flag.removeprefix("--qrel-")


OPTIONS: tuple[Option, ...] = (
    Option(MODELS, "comma-separated models: zoo names, local HF model directories, hub ids "
           "or GGUF files (default: every model of the shipped zoo)", None),
    Option(BASE, "the full-precision model that pre-quantized checkpoints in --qrel-models are "
           "compared with (default: each checkpoint's own base_model field)", None),
    Option(METHODS, f"comma-separated compression methods: quantization ({', '.join(QUANT_METHODS)}) or pruning "
           f"({', '.join(PRUNE_METHODS)}, at each of --qrel-sparsities) (default: {DEFAULT_METHODS})", DEFAULT_METHODS,
           parse=parsing.distinct_strings),
    Option(BITS, f"comma-separated weight bit-widths (default: {DEFAULT_BITS})", DEFAULT_BITS, parse=parsing.distinct_ints),
    Option(SPARSITIES, "comma-separated sparsities of the pruning methods (wanda, sparsegpt): shares in (0, 1) or n:m "
           f"patterns; each pruned variant is gated at the 8-bit thresholds (default: {DEFAULT_SPARSITIES})",
           DEFAULT_SPARSITIES, parse=parsing.sparsities),
    Option(GROUP_SIZE, f"quantization group size for group-wise methods (default: {DEFAULT_GROUP_SIZE})",
           DEFAULT_GROUP_SIZE, parse=parsing.group_size),
    Option(REPORT_DIR, f"directory for results.json and the report (default: {DEFAULT_REPORT_DIR})",
           DEFAULT_REPORT_DIR),
    Option(KL_THRESHOLD, "largest mean token KL to base per bit-width, as bits:nats pairs "
           f"(default: {DEFAULT_KL_THRESHOLD})", DEFAULT_KL_THRESHOLD,
           parse=parsing.bit_map, prop=KL.key, field="threshold"),
    Option(KL_P99_THRESHOLD, "largest 99th percentile of the per-token KL to base, in nats, one number or "
           "bits:nats pairs (default: off)", None, prop=KL.key, field="p99_threshold"),
    Option(TOP1_THRESHOLD, "smallest share of tokens whose most likely next token the variant and the base "
           "agree on, in (0, 1] (default: off)", None, parse=parsing.agreement, prop=KL.key),
    Option(KL_TOPK, f"base log-probs stored per token for the KL bounds, or all for the exact full-vocabulary KL "
           f"(default: {DEFAULT_KL_TOPK})", DEFAULT_KL_TOPK,
           parse=integer_in(1, MAX_KL_TOPK, all_is_none=True), prop=KL.key, field="topk"),
    Option(KL_TEXT, "text of the KL suite: a file (plain text, or JSONL with a 'text' field) or an lm-eval "
           "perplexity task (e.g. wikitext), cut into windows of --qrel-kl-context tokens scoring the second half "
           "of each (default: the zoo's held-out sentences; for a model outside the zoo, the shipped prose)", None,
           prop=KL.key, field="text"),
    Option(KL_CONTEXT, f"tokens per window of --qrel-kl-text, at most the model's maximum (default: {DEFAULT_KL_CONTEXT})",
           DEFAULT_KL_CONTEXT, parse=integer_in(4, MAX_KL_CONTEXT), prop=KL.key, field="context"),
    Option(KL_TOKENS, f"most tokens scored on --qrel-kl-text (default: {DEFAULT_KL_TOKENS})", DEFAULT_KL_TOKENS,
           parse=integer_in(1), prop=KL.key, field="tokens"),
    Option(QUANT_RATIO, "comma-separated mixed-precision quantization ratios: the share of linear-layer "
           "weights quantized, the rest kept at base precision (paper 004; default: 1)", "1", parse=parsing.ratios),
    Option(QUANT_GRANULARITY, "what mixed precision allocates: layer (transformer blocks) or matmul "
           "(single linear layers) (default: matmul)", "matmul", parse=choice_of(GRANULARITIES)),
    Option(QUANT_SELECT, "how mixed precision picks what to quantize: random (paper 004's random "
           "search) or sensitivity (least sensitive first) (default: random)", "random", parse=choice_of(SELECTIONS)),
    Option(QUANT_TRIALS, "random-search trials per mixed-precision variant (default: 20)", "20", parse=integer_in(1)),
    Option(CALIBRATION_SAMPLES, "calibration documents for data-driven quantizers and the "
           "mixed-precision search (default: 128)", "128", parse=integer_in(1)),
    Option(CALIBRATION_FILE, "JSONL file of calibration documents (a 'text' field per row) for gptq, W8A8 "
           "and the mixed-precision search (default: the shipped zoo calibration set)", None),
    Option(SMOOTHQUANT_ALPHA, "migration strength of smoothquant, in [0, 1]: its smoothing factors are "
           "max|X_j|^alpha / max|W_j|^(1-alpha) per input channel (Xiao et al. 2023 eq. 4; default: 0.5)", "0.5",
           parse=number_in(0, 1)),
    Option(SEED, "seed of the mixed-precision random search (default: 0)", "0", parse=integer_in(0)),
    Option(MIN_COVERAGE, "smallest share of the weights asked to be quantized that a variant must really "
           "quantize, else it fails with the layers left out and why (default: 1)", "1", parse=number_in(0, 1)),
    Option(SCALING_CONFIDENCE, "confidence of the prediction band a variant must stay within, fitted "
           f"on the other variants of its bit-width (paper 000 eq. 6; default: {DEFAULT_SCALING_CONFIDENCE})",
           DEFAULT_SCALING_CONFIDENCE,
           parse=number_in(0, 1, open_low=True, open_high=True), prop=SCALING.key, field="band_confidence"),
    Option(BASELINE, "a results.json of an earlier run: each metric that regressed beyond its "
           "--qrel-compare-fail tolerance fails, and the report shows old, new and change (default: none)", None),
    Option(SAVE_BASELINE, "write this run's results.json to this path too, as a baseline for later runs "
           "(default: none)", None),
    Option(COMPARE_FAIL, "tolerated regression per metric or property against --qrel-baseline: "
           "metric:N% (relative) or metric:N (absolute), '*' for every other metric "
           f"(default: {DEFAULT_COMPARE_FAIL})", DEFAULT_COMPARE_FAIL),
    Option(BASELINE_STRICT, "fail every gated metric that --qrel-baseline does not hold (default: list them as not "
           "in the baseline)", None, is_flag=True),
    Option(RESUME, "resume a run that was killed: the tests whose records the report directory's journal.jsonl "
           "holds are not run again, and the report ends as an uninterrupted run's would (default: a fresh run)",
           None, is_flag=True),
    Option(PROGRESS, "a progress line on stderr while models are quantized and evaluated: on, off, or auto "
           "(on a terminal, in the controlling process, not under -q) (default: auto)", "auto",
           parse=choice_of(progress.MODES)),
    Option(TASKS, "comma-separated multiple-choice tasks of the calibration and confidence suites: zoo tasks, "
           f"lm-eval task names or local lm-eval task YAML files (default: {DEFAULT_TASKS})", DEFAULT_TASKS),
    Option(TASK_LIMIT, "questions per task, drawn at random with --qrel-seed (all: every question) "
           f"(default: {DEFAULT_TASK_LIMIT})", DEFAULT_TASK_LIMIT, parse=integer_in(2, all_is_none=True)),
    Option(CALIBRATION_THRESHOLD, "largest increase over the base of ece, ace and brier, as metric:value "
           f"pairs (default: {DEFAULT_CALIBRATION_THRESHOLD})", DEFAULT_CALIBRATION_THRESHOLD,
           parse=parsing.thresholds_of(CALIBRATION), prop=CALIBRATION.key, field="threshold"),
    Option(CONFIDENCE_THRESHOLD, "largest drop of true-class confidence (conf_true) and increase of "
           f"predictive entropy (entropy) from the base (default: {DEFAULT_CONFIDENCE_THRESHOLD})",
           DEFAULT_CONFIDENCE_THRESHOLD, parse=parsing.thresholds_of(CONFIDENCE), prop=CONFIDENCE.key, field="threshold"),
    Option(FLIPS_THRESHOLD, "largest share of a task's questions whose correctness the variant changes from the "
           "base's, right to wrong plus wrong to right (flip_rate, Dutta et al. 2024), one share in (0, 1) or "
           "bits:share pairs (default: off)", None, prop=CALIBRATION.key),
    Option(ALPHA, "significance level of the calibration and confidence gates after correction: one number, "
           f"or metric:level pairs (default: {DEFAULT_ALPHA})", DEFAULT_ALPHA),
    Option(CORRECTION, "multiple-comparison correction over a model's variants x tasks x metrics: holm "
           "(family-wise error) or bh (Benjamini-Hochberg false discovery rate) (default: holm)", "holm",
           parse=choice_of(("holm", "bh"))),
    Option(PERTURBATIONS, "comma-separated perturbations of the robustness suite (default: all 15 of "
           "paper 000: char_insertion, ..., translation)", None, prop=ROBUSTNESS.key),
    Option(INTENSITIES, f"comma-separated perturbation intensities, edits per prompt (default: {DEFAULT_INTENSITIES}, "
           f"paper 000 Table 7's; with {ROBUSTNESS_FULL}: {FULL_INTENSITIES}, App. B)", DEFAULT_INTENSITIES,
           prop=ROBUSTNESS.key),
    Option(INSERTION_MODEL, "local masked LM (e.g. a RoBERTa directory, safetensors) that proposes the words "
           "word_insertion inserts, as paper 000 does (default: a shipped list of semantically light words)", None,
           prop=ROBUSTNESS.key),
    Option(QA_FILE, "JSONL file of open-ended questions for the robustness suite: a 'prompt' and its "
           "'answers' (and an optional 'stratum') per row (default: the zoo's robustness questions)", None,
           prop=ROBUSTNESS.key),
    Option(QA_LIMIT, f"prompts of the robustness suite, drawn at random with --qrel-seed (all: every prompt) "
           f"(default: {DEFAULT_QA_LIMIT})", DEFAULT_QA_LIMIT, parse=integer_in(2, all_is_none=True), prop=ROBUSTNESS.key),
    Option(ROBUSTNESS_FULL, "the full robustness run of paper 000: every prompt of the QA set, whatever "
           f"--qrel-qa-limit says, and intensities {FULL_INTENSITIES} unless --qrel-intensities is given (default: off)",
           None, is_flag=True, prop=ROBUSTNESS.key, field="full"),
    Option(SAMPLES, "answers sampled per prompt (default: 4)", "4", parse=integer_in(1, MAX_SAMPLES), prop=ROBUSTNESS.key),
    Option(TEMPERATURE, "sampling temperature of the answers, 0 for greedy (paper 000 A.2; default: 0.7)", "0.7",
           parse=number_in(0, MAX_TEMPERATURE), prop=ROBUSTNESS.key),
    Option(MAX_NEW_TOKENS, "most tokens of a sampled answer (paper 000 A.2; default: 20)", "20",
           parse=integer_in(1, MOST_NEW_TOKENS), prop=ROBUSTNESS.key),
    Option(ROBUSTNESS_THRESHOLD, "largest accuracy and AUROC drop from the base under a perturbation (accuracy, "
           "auroc) and beyond the base's own drop from unperturbed prompts (robust_accuracy, robust_auroc) "
           f"(default: {DEFAULT_ROBUSTNESS_THRESHOLD})", DEFAULT_ROBUSTNESS_THRESHOLD,
           parse=parsing.thresholds_of(ROBUSTNESS), prop=ROBUSTNESS.key, field="threshold"),
    Option(FUZZ_EXAMPLES, "hypothesis examples of the fuzzing test, each a batch of perturbed prompts "
           f"(default: {DEFAULT_FUZZ_EXAMPLES})", DEFAULT_FUZZ_EXAMPLES, parse=integer_in(1), prop=FUZZ.records_as),
    Option(FUZZ_BATCH, "distinct prompts per fuzzing example, each perturbed (default: 32)", "32",
           parse=integer_in(1), prop=FUZZ.records_as),
    Option(FUZZ_AGREEMENT, "smallest share of a fuzzing batch whose greedy answers the variant and the base must "
           f"agree on (default: {DEFAULT_FUZZ_AGREEMENT})", DEFAULT_FUZZ_AGREEMENT,
           parse=number_in(0, 1), prop=FUZZ.records_as),
    Option(CACHE_DIR, "directory of the quantized-model cache (default: the user cache dir, "
           "e.g. ~/.cache/pytest-qrel/quantized)", None),
    Option(NO_CACHE, "quantize every variant afresh: neither read nor write the cache (default: cache on)",
           None, is_flag=True),
    Option(ALLOW_UNCHECKED, "accept a run in which no gate could be checked (all not checked or skipped), or a "
           "named model got no gate; without it such a run fails, saying what was not checked and why (default: off)",
           None, is_flag=True),
    Option(ALLOW_TASK_CODE, "allow task YAMLs of --qrel-tasks and --qrel-kl-text that run Python from beside them "
           "(`!function`, also through `include:`), and render task templates outside jinja's sandbox, like "
           "trust_remote_code (default: refuse them; templates sandboxed)", None, is_flag=True),
    Option(ALLOW_PICKLE, "allow loading checkpoints stored as pickle (.bin) files, which can run "
           "code when loaded (default: refuse, safetensors only)", None, is_flag=True),
    *placement.options(Option, choice_of, integer_in),
)


MERGE_HELP = ("run no test: merge the results.json of separate runs (each with its own --qrel-models, the same other "
              "settings) into one report in --qrel-report-dir, as one run over their union")


def add_options(parser: pytest.Parser, opts: tuple[Option, ...] = OPTIONS, merge: bool = True) -> None:
    group = parser.getgroup("qrel", "quantized-model reliability gates (pytest-qrel)")
    for opt in opts:
        if opt.is_flag:
            group.addoption(opt.flag, action="store_true", default=None, dest=opt.dest, help=_escaped(opt.help))
            parser.addini(opt.dest, opt.help, type="bool", default=None)
        else:
            group.addoption(opt.flag, action="store", default=None, dest=opt.dest, metavar="VALUE", help=_escaped(opt.help))
            # default None: an ini value that is absent is told apart from one that is set
            parser.addini(opt.dest, opt.help, default=None)
    if merge:
        group.addoption(MERGE, nargs="+", default=None, dest="qrel_merge", metavar="RESULTS_JSON", help=MERGE_HELP)


def parsed(raw: dict[str, Any], opts: tuple[Option, ...] = OPTIONS) -> dict[str, Any]:
    """Every option that needs no more than its declaration, parsed from ``raw`` (by dest,
    defaults applied), by dest: a flag not given is false, an option with no value is absent."""
    out: dict[str, Any] = {}
    for opt in opts:
        value = raw.get(opt.dest)
        if opt.is_flag:
            out[opt.dest] = boolean(opt.flag, False if value is None else value)
        elif opt.parse is not None and value is not None:
            out[opt.dest] = opt.parse(opt.flag, value)
    return out


# what a run tests and where it writes: runs joined by --qrel-merge may differ in these; every
# other option changes what is measured or how it is judged, so merged runs must agree on it
PER_RUN = frozenset({MODELS, BASE, METHODS, BITS, SPARSITIES, GROUP_SIZE, QUANT_RATIO, REPORT_DIR, CACHE_DIR, NO_CACHE, PROGRESS,
                     RESUME, SAVE_BASELINE}) | placement.WHERE
# what a resumed run may change (issue 34): where it writes and how it shows progress; its variants
# (models, methods, bits, ...) and every other setting must be the journaled run's
WHERE = frozenset({REPORT_DIR, CACHE_DIR, NO_CACHE, PROGRESS, RESUME, SAVE_BASELINE}) | placement.WHERE


def key_of(flag: str) -> str:
    """An option's name in ``[tool.qrel]`` and in results.json's ``settings``."""
    return flag.removeprefix("--qrel-")


def run_settings(raw: dict[str, Any], ignored: frozenset[str] = PER_RUN,
                 opts: tuple[Option, ...] = OPTIONS) -> dict[str, Any]:
    """results.json's ``settings``: every option outside ``PER_RUN`` (the journal's: outside
    ``WHERE``) by its key, as the run read it (defaults applied; a flag not given is false;
    scalars as strings, so that 0.05 from [tool.qrel] and "0.05" from the command line are one
    setting)."""
    def plain(opt: Option, value: Any) -> Any:
        if opt.is_flag:  # as the run reads it: a TOML or ini "false" is false (bool("false") is not)
            return boolean(opt.flag, False if value is None else value)
        return value if value is None or isinstance(value, (list, dict)) else str(value)

    return {opt.key: plain(opt, raw.get(opt.dest)) for opt in opts if opt.flag not in ignored}


def _escaped(help_text: str) -> str:  # argparse %-formats help texts: a literal % (as in kl:10%) is written %%
    return help_text.replace("%", "%%")


def given_on_command_line(config: pytest.Config) -> bool:
    return any(config.getoption(opt.dest) is not None for opt in OPTIONS) or bool(config.getoption("qrel_merge", None))


def raw_values(config: pytest.Config, opts: tuple[Option, ...] = OPTIONS) -> dict[str, Any]:
    """The value of every option that is set, by dest, after the precedence above, in the
    type it was written in (a string from the command line or an ini file; a TOML bool,
    number, string, list or table from ``[tool.qrel]``). Options nobody set are absent:
    ``config.QrelConfig`` applies the defaults and checks every type."""
    table = _tool_qrel_table(config.rootpath)
    unknown = set(table) - {opt.key for opt in opts}
    if unknown:
        valid = ", ".join(sorted(opt.key for opt in opts))
        raise pytest.UsageError(f"[tool.qrel]: unknown keys {sorted(unknown)}; expected some of: {valid}")
    values: dict[str, Any] = {}
    for opt in opts:
        value = config.getoption(opt.dest)
        if value is None:
            value = table.get(opt.key)
        if value is None:
            value = config.getini(opt.dest)
        if value is not None:
            values[opt.dest] = value
    if config.getoption("qrel_merge", None):
        values["qrel_merge"] = config.getoption("qrel_merge")
    return values


def defaults(opts: tuple[Option, ...] = OPTIONS) -> dict[str, str]:
    """Every option's default, by dest (flags are off by default and have none)."""
    return {opt.dest: opt.default for opt in opts if opt.default is not None}


def _tool_qrel_table(rootpath: Path) -> dict[str, Any]:
    pyproject = rootpath / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise pytest.UsageError(f"{pyproject}: not valid TOML ({exc})") from None
    return data.get("tool", {}).get("qrel", {})
