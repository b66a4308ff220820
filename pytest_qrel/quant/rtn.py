"""Plain round-to-nearest (RTN): asymmetric, per-group, written in torch.

The reference every other method is compared with (paper 000 §2 and paper 002 use RTN
as the baseline PTQ method), and the one backend that needs nothing but torch.

For a group ``w`` of G weights of one output row (paper 002 App. D, asymmetric), with
the range widened to include 0 as GPTQ's quantizer does (``lo = min(min w, 0)``,
``hi = max(max w, 0)``): ``scale = (hi - lo) / (2^b - 1)``, ``zero = round(-lo / scale)``,
``q = clamp(round(w / scale) + zero, 0, 2^b - 1)``, ``w_hat = (q - zero) * scale``.
A row that does not split into groups of G is quantized with the largest power-of-two
group that divides it (or one group per row), and the report says so.
Codes are bit-packed (b bits each), zero points kept as b-bit integers, scales as float16:
exactly ``b + (16 + b) / G`` bits per weight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Backend, fitting_group

if TYPE_CHECKING:
    import torch


class RTNBackend(Backend):
    name = "rtn"
    bits = (2, 3, 4, 8)
    requires = ()
    extra = "all"

    # 2: the range of a group includes 0; narrow rows get a smaller group instead of staying
    config_version = 2
    symmetric = {b: False for b in bits}

    def _quantize_layer(self, linear: torch.nn.Linear, bits: int, group_size: int | None) -> torch.nn.Module | None:
        from .rtn_linear import RTNLinear

        return RTNLinear.from_linear(linear, bits, fitting_group(linear.in_features, group_size))

    def _empty_layer(self, linear: torch.nn.Linear, bits: int, group_size: int | None) -> torch.nn.Module:
        from .rtn_linear import RTNLinear

        group = fitting_group(linear.in_features, group_size) or linear.in_features
        return RTNLinear(linear.in_features, linear.out_features, bits, group, linear.bias,
                         linear.weight.dtype).to(linear.weight.device)

    def layer_bits(self, module: torch.nn.Module) -> int | None:
        return module.bits

    def layer_group_size(self, module: torch.nn.Module, bits: int, requested: int | None) -> int | None:
        return module.group_size

    def _is_quantized(self, module: torch.nn.Module) -> bool:
        from .rtn_linear import RTNLinear

        return isinstance(module, RTNLinear)
