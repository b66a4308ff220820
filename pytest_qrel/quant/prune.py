"""Pruning, written in torch: Wanda (Sun et al. 2023) and SparseGPT (Frantar & Alistarh 2023),
unstructured at a sparsity s in (0, 1) or n:m semi-structured (2:4), run layer by layer on the
calibration texts.

Both see a linear layer's inputs X (one row per real token of the calibration batches, padding
left out) only through ``XᵀX``: Wanda's score of weight (i, j) is ``|W_ij|·‖X_j‖₂`` with
``‖X_j‖₂² = (XᵀX)_jj``; SparseGPT's Hessian is ``H = 2XᵀX / n`` (+ 1% of its mean diagonal).
The inputs of each layer are collected from the calibration batches going through the model
pruned so far (the papers go block by block; here each linear layer is one step, finer still).

How many weights are pruned: unstructured, ``ceil(s · width)`` of each output row (Wanda: the
row's lowest scores; SparseGPT: chosen block by block of ``BLOCK`` columns, each block taking
``ceil(s · end) - ceil(s · start)`` of the row, so every row loses exactly ``ceil(s · width)``),
so a row never keeps more than asked (0.1 on 64-wide rows prunes 7, measured 0.109); n:m,
the n lowest of each m consecutive weights of a row. SparseGPT also zeroes the columns whose
input is always 0 (its reference code does: nothing can be reconstructed from them).

The output head and whatever shares a tensor with it or with the input embeddings (a tied
head) is never pruned, whatever the layer list asks.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..engine import encode
from ..errors import InputsCollected, QuantizationError
from ..variants import Sparsity

if TYPE_CHECKING:
    import torch

    from ..models import LoadedModel

BLOCK = 128  # SparseGPT's lazy-update block of columns (its reference code's default)
DAMP = 0.01  # SparseGPT's dampening: this share of the Hessian's mean diagonal is added to it


def wanda_mask(weight: torch.Tensor, xtx: torch.Tensor, sparsity: Sparsity) -> torch.Tensor:
    """Wanda's mask (True: pruned) of an (out, in) ``weight`` whose inputs X gave ``xtx = XᵀX``:
    per output row, the lowest ``|W_ij|·‖X_j‖₂``."""
    import torch

    score = weight.abs().float() * xtx.diagonal().float().clamp(min=0).sqrt()[None, :]
    mask = torch.zeros_like(score, dtype=torch.bool)
    if sparsity.m:
        for start in range(0, score.shape[1], sparsity.m):
            low = torch.topk(score[:, start : start + sparsity.m], sparsity.n, dim=1, largest=False).indices
            mask.scatter_(1, start + low, True)
    else:
        low = torch.topk(score, sparsity.row_count(score.shape[1]), dim=1, largest=False).indices
        mask.scatter_(1, low, True)
    return mask


def sparsegpt_prune(weight: torch.Tensor, xtx: torch.Tensor, tokens: int, sparsity: Sparsity,
                    block: int = BLOCK, damp: float = DAMP) -> torch.Tensor:
    """SparseGPT: the (out, in) ``weight`` pruned column by column, each pruned weight's error
    spread over the row's later columns by the OBS update with ``H = 2XᵀX / tokens`` (the
    inverse's rows from the upper Cholesky factor of H⁻¹), lazily a block of columns at a time;
    the mask of a block chosen at its start by ``w² / [chol(H⁻¹)]_jj²``. Returns the new weight."""
    import torch

    if sparsity.m:  # whole groups of m in each block: a group a block boundary cut would lose its pattern
        block = max(sparsity.m, block - block % sparsity.m)
    work = torch.promote_types(weight.dtype, torch.float32)  # float32 at least, as the reference code
    w = weight.detach().to(work).clone()
    h = 2 * xtx.to(work) / max(tokens, 1)
    width = w.shape[1]
    dead = h.diagonal() == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += damp * h.diagonal().mean() * torch.eye(width, device=h.device, dtype=work)
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    for i1 in range(0, width, block):
        i2 = min(i1 + block, width)
        w1, u1 = w[:, i1:i2].clone(), u[i1:i2, i1:i2]
        err = torch.zeros_like(w1)
        mask = torch.zeros_like(w1, dtype=torch.bool)
        if not sparsity.m:
            k = sparsity.row_count(i2) - sparsity.row_count(i1)
            if k:
                score = w1**2 / u1.diagonal()[None, :] ** 2
                mask.scatter_(1, torch.topk(score, k, dim=1, largest=False).indices, True)
        for i in range(i2 - i1):
            if sparsity.m and i % sparsity.m == 0:
                score = w1[:, i : i + sparsity.m] ** 2 / u1.diagonal()[i : i + sparsity.m][None, :] ** 2
                mask.scatter_(1, i + torch.topk(score, sparsity.n, dim=1, largest=False).indices, True)
            col = w1[:, i]
            kept = torch.where(mask[:, i], torch.zeros_like(col), col)
            err[:, i] = (col - kept) / u1[i, i]
            w1[:, i:] -= err[:, i : i + 1] * u1[i : i + 1, i:]
            w1[:, i] = kept
        w[:, i1:i2] = w1
        w[:, i2:] -= err @ u[i1:i2, i2:]
    return w.to(weight.dtype)


def _wanda(weight: torch.Tensor, xtx: torch.Tensor, tokens: int, sparsity: Sparsity) -> torch.Tensor:
    return weight.masked_fill(wanda_mask(weight, xtx, sparsity), 0)


METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor, int, Sparsity], torch.Tensor]] = {
    "wanda": _wanda,
    "sparsegpt": sparsegpt_prune,
}


@dataclass
class PrunedInfo:
    """What pruning did, measured on the pruned weights (``measure``): each pruned layer's share
    of zeros, each asked-for layer not pruned as asked and why, and the bits the model stores."""

    method: str
    asked: Sparsity
    sparsity: dict[str, float]  # measured per pruned layer: zeros / weights
    requested_layers: list[str]
    skipped: dict[str, str] = field(default_factory=dict)  # asked-for layer -> why not pruned as asked
    numel: dict[str, int] = field(default_factory=dict)  # weights of each asked-for layer
    total_bits: float = 0.0
    base_total_bits: float = 0.0

    @property
    def measured(self) -> float:
        """The share of zeros over the asked-for layers' weights, those not pruned counting none."""
        return sum(self.sparsity[n] * self.numel[n] for n in self.sparsity) / max(sum(self.numel.values()), 1)

    def shortfall(self) -> str | None:
        """Why the measured sparsity falls short of what was asked, or None."""
        if not self.skipped:
            return None
        name, why = next(iter(self.skipped.items()))
        return f"{len(self.skipped)} asked-for layer(s) not pruned as asked, e.g. {name}: {why}"


