"""SmoothQuant (Xiao et al. 2023), the W8A8 int8 method of paper 001 (§4.3, its "SmoothQuant
8/8" rows): int8 weights and int8 activations, the activations' outliers first migrated into
the weights by per-channel smoothing. Written in torch.

Smoothing (Xiao et al. §4, eq. 4): per input channel j of a linear layer, from the calibration
activations, ``s_j = max|X_j|^α / max|W_j|^(1−α)`` (α: ``--qrel-smoothquant-alpha``, 0.5 by
default); X is divided by s and W's column j multiplied by it, the division folded into the op
before, so the full-precision model computes the same function. In Llama-style blocks (the
zoo's): q/k/v from ``input_layernorm``'s weight, gate/up from ``post_attention_layernorm``'s,
o from ``v_proj``'s output rows, down from ``up_proj``'s output rows (the reference code
smooths only the first two; the other two cost nothing, as v_proj and up_proj are quantized a
scale per output row). Linear layers of other blocks are quantized without smoothing, and
reported so: out of the variant's coverage, in its skipped layers (``measure``).

Then W8A8 (``smoothquant_linear.W8A8Linear``): weights int8 with one scale per output row,
exactly as quanto's qint8 weights (``quanto-a8``); activations int8 with one scale per token,
computed at each call (dynamic, symmetric; Xiao et al.'s per-token setting). The one difference
from ``quanto-a8`` besides the smoothing is thus the activations' granularity: quanto-a8
quantizes each linear layer's input and output with one static per-tensor scale, calibrated
beforehand. ``--qrel-smoothquant-alpha=0`` is not "no smoothing" (s_j = 1 / max|W_j|): the
unsmoothed path is ``W8A8Linear`` on the base's own layers (tests/unit/test_smoothquant.py).

Scales are folded into the model's norms, which a mixed-precision search that swaps single
quantized layers into the base cannot take: ``--qrel-quant-ratio`` below 1 is a usage error.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, ClassVar

from ..engine import encode
from ..errors import QuantizationError
from .base import Backend, as_linear, replace_layers

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from ..engine import TokenBatch
    from ..models import LoadedModel
    from ..variants import QuantizedInfo

DEFAULT_ALPHA = 0.5  # Xiao et al. §4: the sweet spot of most models
FACTORS_FILE = "smoothing.safetensors"
# largest relative change of the base's logits that folding may make: float rounding only
# (a float32 model's; in 16-bit floats each folded weight is rounded once more)
FOLD_TOLERANCE = {"float32": 1e-3, "other": 5e-2}


class SmoothQuantBackend(Backend):
    name = "smoothquant"
    bits: ClassVar[tuple[int, ...]] = (8,)
    requires = ()
    extra = "all"
    needs_calibration = True
    fixed_group_size = {8: None}  # a scale per output row
    symmetric = {8: True}  # no zero point: b_eff = 8 + 16 / row width (paper 002 §3)
    activation_bits = 8
    settings_fields = ("smoothquant_alpha",)
    mixed_precision = False

    def _quantize(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], calibration: list[str] | None,
        smoothquant_alpha: float = DEFAULT_ALPHA,
    ) -> torch.nn.Module:
        from .smoothquant_linear import W8A8Linear, apply_fold, input_absmax, llama_folds, smoothing_factors

        model = copy.deepcopy(base.model).eval()
        chosen = set(layers)
        folds = [f for f in llama_folds(model) if chosen & set(f.consumers)]
        batches = encode(base.tokenizer, list(calibration or []))
        act = input_absmax(model, [c for f in folds for c in f.consumers], batches)
        factors = {f.target: smoothing_factors(f, model, act, smoothquant_alpha) for f in folds}
        for fold in folds:
            apply_fold(model, fold, factors[fold.target])
        _check_function(base, model, batches[0])
        model._qrel_smoothing = {k: v.cpu() for k, v in factors.items()}  # for save_quantized
        return replace_layers(model, layers, lambda layer, _: W8A8Linear.from_linear(as_linear(layer))).eval()

    def save_quantized(self, model: torch.nn.Module, layers: list[str], directory: Path) -> None:
        from safetensors.torch import save_file

        factors = getattr(model, "_qrel_smoothing", None)
        if factors is None:
            raise QuantizationError("smoothquant: this model has no smoothing factors recorded; nothing to store")
        super().save_quantized(model, layers, directory)
        save_file({k: v.contiguous() for k, v in factors.items()}, str(directory / FACTORS_FILE))

    def load_quantized(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], directory: Path
    ) -> torch.nn.Module:
        """The base with the stored factors folded in again (the same float operations as when
        it was quantized, so the same weights bit for bit), its quantized layers' stored codes."""
        from safetensors.torch import load_file

        from .smoothquant_linear import W8A8Linear, apply_fold, llama_folds

        factors = load_file(str(directory / FACTORS_FILE))
        model = copy.deepcopy(base.model).eval()
        folds = {f.target: f for f in llama_folds(model)}
        unknown = sorted(set(factors) - set(folds))
        if unknown:
            raise QuantizationError(f"smoothquant: stored factors for {unknown[0]}, which {base.name} has no fold for")
        for target, fold in folds.items():
            if target in factors:
                apply_fold(model, fold, factors[target])
        state = load_file(str(directory / "layers.safetensors"), device=str(base.device))

        def rebuild(layer: torch.nn.Module, name: str) -> torch.nn.Module:
            linear = as_linear(layer)
            quantized = W8A8Linear(linear.in_features, linear.out_features, linear.bias, linear.weight.dtype)
            quantized.load_state_dict({k.partition("::")[2]: v for k, v in state.items() if k.startswith(f"{name}::")})
            return quantized.to(linear.weight.device)

        model = replace_layers(model, layers, rebuild).eval()
        model._qrel_smoothing = factors
        return model

    def measure(
        self, base: LoadedModel, model: torch.nn.Module, bits: int, group_size: int | None,
        requested: list[str] | None = None,
    ) -> QuantizedInfo:
        """What was quantized, counting a layer quantized W8A8 with no smoothing (outside a
        Llama-style block: nothing to fold into) as not SmoothQuant: out of the coverage and in
        ``skipped`` with why (its bits still count: it is stored W8A8), as awq's RTN fallback."""
        from .smoothquant_linear import llama_folds

        info = super().measure(base, model, bits, group_size, requested)
        factors = getattr(model, "_qrel_smoothing", {})
        smoothed = {c for f in llama_folds(model) if f.target in factors for c in f.consumers}
        plain = [n for n in info.requested_layers if n in info.quantized_layers and n not in smoothed]
        numel = {n: base.model.get_submodule(n).weight.numel() for n in info.requested_layers}
        if plain and sum(numel.values()):
            info.coverage = max(0.0, info.coverage - sum(numel[n] for n in plain) / sum(numel.values()))
            info.skipped.update({n: "quantized W8A8 without smoothing (not in a Llama-style block): not SmoothQuant"
                                 for n in plain})
        return info

    def layer_bits(self, module: torch.nn.Module) -> int | None:
        return int(module.bits)

    def _is_quantized(self, module: torch.nn.Module) -> bool:
        from .smoothquant_linear import W8A8Linear

        return isinstance(module, W8A8Linear)


def _check_function(base: LoadedModel, smoothed: torch.nn.Module, batch: TokenBatch) -> None:
    """Folding must leave the full-precision function as it was: a norm that does not scale by
    its weight (e.g. Gemma's ``1 + weight``) would not, and is refused rather than measured."""
    import torch

    with torch.no_grad():
        inputs = {"input_ids": batch.input_ids.to(base.device), "attention_mask": batch.attention_mask.to(base.device)}
        before, after = base.model(**inputs).logits.float(), smoothed(**inputs).logits.float()
    change = float((after - before).abs().max() / before.abs().max().clamp(min=1e-12))
    tolerance = FOLD_TOLERANCE["float32" if base.dtype == torch.float32 else "other"]
    if change > tolerance:
        raise QuantizationError(
            f"smoothquant: folding the smoothing factors into {base.name}'s norms changed its logits by {change:.2g} "
            f"(relative; at most {tolerance:g} expected): its blocks are not Llama-style"
        )
