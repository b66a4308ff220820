"""QrelSession: the validated configuration, the variant matrix, the models and the results."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from . import options
from .models import ZOO_MODELS, ModelLoadError, resolve_model
from .quant import BACKENDS, QuantizationError, get_backend, supported_bits
from .quant.mixed import GRANULARITIES, SELECTIONS
from .variants import Variant, variant_record

if TYPE_CHECKING:
    import torch

    from .models import LoadedModel
    from .variants import QuantizedInfo

Property = Literal["kl", "calibration", "confidence", "robustness", "scaling"]
PROPERTIES: tuple[str, ...] = ("kl", "calibration", "confidence", "robustness", "scaling")
WORKEROUTPUT_KEY = "qrel"


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
    # pre-quantized checkpoints: (base name, base source, checkpoint dir, method, bits, group size)
    checkpoints: tuple[tuple[str, str, str, str, int, int | None], ...] = ()

    @classmethod
    def from_values(cls, values: dict[str, Any], invocation_dir: Path) -> QrelConfig:
        models = _split(values["qrel_models"]) or list(ZOO_MODELS)
        resolved, checkpoints = _split_prequantized(
            [resolve_model(m) for m in models], values.get("qrel_base")
        )
        names = [name for name, _ in resolved]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise pytest.UsageError(f"{options.MODELS}: two models would share the test id {dupes[0]!r}; rename one")
        methods = tuple(_split(values["qrel_methods"]))
        if not methods:
            raise pytest.UsageError(f"{options.METHODS}: expected at least one method in {sorted(BACKENDS)}")
        for method in methods:
            if method not in BACKENDS:
                raise pytest.UsageError(
                    f"{options.METHODS}: unknown method {method!r}; valid methods: {', '.join(sorted(BACKENDS))}"
                )
        valid_bits = supported_bits()
        bits = tuple(_ints(options.BITS, values["qrel_bits"]))
        if not bits:
            raise pytest.UsageError(f"{options.BITS}: expected at least one bit-width in {valid_bits}")
        for b in bits:
            if b not in valid_bits:
                raise pytest.UsageError(
                    f"{options.BITS}: no backend quantizes to {b} bits; valid bit-widths: {', '.join(map(str, valid_bits))}"
                )
        group = str(values["qrel_group_size"]).strip().lower()
        group_size = None if group in ("none", "0", "-1") else _ints(options.GROUP_SIZE, group)[0]
        if group_size is not None and (group_size < 8 or group_size & (group_size - 1)):
            raise pytest.UsageError(
                f"{options.GROUP_SIZE}: expected a power of two >= 8 (or 'none' for per-row), but got {group_size}"
            )
        kl_threshold = _bit_map(options.KL_THRESHOLD, values["qrel_kl_threshold"])
        missing = [b for b in bits + tuple(c[4] for c in checkpoints) if b not in kl_threshold]
        if missing:
            raise pytest.UsageError(f"{options.KL_THRESHOLD}: no threshold for {missing[0]}-bit variants")
        quant_ratios = tuple(_floats(options.QUANT_RATIO, values.get("qrel_quant_ratio") or "1"))
        if not quant_ratios or any(not 0 < r <= 1 for r in quant_ratios):
            raise pytest.UsageError(f"{options.QUANT_RATIO}: expected ratios in (0, 1], but got {values['qrel_quant_ratio']!r}")
        granularity = str(values.get("qrel_quant_granularity") or "matmul")
        selection = str(values.get("qrel_quant_select") or "random")
        for flag, value, valid in (
            (options.QUANT_GRANULARITY, granularity, GRANULARITIES),
            (options.QUANT_SELECT, selection, SELECTIONS),
        ):
            if value not in valid:
                raise pytest.UsageError(f"{flag}: expected one of {', '.join(valid)}, but got {value!r}")
        trials, samples, seed = (
            _ints(flag, str(values.get(key) or default))[0]
            for flag, key, default in (
                (options.QUANT_TRIALS, "qrel_quant_trials", "20"),
                (options.CALIBRATION_SAMPLES, "qrel_calibration_samples", "128"),
                (options.SEED, "qrel_seed", "0"),
            )
        )
        calibration_file, available = _calibration_source(values.get("qrel_calibration_file"), invocation_dir)
        if samples > available:
            raise pytest.UsageError(
                f"{options.CALIBRATION_SAMPLES}: {samples} asked for, but "
                f"{calibration_file or 'the shipped calibration set'} has {available} documents"
            )
        if trials < 1 or samples < 1:
            raise pytest.UsageError(
                f"{options.QUANT_TRIALS} and {options.CALIBRATION_SAMPLES}: expected positive integers, "
                f"but got {trials} and {samples}"
            )
        report_dir = Path(values["qrel_report_dir"] or options.DEFAULT_REPORT_DIR)
        cache_dir: Path | None = None
        if not values.get("qrel_no_cache"):
            if values.get("qrel_cache_dir"):
                cache_dir = Path(values["qrel_cache_dir"]).expanduser()
                cache_dir = cache_dir if cache_dir.is_absolute() else invocation_dir / cache_dir
            else:
                from .cache import default_cache_dir

                cache_dir = default_cache_dir()
        return cls(
            models=resolved,
            methods=methods,
            bits=bits,
            group_size=group_size,
            report_dir=report_dir if report_dir.is_absolute() else invocation_dir / report_dir,
            kl_threshold=kl_threshold,
            allow_pickle=bool(values["qrel_allow_pickle"]),
            cache_dir=cache_dir,
            quant_ratios=quant_ratios,
            granularity=granularity,
            selection=selection,
            trials=trials,
            calibration_samples=samples,
            calibration_file=calibration_file,
            seed=seed,
            checkpoints=tuple(checkpoints),
        )


def _split_prequantized(
    resolved: list[tuple[str, str]], base_option: str | None
) -> tuple[tuple[tuple[str, str], ...], list[tuple[str, str, str, str, int, int | None]]]:
    """Separate pre-quantized checkpoints (loaded as they are, compared with their base) from
    the full-precision models that get the method x bits matrix."""
    from .models import declared_base
    from .quant import identify_checkpoint, is_prequantized

    models, checkpoints = [], []
    for name, source in resolved:
        path = Path(source)
        if not (path.is_dir() and is_prequantized(path)):
            models.append((name, source))
            continue
        try:
            method, bits, group = identify_checkpoint(path)
        except ValueError as exc:
            raise pytest.UsageError(f"{options.MODELS}: {exc}") from None
        base = (base_option or "").strip() or declared_base(path)
        if not base:
            raise pytest.UsageError(
                f"{options.MODELS}: {source} is a pre-quantized checkpoint ({method}, {bits} bits); name the "
                f"full-precision model it is compared with by {options.BASE} or a base_model field in its config.json"
            )
        base_name, base_source = resolve_model(base)
        if not (base_option or "").strip() and not Path(base_source).is_dir():
            # a checkpoint's own metadata never makes the run fetch a model
            raise pytest.UsageError(
                f"{options.MODELS}: {source} names base_model {base!r}, which is not a local directory; "
                f"pass {options.BASE}={base} to compare with it"
            )
        if Path(base_source).is_dir() and is_prequantized(Path(base_source)):
            raise pytest.UsageError(
                f"{options.BASE}: the base of {source}, {base_source}, is itself quantized; name a full-precision model"
            )
        checkpoints.append((base_name, base_source, source, method, bits, group))
    sources: dict[str, str] = {}
    for name, source in [*models, *((c[0], c[1]) for c in checkpoints)]:
        if sources.setdefault(name, source) != source:
            raise pytest.UsageError(
                f"{options.MODELS}: two models would share the test id {name!r} ({sources[name]} and {source}); "
                "rename one directory"
            )
    ckpt_ids = [(c[0], c[3], c[4], Path(c[2]).name) for c in checkpoints]
    for i, key in enumerate(ckpt_ids):
        if key in ckpt_ids[:i]:
            raise pytest.UsageError(
                f"{options.MODELS}: two checkpoints of {key[0]} ({key[1]}, {key[2]} bits) are both named {key[3]!r}; "
                "rename one directory"
            )
    return tuple(models), checkpoints


def _calibration_source(value: str | None, invocation_dir: Path) -> tuple[Path | None, int]:
    """The calibration file (None: the shipped set) and how many documents it holds."""
    from .data import calibration_texts

    path = None
    if value:
        path = Path(value).expanduser()
        path = path if path.is_absolute() else invocation_dir / path
    try:
        return path, len(calibration_texts(path))  # exists, is JSONL, has rows with text
    except ValueError as exc:
        raise pytest.UsageError(f"{options.CALIBRATION_FILE}: {exc}") from None


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _ints(flag: str, value: str) -> list[int]:
    try:
        return [int(v) for v in _split(value)]
    except ValueError:
        raise pytest.UsageError(f"{flag}: expected comma-separated integers, but got {value!r}") from None


def _floats(flag: str, value: str) -> list[float]:
    try:
        return [float(v) for v in _split(value)]
    except ValueError:
        raise pytest.UsageError(f"{flag}: expected comma-separated numbers, but got {value!r}") from None


def _bit_map(flag: str, value: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for pair in _split(value):
        try:
            b, v = pair.split(":")
            out[int(b)] = float(v)
        except ValueError:
            raise pytest.UsageError(f"{flag}: expected bits:value pairs like 4:0.1, but got {pair!r}") from None
        if not out[int(b)] >= 0:
            raise pytest.UsageError(f"{flag}: expected a threshold >= 0, but got {pair!r}")
    return out


class QrelSession:
    """One per pytest process (controller and each xdist worker), kept in ``config.stash``."""

    def __init__(self, config: QrelConfig, active: bool, is_worker: bool) -> None:
        self.config = config
        self.active = active  # False: a run without --qrel-* options and no qrel test
        self.is_worker = is_worker
        self.variants = self._variant_matrix()
        self.variant_info: dict[str, dict] = {}
        self.results: list[dict] = []
        self._base: dict[str, LoadedModel] = {}
        self._base_errors: dict[str, str] = {}
        self._base_outputs: dict[str, tuple[list, list]] = {}
        self._quantized: tuple[str, torch.nn.Module] | None = None
        self._base_digests: dict[str, str] = {}

    @classmethod
    def from_config(cls, config: pytest.Config) -> QrelSession:
        values = options.raw_values(config)
        return cls(
            QrelConfig.from_values(values, config.invocation_params.dir),
            active=options.given_on_command_line(config),
            is_worker=hasattr(config, "workerinput"),
        )

    # -- the variant matrix ------------------------------------------------------------

    def _variant_matrix(self) -> list[Variant]:
        out = []
        for name, source in self.config.models:
            for method in self.config.methods:
                backend = get_backend(method)
                for bits in self.config.bits:
                    for ratio in self.config.quant_ratios:
                        out.append(
                            Variant(
                                model=name,
                                source=source,
                                method=method,
                                bits=bits,
                                group_size=backend.group_size_for(bits, self.config.group_size),
                                quant_ratio=ratio,
                                granularity=self.config.granularity,
                                skip_reason=backend.unsupported_reason(bits),
                            )
                        )
        for base_name, base_source, checkpoint, method, bits, group in self.config.checkpoints:
            out.append(
                Variant(
                    model=base_name,
                    source=base_source,
                    method=method,
                    bits=bits,
                    group_size=group,
                    checkpoint=checkpoint,
                    skip_reason=get_backend(method).unsupported_reason(bits),
                )
            )
        return out

    def parametrize(self, metafunc: pytest.Metafunc) -> None:
        if "qrel_variant" not in metafunc.fixturenames:
            return
        self.active = True
        params = []
        for v in self.variants:
            # One xdist group per model: with --dist loadgroup a worker loads each model once.
            marks = [pytest.mark.xdist_group(v.model)]
            if v.skip_reason:
                marks.append(pytest.mark.skip(reason=v.skip_reason))
            params.append(pytest.param(v, id=v.id, marks=marks))
        metafunc.parametrize("qrel_variant", params)

    # -- models and outputs ------------------------------------------------------------

    def base_model(self, variant: Variant) -> LoadedModel:
        if variant.model in self._base_errors:
            self._fail(variant, self._base_errors[variant.model])
        if variant.model not in self._base:
            from .engine import device_for_worker
            from .models import load_base

            try:
                self._base[variant.model] = load_base(
                    variant.model, variant.source, device_for_worker(), self.config.allow_pickle
                )
            except ModelLoadError as exc:
                self._base_errors[variant.model] = str(exc)
            if variant.model in self._base_errors:  # failed outside the except: one message, no chain
                self._fail(variant, self._base_errors[variant.model])
        return self._base[variant.model]

    def _fail(self, variant: Variant, message: str) -> None:
        """Fail the running test with a one-line error and keep it for the report."""
        self.variant_info[variant.id] = {"error": message}
        pytest.fail(message, pytrace=False)

    def quantized_model(self, variant: Variant) -> torch.nn.Module:
        """The quantized model of ``variant``; the last one is kept for the next suite."""
        if self._quantized and self._quantized[0] == variant.id:
            return self._quantized[1]
        self._quantized = None
        gc.collect()
        base = self.base_model(variant)
        error = None
        try:
            model, info, cache_state = self._quantize_or_load(variant, base)
        except QuantizationError as exc:
            error = str(exc)
        except Exception as exc:  # a backend bug: keep the traceback, and the row in the report
            self.variant_info[variant.id] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            raise
        if error is not None:
            self._fail(variant, error)
        self.variant_info[variant.id] = {**info.as_dict(), "cache": cache_state}
        self._quantized = (variant.id, model)
        return model

    def _quantize_or_load(self, variant: Variant, base: LoadedModel) -> tuple[torch.nn.Module, QuantizedInfo, str]:
        """Load the variant from the cache, or quantize it and store it there; a
        pre-quantized checkpoint is loaded as it is."""
        backend = get_backend(variant.method)
        if variant.checkpoint:
            return (*self._load_checkpoint(variant, base), "prequantized")
        if self.config.cache_dir is None:
            return (*self._quantize(variant, base), "off")
        from .cache import QuantCache, cache_key, state_dict_digest

        if variant.model not in self._base_digests:
            self._base_digests[variant.model] = state_dict_digest(base.model)
        cache = QuantCache(self.config.cache_dir)
        key = cache_key(
            {
                "base_weights": self._base_digests[variant.model],
                "backend": backend.name,
                "backend_version": backend.version(),
                "backend_config": backend.config_version,
                "bits": variant.bits,
                "group_size": variant.group_size,
                **self._calibration_key(backend.needs_calibration or variant.quant_ratio < 1),
                **self._mixed_key(variant),
            }
        )
        with cache.lock(key):
            entry = cache.read(key)
            if entry is not None:
                try:
                    layers = entry.meta["layers"]
                    model = backend.load_quantized(base, variant.bits, variant.group_size, layers, entry.directory)
                    return model, backend.measure(base, model, variant.bits, variant.group_size), "hit"
                except Exception as exc:  # an entry that verifies but does not load is unusable too
                    cache.discard(key, f"{type(exc).__name__}: {exc}".splitlines()[0])
            model, info = self._quantize(variant, base)
            cache.write(
                key,
                lambda d: backend.save_quantized(model, info.quantized_layers, d),
                {"layers": info.quantized_layers, "variant": variant.id, "source": variant.source},
            )
            return model, info, "miss"

    def _load_checkpoint(self, variant: Variant, base: LoadedModel) -> tuple[torch.nn.Module, QuantizedInfo]:
        from .models import check_checkpoint

        backend = get_backend(variant.method)
        path = Path(variant.checkpoint)
        try:
            check_checkpoint(str(path), self.config.allow_pickle)
        except ModelLoadError as exc:
            raise QuantizationError(str(exc)) from None
        import json

        keys = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size")
        ours, theirs = json.loads((path / "config.json").read_text()), base.model.config.to_dict()
        differ = [f"{k} {ours.get(k)} != {theirs.get(k)}" for k in keys if ours.get(k) != theirs.get(k)]
        if differ:
            raise QuantizationError(
                f"{options.MODELS}: {path} is not a quantization of {base.source} ({', '.join(differ)})"
            )
        try:
            model = backend.load_checkpoint(path, base)
        except QuantizationError:
            raise
        except Exception as exc:  # a damaged or foreign checkpoint: the user's input, not a bug of ours
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise QuantizationError(
                f"{options.MODELS}: cannot load {path} as a {variant.method} quantization of {base.source}: {first}"
            ) from exc
        return model, backend.measure(base, model, variant.bits, variant.group_size)

    def heldout_batches(self, variant: Variant) -> list:
        from .data import heldout_texts
        from .engine import encode

        return encode(self.base_model(variant).tokenizer, heldout_texts())

    def base_logprobs(self, variant: Variant) -> tuple[list, list]:
        """The base model's next-token log-probs on the held-out text, computed once per model."""
        if variant.model not in self._base_outputs:
            from .engine import next_token_logprobs

            batches = self.heldout_batches(variant)
            outputs = list(next_token_logprobs(self.base_model(variant).model, batches))
            self._base_outputs[variant.model] = (batches, outputs)
        return self._base_outputs[variant.model]

    def kl_to_base(self, variant: Variant) -> float:
        """Mean over held-out sequences of the mean token KL(P_base || P_quant) (paper 000 eq. 7)."""
        import numpy as np

        from .engine import next_token_logprobs
        from .metrics import kl_divergence, sequence_mean

        batches, base_outputs = self.base_logprobs(variant)
        model = self.quantized_model(variant)
        per_sequence = []
        for batch, base_lp, quant_lp in zip(batches, base_outputs, next_token_logprobs(model, batches)):
            kl = kl_divergence(base_lp.double().numpy(), quant_lp.double().numpy())
            per_sequence.append(sequence_mean(kl, batch.target_mask.numpy()))
        return float(np.mean(np.concatenate(per_sequence)))

    def _quantize(self, variant: Variant, base: LoadedModel) -> tuple[torch.nn.Module, QuantizedInfo]:
        """Quantize ``variant``; a mixed-precision one first searches which layers go low."""
        backend = get_backend(variant.method)
        calibration = self.calibration_texts() if backend.needs_calibration else None
        if variant.quant_ratio >= 1:
            return backend.quantize(base, variant.bits, variant.group_size, calibration=calibration)
        from .quant.mixed import select_layers

        full, _ = backend.quantize(base, variant.bits, variant.group_size, calibration=calibration)
        batches = self.calibration_batches(variant)
        layers = select_layers(
            base.model,
            full,
            base.linear_layer_names,
            variant.quant_ratio,
            variant.granularity,
            self.config.selection,
            self.config.trials,
            self.config.seed,
            loss=lambda model: self._mean_nll(model, batches),
        )
        del full
        return backend.quantize(base, variant.bits, variant.group_size, layers=layers, calibration=calibration)

    def _mixed_key(self, variant: Variant) -> dict:
        if variant.quant_ratio >= 1:
            return {}
        return {
            "quant_ratio": variant.quant_ratio,
            "granularity": variant.granularity,
            "selection": self.config.selection,
            "trials": self.config.trials,
            "seed": self.config.seed,
        }

    def _calibration_key(self, used: bool) -> dict:
        if not used:
            return {}
        return {"calibration": self._calibration_digest(), "calibration_samples": self.config.calibration_samples}

    def calibration_texts(self) -> list[str]:
        from .data import calibration_texts

        return calibration_texts(self.config.calibration_file)[: self.config.calibration_samples]

    def _calibration_digest(self) -> str:
        import hashlib

        return hashlib.sha256("\n".join(self.calibration_texts()).encode()).hexdigest()

    def calibration_batches(self, variant: Variant) -> list:
        from .engine import encode

        return encode(self.base_model(variant).tokenizer, self.calibration_texts())

    @staticmethod
    def _mean_nll(model: torch.nn.Module, batches: list) -> float:
        """Mean negative log-likelihood per reference token (paper 000 §3.1): the search loss."""
        from .engine import reference_logprobs
        from .metrics import MeanStats

        stats = sum(
            MeanStats.from_batch(-lp.numpy(), batch.target_mask.numpy())
            for batch, lp in zip(batches, reference_logprobs(model, batches))
        )
        return float(stats.mean())

    # -- results -------------------------------------------------------------------------

    def check(
        self,
        test: str,
        variant: Variant,
        prop: Property,
        metric: str,
        value: float,
        base_value: float | None,
        threshold: float,
        higher_is_better: bool = False,
    ) -> None:
        """Record one gated measurement and fail the test if it misses its threshold."""
        passed = value >= threshold if higher_is_better else value <= threshold
        self.results.append(
            {
                "test": test,
                "property": prop,
                "variant": variant.id,
                "model": variant.model,
                "method": variant.method,
                "bits": variant.bits,
                "group_size": variant.group_size,
                "metric": metric,
                "value": value,
                "base_value": base_value,
                "threshold": threshold,
                "passed": bool(passed),
            }
        )
        if not passed:
            op = ">=" if higher_is_better else "<="
            pytest.fail(f"{variant.id}: {metric} = {value:.6g}, expected {op} {threshold:g}", pytrace=False)

    def variant_records(self) -> list[dict]:
        records = []
        for v in self.variants:
            backend = get_backend(v.method)
            info = {"weight_format": backend.weight_format, "activation_bits": backend.activation_bits}
            records.append(variant_record(v, {**info, **self.variant_info.get(v.id, {})}))
        return records

    def to_workeroutput(self) -> dict:
        return {"results": self.results, "variant_info": self.variant_info}

    def merge_workeroutput(self, output: dict) -> None:
        data = output.get(WORKEROUTPUT_KEY)
        if not data:
            return
        self.active = True
        self.results.extend(data["results"])
        self.variant_info.update(data["variant_info"])

    # -- report ----------------------------------------------------------------------------

    def write_report(self) -> Path | None:
        if not self.active or self.is_worker or not (self.results or self.variant_info):
            return None
        from .report import write_results_json

        return write_results_json(self.config.report_dir, self.variant_records(), self.results, fits=[])

    def terminal_summary(self, terminalreporter) -> None:
        if not self.active or self.is_worker or not (self.results or self.variant_info):
            return
        from .report import write_tables

        write_tables(terminalreporter, self.variant_records(), self.results, self.config.report_dir)