def protected(model: torch.nn.Module) -> set[int]:
    """Storage addresses of the output head's and the input embeddings' weights: a layer whose
    weight lives there (a head tied to the embeddings) is never pruned."""
    out = set()
    for module in (model.get_output_embeddings(), model.get_input_embeddings()):
        if module is not None and getattr(module, "weight", None) is not None:
            out.add(module.weight.untyped_storage().data_ptr())
    return out


def _row_major(module: torch.nn.Module) -> torch.Tensor:
    """``module``'s weight as (out, in): a transformers Conv1D (GPT-2) stores it transposed."""
    import torch

    return module.weight if isinstance(module, torch.nn.Linear) else module.weight.T


def _refusal(model: torch.nn.Module, name: str, sparsity: Sparsity, keep: set[int]) -> str | None:
    """Why layer ``name`` is not pruned at all, or None."""
    module = model.get_submodule(name)
    if module.weight.untyped_storage().data_ptr() in keep:
        return "the output head or the input embeddings (tied to the head): never pruned"
    width = _row_major(module).shape[1]
    if sparsity.m and width % sparsity.m:
        return f"its rows of {width} weights do not split into groups of {sparsity.m}"
    return None


def measure(base: LoadedModel, model: torch.nn.Module, method: str, sparsity: Sparsity,
            requested: list[str] | None = None) -> PrunedInfo:
    """What ``model`` (``base`` pruned) stores, from its weights alone (so a model read back from
    the cache measures the same): an asked-for layer is pruned when its share of zeros reaches
    what was asked (n:m: n zeros in each group of m); one refused, left dense or below it is skipped, with the reason."""
    requested = base.linear_layer_names if requested is None else list(requested)
    keep = protected(model)
    info = PrunedInfo(method, sparsity, {}, requested)
    for name in requested:
        weight = model.get_submodule(name).weight
        info.numel[name] = weight.numel()
        zeros = float((weight == 0).sum()) / weight.numel()
        why = _refusal(model, name, sparsity, keep)
        if why is None and zeros == 0:
            why = f"{method} left it dense"
        elif why is None and zeros < sparsity.fraction - 1e-9:
            why = f"measured sparsity {zeros:.4f}, below the asked {sparsity.fraction:g}"
        elif why is None and sparsity.m:  # n:m is a pattern (what sparse kernels store), not a share
            groups = (_row_major(model.get_submodule(name)) == 0).reshape(-1, sparsity.m).sum(-1)
            if (short := int((groups < sparsity.n).sum())):
                why = f"{short} of its {groups.numel()} groups of {sparsity.m} have fewer than {sparsity.n} zeros"
        if why is None:
            info.sparsity[name] = zeros
        else:
            info.skipped[name] = why
    info.total_bits, info.base_total_bits = pruned_bits(base, model, info)
    return info


