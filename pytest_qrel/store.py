"""Base models and quantized variants: load, quantize, cache, release."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, cast

from . import progress
from .engine import device_for_worker
from .errors import QuantizationError, VariantError, one_line
from .model_state import HeldBase, S, load_held
from .models import load_base
from .placement import settle
from .prequantized import load_checkpoint
from .quantize import Calibration, quantize
from .variant_cache import base_digests, cached_or_quantized, variant_key
from .variants import VariantInfo

if TYPE_CHECKING:
    import torch

    from .config import QrelConfig
    from .models import LoadedModel
    from .variant_cache import BaseDigests
    from .variants import CacheState, QuantizedInfo, Variant


class ModelStore:
    """Holds the base of one model at a time with its per-model state, and the last quantized
    variant; moving to another model releases them. Load errors are kept, once per model;
    ``info`` (what each variant's quantization measured) is written here only."""

    def __init__(self, config: QrelConfig) -> None:
        self.config = config
        self.calibration = Calibration(config)
        self.info: dict[Variant, VariantInfo] = {}
        self._held: HeldBase | None = None
        self._errors: dict[str, str] = {}  # model name -> why its base does not load
        self._quantized: tuple[Variant, torch.nn.Module] | None = None

    # -- base models ---------------------------------------------------------------------

    def base(self, variant: Variant) -> LoadedModel:
        """The full-precision base of ``variant``, loaded once (releasing the model held before);
        VariantError if it cannot be. Weights released while a variant was measured
        (``release_base_weights``) are loaded again from disk, the model's state kept."""
        held = self.hold(variant)
        if held.loaded is None:
            held.loaded = load_held(variant, self.config, self._errors, load_base)
        return held.loaded

    def hold(self, variant: Variant) -> HeldBase:
        """The held base of ``variant``'s model (loading it if another model's is held), without
        loading again weights released by ``release_base_weights``: what ``state`` needs."""
        if variant.model in self._errors:
            raise VariantError(self._errors[variant.model])
        if self._held is None or self._held.name != variant.model:
            self.release()
            loaded = load_held(variant, self.config, self._errors, load_base)
            self._held = HeldBase(variant.model, loaded, next(loaded.model.parameters()).device.type)
            # everything alive now (the imported libraries, ~450k objects with torch and
            # transformers, and this base) is left out of the collections made at each variant
            # switch: a full scan took 0.35 s per switch, as long as a zoo variant's KL forward
            # passes (benchmarks/bench_kl_overhead.py); the quantized variants, created later,
            # are scanned and collected as before; release() unfreezes them for the next model
            gc.freeze()
        return self._held

    def release_base_weights(self, variant: Variant) -> None:
        """Drop the base's weights while ``variant`` is measured from what is stored of the base
        (issue 38 item 3: one model's memory, not two); ``base()`` loads them again from disk."""
        self.hold(variant).release_weights()

    def state(self, variant: Variant, kind: type[S]) -> S:
        """``variant``'s model's state of ``kind``, made with its defaults the first time. It
        loads nothing: the held base must be ``variant``'s (``base(variant)`` loads it)."""
        held = self._held
        if held is None or held.name != variant.model:
            raise RuntimeError(f"the base of {variant.model} is not held: call base(variant) before state()")
        if kind not in held.states:
            held.states[kind] = kind()
        return cast(S, held.states[kind])

    def digests(self, variant: Variant) -> BaseDigests:
        """The digests of ``variant``'s base (loading it), computed once per model."""
        held = self.hold(variant)
        if held.digests is None:
            held.digests = base_digests(self.base(variant))
        return held.digests

    def release(self) -> None:
        """Drop the held base model, its per-model state and the quantized variant."""
        self._held, self._quantized = None, None
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
            self.info[variant] = VariantInfo(error=one_line(exc))
            raise VariantError(one_line(exc)) from None
        except Exception as exc:  # a backend bug: keep the traceback, and the row in the report
            self.info[variant] = VariantInfo(error=f"{type(exc).__name__}: {one_line(exc)}")
            raise
        # what a measure added (KL's base passes) stays when the variant is loaded again
        passes = self.info[variant].kl_base_forward_passes if variant in self.info else None
        self.info[variant] = VariantInfo(info, cache_state, kl_base_forward_passes=passes)
        self._quantized = (variant, model)
        progress.name_model(model, variant.id)
        return model

    def record_kl_base_passes(self, variant: Variant, passes: int) -> None:
        """How many base forward passes ``variant``'s KL test ran, kept in its info."""
        self.info.setdefault(variant, VariantInfo()).kl_base_forward_passes = passes

    def _quantize_or_load(self, variant: Variant, base: LoadedModel) -> tuple[torch.nn.Module, QuantizedInfo, CacheState]:
        """From the cache, or quantized and stored there; a pre-quantized checkpoint as it is (held whole: placement.settle)."""
        model, info, state = self._made(variant, base)
        return settle(model, base.model, device_for_worker(self.config.placement.gpus_per_worker)), info, state

    def _made(self, variant: Variant, base: LoadedModel) -> tuple[torch.nn.Module, QuantizedInfo, CacheState]:
        if variant.checkpoint:
            return (*load_checkpoint(variant, base, self.config.allow_pickle), "prequantized")

        def run() -> tuple[torch.nn.Module, QuantizedInfo]:
            return quantize(variant, base, self.config, self.calibration)

        if self.config.cache_dir is None:
            return (*run(), "off")
        key = self.cache_key(variant)
        return cached_or_quantized(variant, base, self.config.cache_dir, key, self.digests(variant).weights, run)

    def cache_key(self, variant: Variant) -> str:
        """The key of ``variant``'s quantized weights in the cache (loading its base)."""
        digests = self.digests(variant)
        return variant_key(variant, digests.weights, digests.tokenizer, self.config, self.calibration)
