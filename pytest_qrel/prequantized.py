"""A pre-quantized checkpoint (a directory or a GGUF file) loaded as its variant, checked
against its base and against what it declares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from . import options
from .errors import ModelLoadError, QuantizationError, one_line
from .models import check_checkpoint, checkpoint_tokenizer, tokenizer_difference
from .quant import backend_for, get_backend, gguf
from .quant.base import in_features
from .quant.stored import stored_tensor_problem

if TYPE_CHECKING:
    import torch

    from .models import LoadedModel
    from .variants import QuantizedInfo, Variant


def layer_mismatch(
    variant: Variant, model: torch.nn.Module, layers: list[str], groups: Mapping[str, int | None], said: str
) -> str | None:
    """Why the quantized ``layers`` of ``model`` are not ``variant``'s, or None: each layer's
    code width, as the backend reads it from the loaded module, must be the variant's bits,
    and its group size the one in ``groups`` (where named; ``said`` tells where it comes from;
    None, one group per row, is a group of the row's width)."""
    backend = backend_for(variant)
    for name in layers:
        module = model.get_submodule(name)
        bits = backend.layer_bits(module)
        if bits is not None and bits != variant.bits:
            return f"its layer {name} stores {bits}-bit codes, but {variant.id} is {variant.bits}-bit"
        group = backend.layer_group_size(module, variant.bits, variant.group_size)
        expected = groups.get(name, group)
        width = getattr(module, "in_features", None)  # one group per row: a group of the row's width
        if group != expected and (group or width) != (expected or width):
            return f"its layer {name} has group size {group}, but {groups[name]} {said}"
    return None


def load_checkpoint(variant: Variant, base: LoadedModel, allow_pickle: bool) -> tuple[torch.nn.Module, QuantizedInfo]:
    """``variant``'s checkpoint loaded as it is stored, and what it measures; QuantizationError
    naming --qrel-models when it is not a quantization of ``base``, does not tokenize as it,
    does not load as stored, or is not what its config.json declares."""
    backend = get_backend(variant.method)
    path = Path(str(variant.checkpoint))
    if isinstance(backend, gguf.GGUFBackend):
        return load_gguf(variant, base)
    try:
        check_checkpoint(str(path), allow_pickle)
    except ModelLoadError as exc:
        raise QuantizationError(str(exc)) from None
    keys = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size")
    ours, theirs = json.loads((path / "config.json").read_text()), base.model.config.to_dict()
    differ = [f"{k} {ours.get(k)} != {theirs.get(k)}" for k in keys if ours.get(k) != theirs.get(k)]
    if differ:
        raise QuantizationError(
            f"{options.MODELS}: {path} is not a quantization of {base.source} ({', '.join(differ)})"
        )
    try:
        # the tokenizer it ships is the one it is deployed with: it must be the base's
        tokenizer = checkpoint_tokenizer(path)
    except ModelLoadError as exc:
        raise QuantizationError(str(exc)) from None
    difference = tokenizer_difference(tokenizer, base.tokenizer) if tokenizer is not None else None
    if difference:
        raise QuantizationError(f"{options.MODELS}: {path} does not tokenize as its base {base.source}: {difference}")
    try:
        model = backend.load_checkpoint(path, base)
    except QuantizationError:
        raise
    except Exception as exc:  # a damaged or foreign checkpoint: the user's input, not a bug of ours
        raise QuantizationError(
            f"{options.MODELS}: cannot load {path} as a {variant.method} quantization of {base.source}: "
            f"{one_line(exc)}"
        ) from exc
    # what is measured must be what is stored: no stored tensor ignored or overwritten by the load
    problem = stored_tensor_problem(model, path)
    if problem:
        raise QuantizationError(f"{options.MODELS}: {path} does not load as it is stored: {problem}")
    # the bits and group size it declares label the variant and pick its thresholds: every
    # quantized layer, as loaded, must have them (a library builds layers from other files);
    # a declared group that does not split a layer's rows is the backend's to change (measure says so)
    info = backend.measure(base, model, variant.bits, variant.group_size)
    layers = info.quantized_layers
    declared = {n: variant.group_size for n in layers
                if variant.group_size and not in_features(base.model.get_submodule(n)) % variant.group_size}
    problem = layer_mismatch(variant, model, layers, declared, f"is declared in {path / 'config.json'}")
    if problem:
        raise QuantizationError(f"{options.MODELS}: {path} is not what it declares: {problem}")
    return model, info


def load_gguf(variant: Variant, base: LoadedModel) -> tuple[torch.nn.Module, QuantizedInfo]:
    """``variant``'s GGUF file loaded through transformers (dequantized), and what it stores;
    QuantizationError naming --qrel-models when it is not a quantization of ``base`` (its
    architecture, sizes, tensors) or its embedded tokenizer is not the base's."""
    path = Path(str(variant.checkpoint))
    try:
        contents = gguf.read_gguf(path)
    except (OSError, ValueError) as exc:
        raise QuantizationError(f"{options.MODELS}: {exc}") from None
    shapes = {name: tuple(t.shape) for name, t in base.model.state_dict().items()}
    problem = gguf.base_mismatch(contents, base.model.config.to_dict(), shapes)
    if problem:
        raise QuantizationError(f"{options.MODELS}: {path} is not a quantization of {base.source}: {problem}")
    # llama.cpp tokenizes with the tokenizer the file embeds: it must be the base's, which is used
    difference = gguf.tokenizer_difference(contents, base.tokenizer)
    if difference:
        raise QuantizationError(f"{options.MODELS}: {path} does not tokenize as its base {base.source}: {difference}")
    try:
        model = get_backend(variant.method).load_checkpoint(path, base)
    except QuantizationError:
        raise
    except Exception as exc:  # a damaged file: the user's input, not a bug of ours
        raise QuantizationError(f"{options.MODELS}: cannot load {path} through transformers: {one_line(exc)}") from exc
    return model, gguf.measure_gguf(contents, base)
