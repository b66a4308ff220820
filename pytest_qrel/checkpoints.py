"""What a --qrel-models entry is: a full-precision model (zoo name, local directory, hub id)
or a pre-quantized checkpoint (a directory, identified by its config's quantization_config, or
a GGUF file, by its tensor types) paired with the full-precision base it is compared with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import options
from .models import ZOO_MODELS, declared_base, resolve_model
from .quant import BACKENDS
from .quant.gguf import GGUFBackend, base_dir_mismatch, identify_gguf
from .quant.quanto import QUANTO_QMAP

__all__ = ["Checkpoint", "identify_checkpoint", "is_prequantized", "split_prequantized"]


@dataclass(frozen=True)
class Checkpoint:
    """A pre-quantized checkpoint of --qrel-models, paired with the base it is compared with."""

    base_name: str  # the base's model name (a test id's first part)
    base_source: str  # where the base loads from (zoo directory, local directory, hub id)
    path: str  # the checkpoint directory, as given
    method: str  # the backend that made it (read from its quantization_config)
    bits: int
    group_size: int | None


def identify_checkpoint(path: Path) -> tuple[str, int, int | None]:
    """(method, bits, group size) of a pre-quantized checkpoint directory, read from its
    config's ``quantization_config`` (or a backend's own format); ValueError if no backend
    here made it."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path / 'config.json'}: {exc}") from None
    qc = config.get("quantization_config") if isinstance(config, dict) else None
    for backend in BACKENDS.values():
        try:
            found = backend.read_checkpoint(path, qc if isinstance(qc, dict) else None)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: unreadable quantization_config for {backend.name} ({exc})") from None
        if found:
            return (backend.name, *found)
    method = (qc or {}).get("quant_method", "unknown")
    raise ValueError(
        f"{path} is quantized with quant_method {method!r}, which pytest-qrel does not load; "
        "it loads gptq and awq (gptqmodel), bitsandbytes (nf4, fp4, int8), optimum-quanto and compressed-tensors "
        "checkpoints"
    )


def is_prequantized(path: Path) -> bool:
    """Whether a local checkpoint directory holds quantized weights."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (isinstance(config, dict) and bool(config.get("quantization_config"))) or (path / QUANTO_QMAP).is_file()


def split_prequantized(
    resolved: list[tuple[str, str]], base_option: str | None
) -> tuple[tuple[tuple[str, str], ...], list[Checkpoint]]:
    """Separate pre-quantized checkpoints (loaded as they are, compared with their base) from
    the full-precision models that get the method x bits matrix."""
    base_option = base_option.strip() if isinstance(base_option, str) else None
    models, checkpoints = [], []
    for name, source in resolved:
        path = Path(source)
        gguf = path.is_file()  # a file is never a model directory: a GGUF file, or refused now
        if not (gguf or path.is_dir() and is_prequantized(path)):
            models.append((name, source))
            continue
        try:
            if gguf:
                contents, bits, group, declared = identify_gguf(path)
                method, declared = GGUFBackend.name, None if base_option else declared
            else:
                method, bits, group = identify_checkpoint(path)
                declared = None if base_option else declared_base(path)
        except ValueError as exc:
            raise pytest.UsageError(f"{options.MODELS}: {exc}") from None
        base = base_option or declared
        if not base:
            field = "general.base_model.0.name field" if gguf else "base_model field in its config.json"
            raise pytest.UsageError(
                f"{options.MODELS}: {source} is a pre-quantized checkpoint ({method}, {bits} bits); name the "
                f"full-precision model it is compared with by {options.BASE} or a {field}"
            )
        if declared and declared not in ZOO_MODELS:
            inside = Path(declared).is_absolute() and path.resolve() in (Path(declared), *Path(declared).parents)
            if inside or not Path(declared).is_absolute():
                # a checkpoint never supplies its own base, nor picks a folder by a hub id's name
                where = "lies inside the checkpoint itself" if inside else "is not a local directory"
                raise pytest.UsageError(
                    f"{options.MODELS}: {source} names base_model {declared!r}, which {where}; "
                    f"pass {options.BASE}=<the full-precision model> to compare with it"
                )
        base_name, base_source = resolve_model(base)
        if not base_option and not Path(base_source).is_dir():
            # a checkpoint's own metadata never makes the run fetch a model
            raise pytest.UsageError(
                f"{options.MODELS}: {source} names base_model {base!r}, which is not a local directory; "
                f"pass {options.BASE}={base} to compare with it"
            )
        if Path(base_source).is_dir() and is_prequantized(Path(base_source)):
            raise pytest.UsageError(
                f"{options.BASE}: the base of {source}, {base_source}, is itself quantized; name a full-precision model"
            )
        # a GGUF file of another model is refused now (a hub base is compared once it is loaded)
        problem = base_dir_mismatch(contents, Path(base_source)) if gguf and Path(base_source).is_dir() else None
        if problem:
            raise pytest.UsageError(f"{options.MODELS}: {source} is not a quantization of {base_source}: {problem}")
        checkpoints.append(Checkpoint(base_name, base_source, source, method, bits, group))
    sources: dict[str, str] = {}
    for name, source in [*models, *((c.base_name, c.base_source) for c in checkpoints)]:
        if sources.setdefault(name, source) != source:
            raise pytest.UsageError(
                f"{options.MODELS}: two models would share the test id {name!r} ({sources[name]} and {source}); "
                "rename one directory"
            )
    ckpt_ids = [(c.base_name, c.method, c.bits, Path(c.path).name) for c in checkpoints]
    for i, key in enumerate(ckpt_ids):
        if key in ckpt_ids[:i]:
            raise pytest.UsageError(
                f"{options.MODELS}: two checkpoints of {key[0]} ({key[1]}, {key[2]} bits) are both named {key[3]!r}; "
                "rename one directory"
            )
    return tuple(models), checkpoints
