"""A pruning method as a backend: a pruned model built from its base (``quant.prune``), measured
as a quantized one is (``QuantizedInfo``: which layers, coverage, why a layer stayed dense, total
bits, the measured sparsity), and stored in and read back from the cache. ``Pruner.at`` binds a
sparsity, giving what the quantize and cache paths ask of a backend for one pruned variant."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..cache import installed_version
from ..errors import QuantizationError
from ..variants import QuantizedInfo, Sparsity
from .base import replace_layers, save_layers, storage_bytes
from .prune import METHODS, PrunedInfo, measure, prune, weight_bits

if TYPE_CHECKING:
    import torch

    from ..models import LoadedModel


@dataclasses.dataclass(frozen=True)
class Pruner:
    """``wanda`` or ``sparsegpt``, and once bound (``at``) the sparsity it prunes to: what the
    registry and the cache ask of a backend (name, calibration, version, config version, formats)
    and ``quantize`` (prunes), ``measure``, ``save_quantized``, ``load_quantized`` with a
    backend's signatures, whose bits and group size it ignores (its weights stay at their dtype)."""

    name: str
    sparsity: Sparsity | None = None

    needs_calibration: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ()  # torch only
    extra: ClassVar[str] = "all"
    weight_format: ClassVar[str] = "sparse"  # dense values at the checkpoint's dtype, zeros where pruned
    activation_bits: ClassVar[int | None] = None
    settings_fields: ClassVar[tuple[str, ...]] = ()
    mixed_precision: ClassVar[bool] = False  # the sparsity axis replaces the quantized-share one
    # bump when what pruning does changes (its rounding, block size, dampening): in every cache key
    config_version: ClassVar[int] = 2  # 2: kept weights at the checkpoint's dtype; n:m blocks of whole groups

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise ValueError(f"Expected a pruning method in {sorted(METHODS)}, but got {self.name!r}")

    def at(self, sparsity: Sparsity) -> Pruner:
        return dataclasses.replace(self, sparsity=sparsity)

    def _asked(self) -> Sparsity:
        if self.sparsity is None:
            raise ValueError(f"Expected {self.name} bound to a sparsity (Pruner.at), but it has none")
        return self.sparsity

    def version(self) -> str:
        return f"torch={installed_version('torch')}"

    def prune(self, base: LoadedModel, calibration: list[str] | None,
              layers: list[str] | None = None) -> tuple[torch.nn.Module, QuantizedInfo, PrunedInfo]:
        """A pruned copy of ``base``'s ``layers`` (default: every linear layer outside the head)
        and what was done, measured on its weights."""
        model, info = prune(base, self.name, self._asked(), list(calibration or []), layers)
        return model, self._as_quantized(base, model, info), info

    def quantize(self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str] | None = None,
                 calibration: list[str] | None = None,
                 settings: dict[str, Any] | None = None) -> tuple[torch.nn.Module, QuantizedInfo]:
        model, info, _ = self.prune(base, calibration, layers)
        return model, info

    def measure(self, base: LoadedModel, model: torch.nn.Module, bits: int | None = None,
                group_size: int | None = None, requested: list[str] | None = None) -> QuantizedInfo:
        """What ``model`` (``base`` pruned) stores, from its weights alone, so that a model read
        back from the cache measures the same. An asked-for layer counts as pruned when its
        zeros reach what was asked; one that does not, or that was left dense, lowers the
        coverage, and a variant with too little coverage fails as a partly quantized one does."""
        return self._as_quantized(base, model, measure(base, model, self.name, self._asked(), requested))

    def layer_bits(self, module: torch.nn.Module) -> int | None:
        return None  # its weights are not codes

    def layer_group_size(self, module: torch.nn.Module, bits: int, requested: int | None) -> int | None:
        return None

    @staticmethod
    def _as_quantized(base: LoadedModel, model: torch.nn.Module, info: PrunedInfo) -> QuantizedInfo:
        """``info`` as the measure of a quantized variant: pruned layers as its quantized ones."""
        import torch

        numel, pruned = info.numel, list(info.sparsity)
        assert base.checkpoint_dtype is not None
        dtype_bits = torch.finfo(base.checkpoint_dtype).bits
        kept_bits = sum(weight_bits(model.get_submodule(n).weight, info.asked, dtype_bits) for n in pruned)
        pruned_weights = sum(numel[n] for n in pruned)
        all_linear = sum(base.model.get_submodule(n).weight.numel() for n in base.linear_layer_names)
        asked = sum(numel.values())
        return QuantizedInfo(
            quantized_layers=sorted(pruned),
            requested_layers=list(info.requested_layers),
            linear_layers=len(base.linear_layer_names),
            group_size=None,
            # bits per pruned weight: its kept values and its mask, over all its weights
            effective_bits=kept_bits / pruned_weights if pruned_weights else dtype_bits,
            storage_bits=dtype_bits,  # torch keeps them dense: zeros are stored
            params=base.params,
            total_bits=info.total_bits,
            base_total_bits=info.base_total_bits,
            state_dict_bytes=storage_bytes(model, include_bias=True),
            quantized_fraction=pruned_weights / all_linear if all_linear else 0.0,
            coverage=pruned_weights / asked if asked else 1.0,
            skipped=dict(info.skipped),
            measured_sparsity=info.measured,
        )

    # -- the cache: the pruned layers' weights and biases, in safetensors ------------------------

    def save_quantized(self, model: torch.nn.Module, layers: list[str], directory: Path) -> None:
        save_layers(model, layers, directory)

    def load_quantized(self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str],
                       directory: Path) -> torch.nn.Module:
        from safetensors.torch import load_file

        state = load_file(str(directory / "layers.safetensors"), device=str(base.device))
        per_layer: dict[str, dict] = {name: {} for name in layers}
        for key, value in state.items():
            name, _, leaf = key.partition("::")
            if name not in per_layer:
                raise QuantizationError(f"the stored {self.name} variant has {name}, which was not pruned")
            per_layer[name][leaf] = value

        def rebuild(layer: torch.nn.Module, name: str) -> torch.nn.Module:
            layer.load_state_dict(per_layer[name])
            return layer

        return replace_layers(copy.deepcopy(base.model), layers, rebuild)


PRUNERS: dict[str, Pruner] = {name: Pruner(name) for name in METHODS}
