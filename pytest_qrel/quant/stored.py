"""What a checkpoint stores: its safetensors files as its library reads them, and whether a
loaded model is what they hold (no stored tensor ignored or overwritten)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import QuantizationError

if TYPE_CHECKING:
    import torch


def weight_files(directory: Path | str) -> list[Path]:
    """The safetensors files a checkpoint's library reads, as transformers, gptqmodel and
    quanto's ``from_pretrained`` do: ``model.safetensors``, or the shards its index names."""
    directory, index = Path(directory), Path(directory) / "model.safetensors.index.json"
    if not index.is_file():
        if (directory / "model.safetensors").is_file():
            return [directory / "model.safetensors"]
        raise QuantizationError(f"{directory} has no model.safetensors and no {index.name}: its library loads nothing")
    try:
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if not all(Path(name).name == name for name in names):
            raise ValueError("a shard outside its directory")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise QuantizationError(f"{index} is not a weight_map of shards beside it ({exc})") from None
    return [directory / name for name in names]


def read_safetensors(directory: Path | str, device: torch.device | str) -> dict[str, torch.Tensor]:
    """Every tensor of the safetensors files a checkpoint's library reads (``weight_files``)."""
    from safetensors.torch import load_file

    tensors: dict = {}
    for shard in weight_files(directory):
        tensors.update(load_file(str(shard), device=str(device)))
    return tensors


def stored_tensor_problem(model: torch.nn.Module, directory: Path | str) -> str | None:
    """Why the model loaded from a checkpoint ``directory`` does not compute with exactly the
    tensors the directory stores, or None: a stored tensor the model has no place for (the
    load ignored it), a stored floating-point tensor whose loaded value differs (the load
    overwrote it, e.g. a head tied to the input embeddings by the config), or a tensor of the
    model that is neither stored nor tied to a stored one (left at its initial value).
    Quantized codes (integer, float8) are checked by name only: libraries repack them on load."""
    import torch
    from safetensors import safe_open

    floats = {torch.float16, torch.bfloat16, torch.float32, torch.float64}
    state = {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    # tied tensors are one storage under several names
    names_of: dict[tuple[int, int], list[str]] = {}
    for key, value in state.items():
        if value.numel():
            names_of.setdefault((value.untyped_storage().data_ptr(), value.storage_offset()), []).append(key)

    def tied(key: str) -> list[str]:
        value = state[key]
        ident = (value.untyped_storage().data_ptr(), value.storage_offset())
        return [k for k in names_of.get(ident, []) if k != key] if value.numel() else []

    read = weight_files(directory)
    # only the files its library reads are measured: another may be what was tested elsewhere
    stray = sorted(p.name for p in Path(directory).glob("*.safetensors") if p not in read)
    if stray:
        return f"it has {stray[0]}, a weights file its library does not read (only {', '.join(p.name for p in read)})"
    stored: set[str] = set()
    for shard in read:
        with safe_open(str(shard), "pt", device="cpu") as f:
            for key in f.keys():
                stored.add(key)
                if key not in state:
                    return f"it stores {key}, which the model its config describes has no place for (loading ignores it)"
                loaded = state[key]
                if loaded.dtype not in floats:
                    continue
                value = f.get_tensor(key)
                if value.shape != loaded.shape or not torch.equal(value.to(loaded.device, loaded.dtype), loaded):
                    why = f", tied to {tied(key)[0]} by its config" if tied(key) else ""
                    return f"its stored {key} is not what the loaded model computes with (loading overwrites it{why})"
    for key in state:
        if key not in stored and not any(k in stored for k in tied(key)):
            return f"it does not store {key}, which the model its config describes has (loading leaves it unset)"
    return None
