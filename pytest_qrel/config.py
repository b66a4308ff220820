"""Every option parsed, type-checked and validated once into a frozen QrelConfig."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import catalog_options, options, parsing
from .baseline import Baseline
from .cache import default_cache_dir, installed_version
from .checkpoints import Checkpoint, split_prequantized
from .data import calibration_texts
from .models import ZOO_MODELS, resolve_model
from .parsing import Tolerance
from .placement import DEVICE_MAP, MAX_MEMORY, OFFLOADABLE_METHODS, Placement
from .properties import CATALOG, Catalog
from .quant import BACKENDS, PRUNERS, get_backend, supported_bits
from .settings import PropertySettings, drift_settings, property_settings
from .variants import PRUNED_BITS, Sparsity

if TYPE_CHECKING:
    from .data.types import TaskRef


@dataclass(frozen=True)
class QrelConfig:
    models: tuple[tuple[str, str], ...]  # (name, source) of full-precision models
    methods: tuple[str, ...]
    bits: tuple[int, ...]
    group_size: int | None
    report_dir: Path
    allow_pickle: bool
    cache_dir: Path | None  # None: caching off
    quant_ratios: tuple[float, ...] = (1.0,)
    sparsities: tuple[Sparsity, ...] = ()  # of the pruning methods' variants (--qrel-sparsities)
    granularity: str = "matmul"
    selection: str = "random"
    trials: int = 20
    calibration_samples: int = 128
    calibration_file: Path | None = None  # None: the shipped zoo calibration set
    smoothquant_alpha: float = 0.5  # --qrel-smoothquant-alpha: smoothquant's migration strength
    seed: int = 0
    min_coverage: float = 1.0
    checkpoints: tuple[Checkpoint, ...] = ()
    baseline: Baseline | None = None  # an earlier run's results, to compare with
    save_baseline: Path | None = None
    compare_fail: dict[str, Tolerance] = field(
        default_factory=lambda: parsing.tolerances(options.COMPARE_FAIL, options.DEFAULT_COMPARE_FAIL))
    tasks: tuple[TaskRef, ...] = ()  # multiple-choice tasks of the properties parametrized by task
    task_limit: int | None = 500  # questions per task (None: all)
    alpha: dict[str, float] = field(default_factory=dict)  # significance level by metric key
    correction: str = "holm"
    tasks_given: bool = False  # False: the default zoo tasks, which only zoo models are tested on
    # each property's settings by its catalog key (what its options set: settings.property_settings);
    # its measure reads its own entry
    property_settings: dict[str, Any] = field(default_factory=dict)
    allow_unchecked: bool = False  # a run that checked nothing (or a named model nothing) may pass
    baseline_strict: bool = False  # a metric the baseline does not hold fails
    resume: bool = False  # run only the tests the report directory's journal does not hold
    progress: str = "auto"  # --qrel-progress: on, off, auto (progress.py)
    dtype: str = "auto"  # --qrel-dtype: what the base computes in (it changes numbers: compared on resume)
    placement: Placement = field(default_factory=Placement)  # where weights live (placement.py), dtype included
    merge: tuple[Path, ...] = ()  # --qrel-merge: the results.json files joined, no test run
    # with --qrel-merge: the settings given to the merge itself (command line or [tool.qrel]),
    # which must be the runs' own: a merge decides with the runs' settings, never others
    merge_given: dict = field(default_factory=dict, compare=False)
    settings: dict = field(default_factory=dict, compare=False)  # results.json's settings (options.run_settings)
    journal_settings: dict = field(default_factory=dict, compare=False)  # effective settings and inputs (journal.py)
    models_given: bool = False  # --qrel-models named the models (not the default zoo)
    catalog: Catalog = field(default=CATALOG, compare=False, repr=False)  # the run's properties

    @classmethod
    def from_values(cls, values: dict[str, Any], invocation_dir: Path, catalog: Catalog = CATALOG) -> QrelConfig:
        """Parse ``values`` (by option dest; absent or None: the default) into a config;
        anything malformed is a ``pytest.UsageError`` naming the option and what it expected.
        Each option is parsed as its declaration says (``options.Option.parse``); what needs
        the run (paths, models, files read now, the bit-widths) is parsed here and in settings."""
        opts = catalog_options.for_catalog(catalog)
        given = {k: v for k, v in values.items() if v is not None}
        raw = {**options.defaults(opts), **given}
        models = parsing.strings(options.MODELS, raw.get("qrel_models") or "") or list(ZOO_MODELS)
        resolved, checkpoints = split_prequantized([resolve_model(m) for m in models], raw.get("qrel_base"))
        names = [name for name, _ in resolved]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise pytest.UsageError(f"{options.MODELS}: two models would share the test id {dupes[0]!r}; rename one")
        value = options.parsed(raw, opts)
        methods = value["qrel_methods"]
        _check_methods(methods, explicit="qrel_methods" in given)
        _check_mixed_precision(methods, value["qrel_quant_ratio"])
        valid_bits = supported_bits()
        bits = value["qrel_bits"]
        if not bits:
            raise pytest.UsageError(f"{options.BITS}: expected at least one bit-width in {valid_bits}")
        for b in bits:
            if b not in valid_bits:
                raise pytest.UsageError(
                    f"{options.BITS}: no backend quantizes to {b} bits; valid bit-widths: {', '.join(map(str, valid_bits))}"
                )
        samples = value["qrel_calibration_samples"]
        calibration_file, available = _calibration_source(raw.get("qrel_calibration_file"), invocation_dir)
        if samples > available:
            raise pytest.UsageError(
                f"{options.CALIBRATION_SAMPLES}: {samples} asked for, but "
                f"{calibration_file or 'the shipped calibration set'} has {available} documents"
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
        if not value["qrel_no_cache"]:
            cache_dir = _writable_cache_dir(raw.get("qrel_cache_dir"), invocation_dir)
        # pruned variants are gated at the 8-bit thresholds (variants.PRUNED_BITS)
        pruned = (PRUNED_BITS,) if any(m in PRUNERS for m in methods) else ()
        run_bits = tuple(dict.fromkeys(bits + pruned + tuple(c.bits for c in checkpoints)))
        config = cls(
            models=resolved,
            methods=methods,
            bits=bits,
            sparsities=value["qrel_sparsities"],
            group_size=value["qrel_group_size"],
            report_dir=report_dir,
            allow_pickle=value["qrel_allow_pickle"],
            allow_unchecked=value["qrel_allow_unchecked"],
            models_given=bool(raw.get("qrel_models")),
            cache_dir=cache_dir,
            quant_ratios=value["qrel_quant_ratio"],
            granularity=value["qrel_quant_granularity"],
            selection=value["qrel_quant_select"],
            trials=value["qrel_quant_trials"],
            calibration_samples=samples,
            calibration_file=calibration_file,
            smoothquant_alpha=value["qrel_smoothquant_alpha"],
            seed=value["qrel_seed"],
            min_coverage=value["qrel_min_coverage"],
            checkpoints=tuple(checkpoints),
            baseline=baseline,
            save_baseline=save_baseline,
            compare_fail=compare_fail_tolerances(raw, catalog),
            baseline_strict=value["qrel_baseline_strict"],
            resume=value["qrel_resume"],
            progress=value["qrel_progress"],
            dtype=value["qrel_dtype"],
            placement=_placement(value, methods, bool(checkpoints)),
            merge=tuple(parsing.path(options.MERGE, p, invocation_dir) for p in raw.get("qrel_merge") or ()),
            settings=options.run_settings(raw, opts=opts),
            merge_given={k: v for k, v in options.run_settings(raw, opts=opts).items()
                         if "qrel_" + k.replace("-", "_") in given and k != options.key_of(options.MERGE)},
            **drift_settings(raw, value, invocation_dir, catalog, set(given)),
            property_settings=property_settings(raw, value, opts, invocation_dir, catalog, run_bits, set(given)),
            catalog=catalog,
        )
        return dataclasses.replace(config, journal_settings=effective_settings(config))


def _placement(value: dict[str, Any], methods: tuple[str, ...], prequantized: bool) -> Placement:
    placed = Placement(value["qrel_device_map"], value.get("qrel_max_memory"), value["qrel_dtype"],
                       value["qrel_gpus_per_worker"])
    if placed.max_memory and not placed.dispatched:
        raise pytest.UsageError(f"{MAX_MEMORY}: applies only with {DEVICE_MAP}=auto")
    others = [m for m in methods if m not in OFFLOADABLE_METHODS]
    if placed.dispatched and others:
        raise pytest.UsageError(f"{DEVICE_MAP}=auto: {', '.join(others)} cannot quantize an offloaded base (they run or "
                                f"load the whole model); use {', '.join(OFFLOADABLE_METHODS)}")
    if placed.dispatched and prequantized:
        raise pytest.UsageError(f"{DEVICE_MAP}=auto: pre-quantized checkpoints are loaded whole by their own "
                                "libraries, not beside an offloaded base; gate them without it")
    return placed


def _check_methods(methods: tuple[str, ...], explicit: bool) -> None:
    """Known methods only; a method the user named whose library is missing is an error
    (the gate must not go green having checked nothing); the default list may skip."""
    valid = sorted([*(name for name, backend in BACKENDS.items() if backend.quantizes), *PRUNERS])
    if not methods:
        raise pytest.UsageError(f"{options.METHODS}: expected at least one method in {valid}")
    for method in methods:
        if method in BACKENDS and not get_backend(method).quantizes:  # compressed-tensors, gguf
            raise pytest.UsageError(
                f"{options.METHODS}: {method} loads pre-quantized checkpoints and does not quantize; "
                f"give the checkpoint (its directory, or a .gguf file) to {options.MODELS}"
            )
        if method not in valid:
            raise pytest.UsageError(
                f"{options.METHODS}: unknown method {method!r}; valid methods: {', '.join(valid)}"
            )
        if method in PRUNERS:  # torch only: nothing to install
            continue
        backend = get_backend(method)
        missing = backend.missing_packages()
        if explicit and missing:
            raise pytest.UsageError(
                f"{options.METHODS}: {method} needs {', '.join(missing)}, which is not installed: "
                f"pip install 'pytest-qrel[{backend.extra}]'"
            )


def _check_mixed_precision(methods: tuple[str, ...], ratios: tuple[float, ...]) -> None:
    """A ratio below 1 only with backends whose single quantized layers the search can swap in."""
    below = [r for r in ratios if r < 1]
    for method in methods:
        if below and method not in PRUNERS and not get_backend(method).mixed_precision:
            raise pytest.UsageError(
                f"{options.QUANT_RATIO}: {method} cannot be searched at ratio {below[0]:g}: its quantized layers "
                "depend on the model around them (smoothing folded into the norms); give it ratio 1"
            )


def compare_fail_tolerances(raw: dict[str, Any], catalog: Catalog) -> dict[str, Tolerance]:
    """The tolerances against a baseline: the default ones, and those the option names (each
    a metric, a property or ``*`` of the catalog)."""
    valid = ("*", *catalog.recorded(), *dict.fromkeys(m.name for p in catalog for m in p.metrics))
    default = parsing.tolerances(options.COMPARE_FAIL, options.DEFAULT_COMPARE_FAIL, valid)
    return {**default, **parsing.tolerances(options.COMPARE_FAIL, raw["qrel_compare_fail"], valid)}


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


# what a run's verdicts do not depend on: where it writes, how it shows progress, whether it resumes
_WHERE_FIELDS = frozenset({"report_dir", "cache_dir", "progress", "resume", "save_baseline", "merge", "settings", "placement",
                           "merge_given", "journal_settings", "catalog"})
SMALL_FILE = 4 << 20  # hashed byte by byte; a larger file (a model's weights) by its size and mtime_ns


def effective_settings(config: QrelConfig) -> dict[str, Any]:
    """What a run's verdicts depend on, for the journal (journal.py): every parsed field but
    where it writes (so "4, 8", 4,8 and TOML [4, 8] are one setting, and a default applied
    differently, e.g. --qrel-intensities, is another), the package version, and a digest of
    every input file or directory the settings name (models, task YAMLs, data files, the
    baseline), by its absolute path: a model edited in place is another input."""
    inputs: dict[str, str] = {}
    fields = {f.name: _plain(getattr(config, f.name), inputs) for f in dataclasses.fields(config)
              if f.name not in _WHERE_FIELDS | {"property_settings"}}
    # each property's settings by its key and field (kl.topk): a mismatch names the one that differs
    fields.update({key: _plain(value, inputs) for key, value in config.property_settings.items()})
    return {"settings": _flat(fields, nested=frozenset(config.property_settings)), "inputs": inputs,
            "version": _version()}


def _version() -> str:
    """The installed pytest-qrel's version (the package's ``__version__`` is a layer above)."""
    try:
        return installed_version("pytest-qrel")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _plain(value: Any, inputs: dict[str, str]) -> Any:
    """``value`` as JSON, recording each existing path it names in ``inputs`` with its digest."""
    if isinstance(value, Baseline):
        value = value.path  # its values are the file's: the file's digest stands for them
    if isinstance(value, PropertySettings):
        value = dict(value.values)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), inputs) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v, inputs) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, inputs) for k, v in value.items()}
    if isinstance(value, Path) or (isinstance(value, str) and value.startswith(os.sep) and Path(value).exists()):
        path = Path(value).resolve()
        if path.exists():
            inputs[str(path)] = digest(path)
        return str(path)
    if isinstance(value, str) and len(value) > 1000:  # a text held in memory (an lm-eval task's documents)
        return hashlib.sha256(value.encode()).hexdigest()
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)


def _flat(fields: dict[str, Any], nested: frozenset[str], prefix: str = "") -> dict[str, Any]:
    """The ``nested`` settings (each property's) by dotted name: a mismatch names the one that differs."""
    flat: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, dict) and key in nested:
            flat.update(_flat(value, frozenset(), f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def digest(path: Path) -> str:
    """A file's or a directory's content digest: each file's relative name and size, and its
    bytes if small (configs, tokenizers, data files, small models) or else its mtime_ns (a
    model's gigabytes of weights are not read on every resume; any write to a file changes its
    mtime_ns)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for file in files:
        stat = file.stat()
        h.update(f"{file.relative_to(path) if file != path else file.name}\0{stat.st_size}\0".encode())
        h.update(file.read_bytes() if stat.st_size <= SMALL_FILE else str(stat.st_mtime_ns).encode())
    return h.hexdigest()
