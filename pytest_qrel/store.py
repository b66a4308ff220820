"""Base models and quantized variants: load, quantize, cache, release."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import options, progress
from .cache import QrelCacheWarning, QuantCache, cache_key, installed_version, model_digest
from .data import calibration_texts
from .engine import device_for_worker, encode, reference_logprobs
from .metrics import MeanStats
from .models import ModelLoadError, check_checkpoint, checkpoint_tokenizer, load_base, tokenizer_difference
from .quant import QuantizationError, get_backend
from .quant.base import in_features, stored_tensor_problem
from .quant.mixed import select_layers

if TYPE_CHECKING:
    import torch

    from .config import QrelConfig
    from .models import LoadedModel
    from .variants import QuantizedInfo, Variant


class VariantError(RuntimeError):
    """A variant cannot be measured: its base does not load, or it cannot be quantized.
    The message is one line, shown as the test's failure and the report's ERROR reason."""


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def variant_failure(exc: Exception) -> str:
    """Why a variant could not be scored, in one line: a ``VariantError``'s own words, or
    any other exception (a backend bug) with its type; a family keeps it for that variant's
    tests and goes on with the others."""
    return str(exc) if isinstance(exc, VariantError) else f"{type(exc).__name__}: {one_line(exc)}"


def layer_mismatch(
    variant: Variant, model: torch.nn.Module, layers: list[str], groups: dict[str, int | None], said: str
) -> str | None:
    """Why the quantized ``layers`` of ``model`` are not ``variant``'s, or None: each layer's
    code width, as the backend reads it from the loaded module, must be the variant's bits,
    and its group size the one in ``groups`` (where named; ``said`` tells where it comes from;
    None, one group per row, is a group of the row's width)."""
    backend = get_backend(variant.method)
    for name in layers:
        module = model.get_submodule(name)
        bits = backend.layer_bits(module)
        if bits is not None and bits != variant.bits:
            return f"its layer {name} stores {bits}-bit codes, but {variant.id} is {variant.bits}-bit"
        group = backend.layer_group_size(module, variant.bits, variant.group_size)
        expected = groups.get(name, group)
        width = getattr(module, "in_features", None)  # one group per row: a group of the row's width
        if group != expected and (group or width) != (expected or width):
            return f"its layer {name} has group size {group}, but {groups[name]} {said}"
    return None


class ModelStore:
    """Holds the base models of one model at a time (and their per-model scratch space,
    e.g. a measure's base outputs) and the last quantized variant; moving to another
    model releases them. Load errors are kept, once per model."""

    def __init__(self, config: QrelConfig) -> None:
        self.config = config
        self.info: dict[Variant, dict] = {}  # what each variant's quantization measured
        self._model: str | None = None  # the model whose base is held
        self._base: LoadedModel | None = None
        self._scratch: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._quantized: tuple[Variant, torch.nn.Module] | None = None
        self._calibration: list[str] | None = None

    # -- base models ---------------------------------------------------------------------

    def base(self, variant: Variant) -> LoadedModel:
        """The full-precision base of ``variant``, loaded once; VariantError if it cannot be."""
        if variant.model in self._errors:
            raise VariantError(self._errors[variant.model])
        if self._model != variant.model:
            self.release()

            try:
                self._base = load_base(variant.model, variant.source, device_for_worker(), self.config.allow_pickle)
            except Exception as exc:  # any failure: reported once, never retried per variant
                message = one_line(exc)
                if not message.startswith(options.MODELS):
                    message = f"{options.MODELS}: cannot load {variant.source!r}: {type(exc).__name__}: {message}"
                self._errors[variant.model] = message
                raise VariantError(message) from None
            self._model = variant.model
            progress.name_model(self._base.model, "base")
            # everything alive now (the imported libraries, ~450k objects with torch and
            # transformers, and this base) is left out of the collections made at each variant
            # switch: a full scan took 0.35 s per switch, as long as a zoo variant's KL forward
            # passes (benchmarks/bench_kl_overhead.py); the quantized variants, created later,
            # are scanned and collected as before; release() unfreezes them for the next model
            gc.freeze()
        assert self._base is not None
        return self._base

    def scratch(self, variant: Variant) -> dict[str, Any]:
        """Per-model storage for what measures compute once per base; released with it."""
        self.base(variant)
        return self._scratch

    def release(self) -> None:
        """Drop the held base model, its scratch space and the quantized variant."""
        self._model, self._base, self._quantized = None, None, None
        self._scratch = {}
        gc.unfreeze()  # the released base was frozen when it loaded (see base())
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- quantized variants --------------------------------------------------------------------

    def quantized(self, variant: Variant) -> torch.nn.Module:
        """The quantized model of ``variant`` (the last one is kept for the next property)."""
        if self._quantized and self._quantized[0] == variant:
            return self._quantized[1]
        self._quantized = None
        gc.collect()
        base = self.base(variant)
        try:
            model, info, cache_state = self._quantize_or_load(variant, base)
        except QuantizationError as exc:
            self.info[variant] = {"error": one_line(exc)}
            raise VariantError(one_line(exc)) from None
        except Exception as exc:  # a backend bug: keep the traceback, and the row in the report
            self.info[variant] = {"error": f"{type(exc).__name__}: {one_line(exc)}"}
            raise
        # what a measure added (KL's base passes) stays when the variant is loaded again
        kept = {k: v for k, v in self.info.get(variant, {}).items() if k != "error"}
        self.info[variant] = {**kept, **info.as_dict(), "cache": cache_state}
        self._quantized = (variant, model)
        progress.name_model(model, variant.id)
        return model

    def _quantize_or_load(self, variant: Variant, base: LoadedModel) -> tuple[torch.nn.Module, QuantizedInfo, str]:
        """Load the variant from the cache, or quantize it and store it there; a
        pre-quantized checkpoint is loaded as it is."""
        backend = get_backend(variant.method)
        if variant.checkpoint:
            return (*self._load_checkpoint(variant, base), "prequantized")
        if self.config.cache_dir is None:
            return (*self._quantize(variant, base), "off")

        cache = QuantCache(self.config.cache_dir)
        key = self.cache_key(variant)
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(cache.lock(key))
            except OSError as exc:  # the cache became unusable mid-run: measure without it
                self._cache_warning(variant, exc)
                return (*self._quantize(variant, base), "off")
            entry = cache.read(key)
            if entry is not None:
                try:
                    layers = entry.meta["layers"]
                    requested = entry.meta.get("requested", layers)
                    model = backend.load_quantized(base, variant.bits, variant.group_size, layers, entry.directory)
                    problem = self._mismatch(variant, entry.meta, model, layers)
                    if problem is None:
                        info = backend.measure(base, model, variant.bits, variant.group_size, requested=requested)
                        return model, info, "hit"
                except Exception as exc:  # an entry that verifies but does not load is unusable too
                    problem = f"{type(exc).__name__}: {one_line(exc)}"
                cache.discard(key, problem)
            model, info = self._quantize(variant, base)
            try:
                cache.write(
                    key,
                    lambda d: backend.save_quantized(model, info.quantized_layers, d),
                    {"layers": info.quantized_layers, "requested": info.requested_layers,
                     "variant": variant.id, "source": variant.source, "method": variant.method, "bits": variant.bits,
                     "group_size": variant.group_size, "base_weights": self.scratch(variant)["weights_digest"],
                     "groups": {n: backend.layer_group_size(model.get_submodule(n), variant.bits, variant.group_size)
                                for n in info.quantized_layers}},
                )
            except Exception as exc:  # the variant is quantized and measured all the same
                self._cache_warning(variant, exc)
            return model, info, "miss"

    def _mismatch(self, variant: Variant, meta: dict, model: torch.nn.Module, layers: list[str]) -> str | None:
        """Why a cache entry is not the variant it is stored for, or None: its recorded method,
        bits, group size and base weights, and each quantized layer's code width and group size
        as measured on the loaded modules (an entry's files swapped for another's, a stale one)."""
        expected = {"method": variant.method, "bits": variant.bits, "group_size": variant.group_size,
                    "base_weights": self.scratch(variant)["weights_digest"]}
        for key, value in expected.items():
            if meta.get(key) != value:
                return f"the entry records {key} {meta.get(key)!r}, but {variant.id} has {value!r}"
        return layer_mismatch(variant, model, layers, meta.get("groups") or {}, "was stored")

    def _cache_warning(self, variant: Variant, exc: Exception) -> None:
        warnings.warn(
            f"pytest-qrel could not store {variant.id} in the cache {self.config.cache_dir} "
            f"({type(exc).__name__}: {one_line(exc)}); it is measured without being cached",
            QrelCacheWarning,
            stacklevel=3,
        )

    def weights_digest(self, variant: Variant) -> str:
        """SHA-256 of the base's weights and config (cache.model_digest; and, kept beside it, of its
        tokenizer), once per model."""
        scratch = self.scratch(variant)
        if "weights_digest" not in scratch:
            base = self.base(variant)
            scratch["weights_digest"] = model_digest(base.model)
            scratch["tokenizer_digest"] = tokenizer_digest(base.tokenizer)
        return scratch["weights_digest"]

    def cache_key(self, variant: Variant) -> str:
        """Everything the quantized weights depend on, hashed (see cache.py)."""
        backend = get_backend(variant.method)
        scratch = self.scratch(variant)
        self.weights_digest(variant)
        calibrated = backend.needs_calibration or variant.quant_ratio < 1
        mixed = variant.quant_ratio < 1
        return cache_key(
            {
                "base_weights": scratch["weights_digest"],
                "tokenizer": scratch["tokenizer_digest"],
                "torch": installed_version("torch"),
                "transformers": installed_version("transformers"),
                "backend": backend.name,
                "backend_version": backend.version(),
                "backend_config": backend.config_version,
                "bits": variant.bits,
                "group_size": variant.group_size,
                **({"calibration": self.calibration_digest(),
                    "calibration_samples": self.config.calibration_samples} if calibrated else {}),
                **({"quant_ratio": variant.quant_ratio, "granularity": variant.granularity,
                    "selection": self.config.selection, "trials": self.config.trials,
                    "seed": self.config.seed} if mixed else {}),
            }
        )

    def _load_checkpoint(self, variant: Variant, base: LoadedModel) -> tuple[torch.nn.Module, QuantizedInfo]:
        backend = get_backend(variant.method)
        path = Path(str(variant.checkpoint))
        try:
            check_checkpoint(str(path), self.config.allow_pickle)
        except ModelLoadError as exc:
            raise QuantizationError(str(exc)) from None
        keys = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size")
        ours, theirs = json.loads((path / "config.json").read_text()), base.model.config.to_dict()
        differ = [f"{k} {ours.get(k)} != {theirs.get(k)}" for k in keys if ours.get(k) != theirs.get(k)]
        if differ:
            raise QuantizationError(
                f"{options.MODELS}: {path} is not a quantization of {base.source} ({', '.join(differ)})"
            )
        try:
            # the tokenizer it ships is the one it is deployed with: it must be the base's
            tokenizer = checkpoint_tokenizer(path)
        except ModelLoadError as exc:
            raise QuantizationError(str(exc)) from None
        difference = tokenizer_difference(tokenizer, base.tokenizer) if tokenizer is not None else None
        if difference:
            raise QuantizationError(f"{options.MODELS}: {path} does not tokenize as its base {base.source}: {difference}")
        try:
            model = backend.load_checkpoint(path, base)
        except QuantizationError:
            raise
        except Exception as exc:  # a damaged or foreign checkpoint: the user's input, not a bug of ours
            raise QuantizationError(
                f"{options.MODELS}: cannot load {path} as a {variant.method} quantization of {base.source}: "
                f"{one_line(exc)}"
            ) from exc
        # what is measured must be what is stored: no stored tensor ignored or overwritten by the load
        problem = stored_tensor_problem(model, path)
        if problem:
            raise QuantizationError(f"{options.MODELS}: {path} does not load as it is stored: {problem}")
        # the bits and group size it declares label the variant and pick its thresholds: every
        # quantized layer, as loaded, must have them (a library builds layers from other files);
        # a declared group that does not split a layer's rows is the backend's to change (measure says so)
        info = backend.measure(base, model, variant.bits, variant.group_size)
        layers = info.quantized_layers
        declared = {n: variant.group_size for n in layers
                    if variant.group_size and not in_features(base.model.get_submodule(n)) % variant.group_size}
        problem = layer_mismatch(variant, model, layers, declared, f"is declared in {path / 'config.json'}")
        if problem:
            raise QuantizationError(f"{options.MODELS}: {path} is not what it declares: {problem}")
        return model, info

    def _quantize(self, variant: Variant, base: LoadedModel) -> tuple[torch.nn.Module, QuantizedInfo]:
        """Quantize ``variant``; a mixed-precision one first searches which layers go low."""
        with progress.step(f"quantizing {variant.id}"):
            backend = get_backend(variant.method)
            calibration = self.calibration_texts() if backend.needs_calibration else None
            if variant.quant_ratio >= 1:
                return backend.quantize(base, variant.bits, variant.group_size, calibration=calibration)

            full, _ = backend.quantize(base, variant.bits, variant.group_size, calibration=calibration)
            batches = encode(base.tokenizer, self.calibration_texts())
            layers = select_layers(
                base.model,
                full,
                base.linear_layer_names,
                variant.quant_ratio,
                variant.granularity,
                self.config.selection,
                self.config.trials,
                self.config.seed,
                loss=lambda model: _mean_nll(model, batches),
            )
            del full
            return backend.quantize(base, variant.bits, variant.group_size, layers=layers, calibration=calibration)

    # -- calibration data ------------------------------------------------------------------------

    def calibration_texts(self) -> list[str]:
        if self._calibration is None:

            self._calibration = calibration_texts(self.config.calibration_file)[: self.config.calibration_samples]
        return self._calibration

    def calibration_digest(self) -> str:
        return hashlib.sha256("\n".join(self.calibration_texts()).encode()).hexdigest()


def tokenizer_digest(tokenizer: Any) -> str:
    """SHA-256 of what decides how text becomes tokens: the vocabulary, the special tokens
    and the tokenizer's class (calibration and the mixed-precision search tokenize text)."""
    parts = {
        "class": type(tokenizer).__name__,
        "vocab": sorted(tokenizer.get_vocab().items()),
        "special": sorted((str(k), str(v)) for k, v in tokenizer.special_tokens_map.items()),
    }
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # the pipeline, without the truncation and padding state that encoding sets on it:
        # the key of a variant must not change once the tokenizer has been used
        pipeline = json.loads(backend.to_str())
        parts["pipeline"] = {k: v for k, v in pipeline.items() if k not in ("truncation", "padding")}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _mean_nll(model: torch.nn.Module, batches: list) -> float:
    """Mean negative log-likelihood per reference token (paper 000 §3.1): the search loss."""

    stats = sum(
        MeanStats.from_batch(-lp.numpy(), batch.target_mask.numpy())
        for batch, lp in zip(batches, reference_logprobs(model, batches))
    )
    return float(stats.mean())
