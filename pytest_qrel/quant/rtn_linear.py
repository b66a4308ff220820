"""RTNLinear: the torch layer behind the ``rtn`` backend (imported only when it runs)."""

from __future__ import annotations

from typing import Any

import torch


def _pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer codes in [0, 2^bits) into a flat uint8 tensor, ``bits`` bits each, most
    significant first, the last byte padded with zero bits. Eight codes fill ``bits`` whole
    bytes, so the codes are packed eight at a time into one integer of ``8 * bits`` bits and
    cut into bytes: a loop over the eight positions, not over the codes (the bit-at-a-time
    stream it replaces held 8 * bits int64 per code: 4 GB for one 8-bit MLP weight of Llama-3.2-1B)."""
    flat = codes.reshape(-1)
    count = flat.numel()
    if bits == 8:
        return flat.to(torch.uint8)
    width = (count * bits + 7) // 8
    if 8 % bits == 0:  # 1, 2, 4 bits: whole codes per byte, packed in uint8 (8x less memory than int64)
        per = 8 // bits
        small = torch.cat([flat.to(torch.uint8), flat.new_zeros((-count) % per, dtype=torch.uint8)]).reshape(-1, per)
        byte = small[:, 0] << (bits * (per - 1))
        for j in range(1, per):
            byte |= small[:, j] << (bits * (per - 1 - j))
        return byte
    flat = torch.cat([flat.to(torch.int64), flat.new_zeros((-count) % 8, dtype=torch.int64)]).reshape(-1, 8)
    word = flat[:, 0] << (bits * 7)
    for j in range(1, 8):
        word |= flat[:, j] << (bits * (7 - j))
    out = torch.empty(len(word), bits, dtype=torch.uint8)
    for k in range(bits):
        out[:, k] = (word >> (8 * (bits - 1 - k))) & 0xFF
    return out.reshape(-1)[:width]


def _unpack(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """The ``count`` int64 codes ``_pack`` packed: ``bits`` bytes back into eight codes at a time."""
    if bits == 8:
        return packed[:count].to(torch.int64)
    if 8 % bits == 0:
        per, mask = 8 // bits, (1 << bits) - 1
        codes = torch.empty(len(packed), per, dtype=torch.uint8)
        for j in range(per):
            codes[:, j] = (packed >> (bits * (per - 1 - j))) & mask
        return codes.reshape(-1)[:count].to(torch.int64)
    data = packed.to(torch.int64)
    data = torch.cat([data, data.new_zeros((-len(data)) % bits)]).reshape(-1, bits)
    word = data[:, 0] << (8 * (bits - 1))
    for k in range(1, bits):
        word |= data[:, k] << (8 * (bits - 1 - k))
    mask = (1 << bits) - 1
    codes = torch.empty(len(word), 8, dtype=torch.int64)
    for j in range(8):
        codes[:, j] = (word >> (bits * (7 - j))) & mask
    return codes.reshape(-1)[:count]


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
