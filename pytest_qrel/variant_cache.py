"""The quantized-variant cache: an entry's key (everything the weights depend on), its read checked against the variant, its write."""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from .cache import QuantCache, cache_key, installed_version, model_digest
from .errors import QrelCacheWarning, one_line
from .prequantized import layer_mismatch
from .quant import backend_for
from .quantize import backend_settings

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from .config import QrelConfig
    from .models import LoadedModel
    from .quantize import Calibration
    from .variants import CacheState, QuantizedInfo, Variant


@dataclass(frozen=True)
class BaseDigests:
    """What identifies a base: SHA-256 of its weights and config (cache.model_digest) and of its
    tokenizer; its quantized variants and every stored output of it are keyed by them."""

    weights: str
    tokenizer: str


def base_digests(base: LoadedModel) -> BaseDigests:
    return BaseDigests(model_digest(base.model), tokenizer_digest(base.tokenizer))


def tokenizer_digest(tokenizer: Any) -> str:
    """SHA-256 of what decides how text becomes tokens: the vocabulary, the special tokens
    and the tokenizer's class (calibration and the mixed-precision search tokenize text)."""
    parts: dict[str, Any] = {
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


def variant_key(variant: Variant, base_weights: str, tokenizer: str, config: QrelConfig, calibration: Calibration) -> str:
    """Everything the quantized weights of ``variant`` depend on, hashed (see cache.py): the
    base's weights and tokenizer digests, the libraries, the backend, and the calibration and
    layer search where they take part, and the run's settings the backend reads."""
    backend = backend_for(variant)
    settings = backend_settings(variant, config)
    calibrated = backend.needs_calibration or variant.quant_ratio < 1
    mixed = variant.quant_ratio < 1
    return cache_key(
        {
            "base_weights": base_weights,
            "tokenizer": tokenizer,
            "torch": installed_version("torch"),
            "transformers": installed_version("transformers"),
            "backend": backend.name,
            "backend_version": backend.version(),
            "backend_config": backend.config_version,
            "bits": variant.bits,
            "group_size": variant.group_size,
            **({"sparsity": variant.sparsity.text} if variant.sparsity is not None else {}),
            **({"backend_settings": settings} if settings else {}),
            **({"calibration": calibration.digest(),
                "calibration_samples": config.calibration_samples} if calibrated else {}),
            **({"quant_ratio": variant.quant_ratio, "granularity": variant.granularity,
                "selection": config.selection, "trials": config.trials,
                "seed": config.seed} if mixed else {}),
        }
    )


def cached_or_quantized(
    variant: Variant, base: LoadedModel, cache_dir: Path, key: str, base_weights: str,
    quantize: Callable[[], tuple[torch.nn.Module, QuantizedInfo]],
) -> tuple[torch.nn.Module, QuantizedInfo, CacheState]:
    """``variant`` loaded from its entry ``key`` ("hit"), or quantized and stored there ("miss");
    an entry that is not the variant is discarded; a cache that cannot be locked or written
    warns, and the variant is measured without it ("off" when it could not be locked)."""
    backend = backend_for(variant)
    cache = QuantCache(cache_dir)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(cache.lock(key))
        except OSError as exc:  # the cache became unusable mid-run: measure without it
            _cache_warning(variant, cache_dir, exc)
            return (*quantize(), "off")
        entry = cache.read(key)
        if entry is not None:
            try:
                layers = entry.meta["layers"]
                requested = entry.meta.get("requested", layers)
                model = backend.load_quantized(base, variant.bits, variant.group_size, layers, entry.directory)
                problem = _mismatch(variant, entry.meta, model, layers, base_weights)
                if problem is None:
                    info = backend.measure(base, model, variant.bits, variant.group_size, requested=requested)
                    return model, info, "hit"
            except Exception as exc:  # an entry that verifies but does not load is unusable too
                problem = f"{type(exc).__name__}: {one_line(exc)}"
            cache.discard(key, problem)
        model, info = quantize()
        try:
            cache.write(
                key,
                lambda d: backend.save_quantized(model, info.quantized_layers, d),
                {"layers": info.quantized_layers, "requested": info.requested_layers,
                 "variant": variant.id, "source": variant.source, "method": variant.method, "bits": variant.bits,
                 "group_size": variant.group_size, "base_weights": base_weights,
                 **({"sparsity": variant.sparsity.text} if variant.sparsity is not None else {}),
                 "groups": {n: backend.layer_group_size(model.get_submodule(n), variant.bits, variant.group_size)
                            for n in info.quantized_layers}},
            )
        except Exception as exc:  # the variant is quantized and measured all the same
            _cache_warning(variant, cache_dir, exc)
        return model, info, "miss"


def _mismatch(variant: Variant, meta: dict, model: torch.nn.Module, layers: list[str], base_weights: str) -> str | None:
    """Why a cache entry is not the variant it is stored for, or None: its recorded method,
    bits, group size and base weights, and each quantized layer's code width and group size
    as measured on the loaded modules (an entry's files swapped for another's, a stale one)."""
    expected = {"method": variant.method, "bits": variant.bits, "group_size": variant.group_size,
                "base_weights": base_weights,
                **({"sparsity": variant.sparsity.text} if variant.sparsity is not None else {})}
    for key, value in expected.items():
        if meta.get(key) != value:
            return f"the entry records {key} {meta.get(key)!r}, but {variant.id} has {value!r}"
    return layer_mismatch(variant, model, layers, meta.get("groups") or {}, "was stored")


def _cache_warning(variant: Variant, cache_dir: Path, exc: Exception) -> None:
    warnings.warn(
        f"pytest-qrel could not store {variant.id} in the cache {cache_dir} "
        f"({type(exc).__name__}: {one_line(exc)}); it is measured without being cached",
        QrelCacheWarning,
        stacklevel=4,  # ModelStore.quantized, which asked for the variant (as before the split)
    )
