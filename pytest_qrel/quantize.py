"""A variant quantized from its base: the run's calibration texts and the mixed-precision layer search."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, cast

from . import progress
from .data import calibration_texts
from .engine import encode, reference_logprobs
from .metrics import MeanStats
from .quant import backend_for
from .quant.mixed import Granularity, Selection, select_layers

if TYPE_CHECKING:
    import torch

    from .config import QrelConfig
    from .models import LoadedModel
    from .variants import QuantizedInfo, Variant


class Calibration:
    """The run's calibration texts (--qrel-calibration-file, or the shipped set; the first
    --qrel-calibration-samples), read once: what calibrating backends and the mixed-precision
    search run on, and their digest, part of a calibrated variant's cache key."""

    def __init__(self, config: QrelConfig) -> None:
        self.config = config
        self._texts: list[str] | None = None  # read at the first use, kept for the run

    def texts(self) -> list[str]:
        if self._texts is None:
            self._texts = calibration_texts(self.config.calibration_file)[: self.config.calibration_samples]
        return self._texts

    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.texts()).encode()).hexdigest()


def backend_settings(variant: Variant, config: QrelConfig) -> dict[str, Any]:
    """The run's settings that ``variant``'s backend quantizes with (its ``settings_fields``)."""
    return {name: getattr(config, name) for name in backend_for(variant).settings_fields}


def quantize(
    variant: Variant, base: LoadedModel, config: QrelConfig, calibration: Calibration
) -> tuple[torch.nn.Module, QuantizedInfo]:
    """Quantize ``variant``; a mixed-precision one first searches which layers go low."""
    with progress.step(f"quantizing {variant.id}"):
        backend = backend_for(variant)
        texts = calibration.texts() if backend.needs_calibration else None
        settings = backend_settings(variant, config)
        if variant.quant_ratio >= 1:
            return backend.quantize(base, variant.bits, variant.group_size, calibration=texts, settings=settings)

        full, _ = backend.quantize(base, variant.bits, variant.group_size, calibration=texts, settings=settings)
        batches = encode(base.tokenizer, calibration.texts())
        layers = select_layers(
            base.model,
            full,
            base.linear_layer_names,
            variant.quant_ratio,
            cast(Granularity, variant.granularity),
            cast(Selection, config.selection),
            config.trials,
            config.seed,
            loss=lambda model: _mean_nll(model, batches),
        )
        del full
        return backend.quantize(base, variant.bits, variant.group_size, layers=layers, calibration=texts,
                                settings=settings)


def _mean_nll(model: torch.nn.Module, batches: list) -> float:
    """Mean negative log-likelihood per reference token (paper 000 §3.1): the search loss."""

    parts = [MeanStats.from_batch(-lp.numpy(), batch.target_mask.numpy())
             for batch, lp in zip(batches, reference_logprobs(model, batches))]
    return float(sum(parts[1:], parts[0]).mean())
