"""HQQ (half-quadratic quantization) through hqq's own HQQLinear, on any nn.Linear.

transformers 5's ``HqqConfig`` raises NotImplementedError and hqq's ``AutoHQQHFModel``
assumes ``model.model.layers``, so the linear layers are replaced here directly: that
works for every architecture built from ``torch.nn.Linear`` (Llama, OPT, Mistral, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Backend, fitting_group

if TYPE_CHECKING:
    import torch


class HQQBackend(Backend):
    name = "hqq"
    bits = (2, 3, 4, 8)
    requires = ("hqq",)
    extra = "hqq"

    # 2: a weight that does not split into groups of G gets a smaller group instead of staying
    config_version = 2
    symmetric = {b: False for b in bits}  # a scale and a zero point per group

    def _quantize_layer(self, linear: torch.nn.Linear, bits: int, group_size: int | None) -> torch.nn.Module | None:
        from hqq.core.quantize import HQQLinear

        # HQQ reshapes a weight into rows of `group_size` consecutive weights
        config = self._config(bits, fitting_group(linear.weight.numel(), group_size))
        return HQQLinear(linear, config, compute_dtype=linear.weight.dtype, device=str(linear.weight.device), del_orig=True)

    def _empty_layer(self, linear: torch.nn.Linear, bits: int, group_size: int | None) -> torch.nn.Module:
        from hqq.core.quantize import HQQLinear

        config = self._config(bits, fitting_group(linear.weight.numel(), group_size))
        return HQQLinear(None, config, compute_dtype=linear.weight.dtype, device=str(linear.weight.device), initialize=False)

    @staticmethod
    def _config(bits: int, group_size: int | None) -> dict:
        from hqq.core.quantize import BaseQuantizeConfig

        return BaseQuantizeConfig(nbits=bits, group_size=group_size)

    def layer_bits(self, module: torch.nn.Module) -> int | None:
        return int(module.meta["nbits"])

    def layer_group_size(self, module: torch.nn.Module, bits: int, requested: int | None) -> int | None:
        return module.quant_config["weight_quant_params"]["group_size"]

    def _is_quantized(self, module: torch.nn.Module) -> bool:
        from hqq.core.quantize import HQQLinear

        return isinstance(module, HQQLinear)
