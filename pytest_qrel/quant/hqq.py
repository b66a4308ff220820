"""HQQ (half-quadratic quantization) through hqq's own HQQLinear, on any nn.Linear.

transformers 5's ``HqqConfig`` raises NotImplementedError and hqq's ``AutoHQQHFModel``
assumes ``model.model.layers``, so the linear layers are replaced here directly: that
works for every architecture built from ``torch.nn.Linear`` (Llama, OPT, Mistral, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Backend

if TYPE_CHECKING:
    import torch

    from ..models import LoadedModel


class HQQBackend(Backend):
    name = "hqq"
    bits = (2, 3, 4, 8)
    requires = ("hqq",)
    extra = "hqq"

    def _quantize_layer(self, linear: torch.nn.Linear, bits: int, group_size: int | None) -> torch.nn.Module | None:
        from hqq.core.quantize import BaseQuantizeConfig, HQQLinear

        # HQQ reshapes a weight into rows of `group_size`: a layer it cannot split stays.
        if group_size and linear.weight.numel() % group_size:
            return None
        config = BaseQuantizeConfig(nbits=bits, group_size=group_size)
        device = str(linear.weight.device)
        return HQQLinear(linear, config, compute_dtype=linear.weight.dtype, device=device, del_orig=True)

    def _empty_layer(self, linear: torch.nn.Linear, bits: int, group_size: int | None) -> torch.nn.Module:
        from hqq.core.quantize import BaseQuantizeConfig, HQQLinear

        config = BaseQuantizeConfig(nbits=bits, group_size=group_size)
        return HQQLinear(None, config, compute_dtype=linear.weight.dtype, device=str(linear.weight.device), initialize=False)

    def _is_quantized(self, module: torch.nn.Module) -> bool:
        from hqq.core.quantize import HQQLinear

        return isinstance(module, HQQLinear)