def prune(base: LoadedModel, method: str, sparsity: Sparsity, calibration: list[str],
          layers: list[str] | None = None) -> tuple[torch.nn.Module, PrunedInfo]:
    """A pruned copy of ``base`` (its ``layers``, default every linear layer outside the head),
    each layer pruned in turn on its inputs from the calibration texts through the model pruned
    so far; and what was done (``measure``). The base is left as it was."""
    import torch

    if method not in METHODS:
        raise QuantizationError(f"Expected a pruning method in {sorted(METHODS)}, but got {method!r}")
    if not calibration:
        raise QuantizationError(f"{method} needs calibration texts, but got none")
    model = copy.deepcopy(base.model).eval()
    requested = base.linear_layer_names if layers is None else list(layers)
    batches = encode(base.tokenizer, calibration)
    keep = protected(model)
    remaining = [n for n in requested if _refusal(model, n, sparsity, keep) is None]
    while remaining:
        # the next layer the calibration batches reach, with those that read the same input
        # tensor (q, k, v; gate, up): pruning one cannot change the others' inputs
        for name, (xtx, tokens) in _input_grams(model, remaining, batches).items():
            weight = _row_major(model.get_submodule(name))
            with torch.no_grad():  # at the checkpoint's dtype, as total_bits counts the kept weights
                weight.copy_(METHODS[method](weight.detach(), xtx, tokens, sparsity).to(base.checkpoint_dtype))
            remaining.remove(name)
    return model, measure(base, model, method, sparsity, requested)


def _input_grams(model: torch.nn.Module, names: list[str], batches: list) -> dict[str, tuple[torch.Tensor, int]]:
    """``XᵀX`` over the real tokens of ``batches``, and their count, of the first of ``names``
    the forward pass reaches and of every other one that reads the very same input tensor; the
    pass stops at the first layer past them (what comes after is not needed)."""
    import torch

    device = next(model.parameters()).device
    grams: dict[str, list] = {}  # name -> [xtx, tokens]
    state: dict = {"mask": None, "input": None}

    def hook(name: str) -> Callable[[torch.nn.Module, tuple], None]:
        def record(_module: torch.nn.Module, args: tuple) -> None:
            if state["input"] is None:  # the first layer this batch reaches
                state["input"] = args[0]
            # another input, or (after the first batch, which decides them) a layer of none of them
            if args[0] is not state["input"] or (name not in grams and not state["first"]):
                raise InputsCollected
            x = args[0].detach().float()
            x = x[state["mask"]] if x.shape[:-1] == state["mask"].shape else x.reshape(-1, x.shape[-1])
            gram = grams.setdefault(name, [None, 0])
            gram[0] = x.T @ x if gram[0] is None else gram[0] + x.T @ x
            gram[1] += x.shape[0]

        return record

    handles = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            for i, batch in enumerate(batches):
                state.update(mask=batch.attention_mask.to(device).bool(), input=None, first=i == 0)
                try:
                    model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device))
                except InputsCollected:
                    pass
    finally:
        for handle in handles:
            handle.remove()
    if not grams:
        raise QuantizationError("the calibration texts never reached a layer to prune")
    return {n: (xtx, tokens) for n, (xtx, tokens) in grams.items()}


def weight_bits(weight: torch.Tensor, asked: Sparsity, dtype_bits: int) -> int:
    """Bits a pruned weight stores: unstructured, its non-zero values at ``dtype_bits`` and a
    1-bit map of every weight; n:m, (m - n) values of each group of m, each with a
    ceil(log2 m)-bit index (2:4: 2 values and two 2-bit indices per 4 weights, as sparse
    kernels store them, whatever else is zero)."""
    if asked.m:
        kept = weight.numel() * (asked.m - asked.n) // asked.m
        return kept * (dtype_bits + math.ceil(math.log2(asked.m)))
    return int((weight != 0).sum()) * dtype_bits + weight.numel()


def pruned_bits(base: LoadedModel, model: torch.nn.Module, info: PrunedInfo) -> tuple[float, float]:
    """Total bits of the pruned model and of its base: each pruned weight as ``weight_bits``
    says, every other tensor at the checkpoint's dtype; tied tensors once."""
    import torch

    assert base.checkpoint_dtype is not None
    dtype_bits = torch.finfo(base.checkpoint_dtype).bits
    total, dense = 0.0, 0.0
    for pname, p in model.named_parameters():  # a tied tensor is named once
        dense += p.numel() * dtype_bits
        module, _, leaf = pname.rpartition(".")
        pruned = leaf == "weight" and module in info.sparsity
        total += weight_bits(p, info.asked, dtype_bits) if pruned else p.numel() * dtype_bits
    return total, dense
