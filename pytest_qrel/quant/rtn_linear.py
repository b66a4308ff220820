"""RTNLinear: the torch layer behind the ``rtn`` backend (imported only when it runs)."""

from __future__ import annotations

from typing import Any

import torch


def _pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer codes in [0, 2^bits) into a flat uint8 tensor, ``bits`` bits each."""
    flat = codes.reshape(-1).to(torch.int64)
    shifts = torch.arange(bits - 1, -1, -1)
    bitstream = ((flat[:, None] >> shifts) & 1).reshape(-1)
    pad = (-bitstream.numel()) % 8
    bitstream = torch.cat([bitstream, bitstream.new_zeros(pad)]).reshape(-1, 8)
    return (bitstream << torch.arange(7, -1, -1)).sum(1).to(torch.uint8)


def _unpack(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    bitstream = ((packed.to(torch.int64)[:, None] >> torch.arange(7, -1, -1)) & 1).reshape(-1)
    groups = bitstream[: count * bits].reshape(count, bits)
    return (groups << torch.arange(bits - 1, -1, -1)).sum(1)


class RTNLinear(torch.nn.Module):
    """A linear layer whose weight is stored RTN-quantized and dequantized on use."""

    def __init__(self, in_features: int, out_features: int, bits: int, group_size: int, bias: torch.Tensor | None,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.group_size, self.dtype = bits, group_size, dtype
        groups = out_features * (in_features // group_size)
        self.register_buffer("qweight", torch.zeros((out_features * in_features * bits + 7) // 8, dtype=torch.uint8))
        self.register_buffer("qzeros", torch.zeros((groups * bits + 7) // 8, dtype=torch.uint8))
        self.register_buffer("scales", torch.zeros(groups, dtype=torch.float16))
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().clone(), requires_grad=False)
        self._weight: torch.Tensor | None = None

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, bits: int, group_size: int | None) -> RTNLinear:
        out_f, in_f = linear.weight.shape
        group = group_size or in_f
        layer = cls(in_f, out_f, bits, group, linear.bias, linear.weight.dtype)
        w = linear.weight.detach().float().reshape(out_f, in_f // group, group)
        # The range of each group always includes 0, as GPTQ's quantizer does: 0 is then a
        # code (the zero point needs no clamping), and a group whose weights share a sign
        # keeps its spread instead of collapsing onto its minimum.
        lo, hi = w.amin(-1).clamp(max=0), w.amax(-1).clamp(min=0)
        empty = (lo == 0) & (hi == 0)
        lo, hi = torch.where(empty, -1.0, lo), torch.where(empty, 1.0, hi)
        levels = 2**bits - 1
        # stored as float16; a scale that underflows float16 becomes its smallest step
        scale = ((hi - lo) / levels).half().float().clamp(min=2.0**-24)
        zero = torch.round(-lo / scale).clamp(0, levels)
        codes = torch.clamp(torch.round(w / scale[..., None]) + zero[..., None], 0, levels)
        layer.qweight.copy_(_pack(codes, bits))
        layer.qzeros.copy_(_pack(zero, bits))
        layer.scales.copy_(scale.reshape(-1).half())
        return layer.to(linear.weight.device)

    def dequantized_weight(self) -> torch.Tensor:
        if self._weight is None:
            n_groups = self.scales.numel()
            codes = _unpack(self.qweight.cpu(), self.bits, self.out_features * self.in_features)
            zeros = _unpack(self.qzeros.cpu(), self.bits, n_groups)
            w = (codes.reshape(n_groups, self.group_size) - zeros[:, None]) * self.scales.cpu().float()[:, None]
            self._weight = w.reshape(self.out_features, self.in_features).to(self.dtype).to(self.qweight.device)
        return self._weight

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._weight = None
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.dequantized_weight(), self.bias)
