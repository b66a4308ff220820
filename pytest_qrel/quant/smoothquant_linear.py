"""W8A8Linear and SmoothQuant's smoothing folds: the torch side of the ``smoothquant`` backend
(imported only when it runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

QMAX = 127  # int8, symmetric: quanto's qint8 (qmax = 2^7 - 1, codes clamped to [-128, 127])
MIN_SCALE = 1e-5  # SmoothQuant's reference clamps its statistics and scales here (smooth.py)


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 codes and one scale per output row, exactly as quanto's qint8 weights (its
    AbsmaxOptimizer along axis 0 and quantize_symmetric): ``scale = max|W_i| / 127`` in the
    weight's dtype, ``q = clamp(round(W / scale), -128, 127)``. An all-zero row (where quanto
    would divide by zero) gets scale 1."""
    scale = weight.abs().amax(dim=1, keepdim=True) / QMAX
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    codes = torch.clamp(torch.round(weight / scale), -QMAX - 1, QMAX).to(torch.int8)
    return codes, scale.reshape(-1)


def quantize_tokens(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic symmetric int8 codes of activations, one scale per token (the last axis is the
    channel axis): SmoothQuant's per-token activation quantization (Xiao et al. 2023, §3)."""
    scale = x.abs().amax(dim=-1, keepdim=True) / QMAX
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return torch.clamp(torch.round(x / scale), -QMAX - 1, QMAX), scale


class W8A8Linear(torch.nn.Module):
    """A linear layer with int8 weights (a scale per output row) whose input is quantized to
    int8 per token at every call; the integer products are accumulated and scaled in float32,
    as quanto's CPU int8 matmul does (``qbytes_int_mm``: int32 accumulation, float32 scaling)."""

    bits = 8

    def __init__(self, in_features: int, out_features: int, bias: torch.Tensor | None, dtype: torch.dtype) -> None:
        super().__init__()
        self.in_features, self.out_features, self.dtype = in_features, out_features, dtype
        self.register_buffer("weight_codes", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features, dtype=dtype))
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear) -> W8A8Linear:
        layer = cls(linear.in_features, linear.out_features, linear.bias, linear.weight.dtype)
        codes, scale = quantize_rows(linear.weight.detach())
        layer.weight_codes.copy_(codes)
        layer.weight_scale.copy_(scale)
        return layer.to(linear.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes, scale = quantize_tokens(x)
        # integer-valued float32 operands: the sums are exact while they stay below 2^24
        acc = torch.nn.functional.linear(codes.float(), self.weight_codes.float())
        out = acc * (scale.float() * self.weight_scale.float())
        if self.bias is not None:
            out = out + self.bias.float()
        return out.to(x.dtype)


@dataclass(frozen=True)
class Fold:
    """One smoothing of SmoothQuant (Xiao et al. 2023, §4): the inputs of ``consumers`` are
    divided by ``s`` channel-wise by folding ``1 / s`` into ``target`` (a norm's weight, or the
    output rows of the linear before), and the consumers' weight columns are multiplied by ``s``.
    ``repeat`` > 1: the consumer's input channels are ``repeat`` heads per target head (grouped
    attention's v_proj feeding o_proj), which share one factor per target channel."""

    target: str
    consumers: tuple[str, ...]
    repeat: int = 1
    head_dim: int = 1


def llama_folds(model: torch.nn.Module) -> list[Fold]:
    """The folds of every Llama-style decoder block (an ``input_layernorm``, a ``self_attn`` with
    q/k/v/o projections, a ``post_attention_layernorm`` and a gated ``mlp``): q, k, v from
    ``input_layernorm``; o from ``v_proj``'s output rows (attention mixes positions, never
    channels: each head's output is linear in its values); gate, up from
    ``post_attention_layernorm``; down from ``up_proj``'s output rows (``act(gate) * up`` is
    linear in up)."""
    folds = []
    for name, block in model.named_modules():
        attn, mlp = getattr(block, "self_attn", None), getattr(block, "mlp", None)
        if not all(hasattr(block, a) for a in ("input_layernorm", "post_attention_layernorm")):
            continue
        if not all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj")):
            continue
        if not all(hasattr(mlp, p) for p in ("gate_proj", "up_proj", "down_proj")):
            continue
        assert attn is not None and mlp is not None  # checked above
        head_dim = int(getattr(attn, "head_dim", attn.o_proj.in_features // max(1, attn.v_proj.out_features)))
        repeat = attn.o_proj.in_features // attn.v_proj.out_features
        folds += [
            Fold(f"{name}.input_layernorm", tuple(f"{name}.self_attn.{p}_proj" for p in "qkv")),
            Fold(f"{name}.self_attn.v_proj", (f"{name}.self_attn.o_proj",), repeat, head_dim),
            Fold(f"{name}.post_attention_layernorm", (f"{name}.mlp.gate_proj", f"{name}.mlp.up_proj")),
            Fold(f"{name}.mlp.up_proj", (f"{name}.mlp.down_proj",)),
        ]
    return folds


def input_absmax(model: torch.nn.Module, names: Sequence[str], batches: Sequence[Any]) -> dict[str, torch.Tensor]:
    """max |X_j| per input channel of each named linear layer over the calibration ``batches``'
    real tokens (padding left out), in float32."""
    device = next(model.parameters()).device
    stats: dict[str, torch.Tensor] = {}
    mask: list[torch.Tensor] = []

    def hook(name: str) -> Any:
        def record(_: torch.nn.Module, args: tuple) -> None:
            x = args[0].detach().float()[mask[0]]  # (real tokens, channels)
            seen = x.abs().amax(dim=0)
            stats[name] = seen if name not in stats else torch.maximum(stats[name], seen)
        return record

    handles = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            for batch in batches:
                mask[:] = [batch.attention_mask.to(device).bool()]
                model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device))
    finally:
        for h in handles:
            h.remove()
    return stats


def smoothing_factors(fold: Fold, model: torch.nn.Module, act: dict[str, torch.Tensor], alpha: float) -> torch.Tensor:
    """SmoothQuant's eq. 4 (Xiao et al. 2023): ``s_j = max|X_j|^α / max|W_j|^(1−α)``, with
    max|W_j| over the column j of every consumer; one factor per channel of ``fold.target``'s
    output (a grouped head's channels take the largest statistics of the heads sharing it)."""
    x = torch.stack([act[c] for c in fold.consumers]).amax(0)
    w = torch.stack([model.get_submodule(c).weight.detach().abs().float().amax(0) for c in fold.consumers]).amax(0)
    if fold.repeat > 1:  # channel (head h, d) of o's input reads v's channel (h // repeat, d)
        x, w = (t.reshape(-1, fold.repeat, fold.head_dim).amax(1).reshape(-1) for t in (x, w))
    x, w = x.clamp(min=MIN_SCALE), w.clamp(min=MIN_SCALE)
    return (x.pow(alpha) / w.pow(1 - alpha)).clamp(min=MIN_SCALE)


def apply_fold(model: torch.nn.Module, fold: Fold, factors: torch.Tensor) -> None:
    """Fold ``factors`` into ``model`` (in place): the function is unchanged up to rounding."""
    target = model.get_submodule(fold.target)
    with torch.no_grad():
        s = factors.to(target.weight.device)
        if isinstance(target, torch.nn.Linear):  # its output rows
            target.weight.div_(s.to(target.weight.dtype)[:, None])
        else:  # a norm's per-channel weight
            target.weight.div_(s.to(target.weight.dtype))
        if getattr(target, "bias", None) is not None:
            target.bias.div_(s.to(target.bias.dtype))
        # channel (head h, d) of a grouped consumer's input reads the target's (h // repeat, d)
        columns = s if fold.repeat == 1 else s.reshape(-1, 1, fold.head_dim).expand(-1, fold.repeat, -1).reshape(-1)
        for name in fold.consumers:
            weight = model.get_submodule(name).weight
            weight.mul_(columns.to(weight.dtype)[None, :])
