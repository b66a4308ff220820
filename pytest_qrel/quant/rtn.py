"""Plain round-to-nearest (RTN): asymmetric, per-group, written in torch.

The reference every other method is compared with (paper 000 §2 and paper 002 use RTN
as the baseline PTQ method), and the one backend that needs nothing but torch.

For a group ``w`` of G weights of one output row (paper 002 App. D, asymmetric):
``scale = (max w - min w) / (2^b - 1)``, ``zero = round(-min w / scale)``,
``q = clamp(round(w / scale) + zero, 0, 2^b - 1)``, ``w_hat = (q - zero) * scale``.
Codes are bit-packed (b bits each), zero points kept as b-bit integers, scales as float16:
exactly ``b + (16 + b) / G`` bits per weight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Backend

if TYPE_CHECKING:
    import torch

    from ..models import LoadedModel


class RTNBackend(Backend):
    name = "rtn"
    bits = (2, 3, 4, 8)
    requires = ()
    extra = "all"

    def _quantize_layer(self, linear: torch.nn.Linear, bits: int, group_size: int | None) -> torch.nn.Module | None:
        from .rtn_linear import RTNLinear

        if group_size and linear.in_features % group_size:
            return None  # groups run along a row: a row that does not split stays
        return RTNLinear.from_linear(linear, bits, group_size)

    def _empty_layer(self, linear: torch.nn.Linear, bits: int, group_size: int | None) -> torch.nn.Module:
        from .rtn_linear import RTNLinear

        bias = None if linear.bias is None else linear.bias
        return RTNLinear(linear.in_features, linear.out_features, bits, group_size or linear.in_features, bias,
                         linear.weight.dtype).to(linear.weight.device)

    def _is_quantized(self, module: torch.nn.Module) -> bool:
        from .rtn_linear import RTNLinear

        return isinstance(module, RTNLinear)
