"""compressed-tensors checkpoints (what llm-compressor writes and vLLM serves): loaded through
transformers with the compressed-tensors package, their scheme read from ``quantization_config``.

Loading only: these backends do not quantize (``quantizes = False``); a checkpoint directory
given to ``--qrel-models`` is their input. One backend per kind of scheme, so that a variant's
method says what it computes: ``ct`` (int weights, symmetric: W4A16, W8A16, ...), ``ct-a8``
(int weights and int8 activations: W8A8),
``ct-fp8`` (float8 weights) and ``ct-fp8-a8`` (float8 weights and activations: FP8_DYNAMIC).
Bits and group size come from the config's weights (strategy ``group``: its group size;
``channel``: a scale per row).

On a CPU the model runs as transformers loads it by default: the stored codes are loaded into
the compressed layout compressed-tensors gives each quantized ``Linear`` (that is what the
stored-tensor check compares), and compressed-tensors decompresses them to dense weights on
the first forward pass (its decompression hook; its quantized kernels are vLLM's, on a GPU).
Activations stay quantized after that: compressed-tensors' forward quantizes and dequantizes
each quantized layer's input at every call, as its scheme says (W8A8: int8, a scale per token,
computed at the call), before a float matmul: int8 activations in value, not an int8 kernel.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, ClassVar

from ..cache import installed_version
from ..errors import QuantizationError
from .base import Backend

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from ..models import LoadedModel

QUANT_METHOD = "compressed-tensors"  # quantization_config.quant_method of these checkpoints
WEIGHT_FIELDS = ("num_bits", "type", "strategy", "group_size", "symmetric", "block_structure")
ACTIVATION_FIELDS = ("num_bits", "type", "strategy", "group_size", "symmetric", "dynamic")


def read_scheme(quantization_config: dict) -> tuple[str, int, int | None]:
    """(method, bits, group size) of a compressed-tensors ``quantization_config``; ValueError
    naming what pytest-qrel does not measure (a scheme it cannot account bits for, or parts
    that change the model beyond its linear layers' weights and inputs)."""
    groups = quantization_config.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise ValueError("its config_groups name no quantization scheme")
    for key, what in [("kv_cache_scheme", "a quantized KV cache"), ("transform_config", "transforms (rotations)"),
                      ("sparsity_config", "sparsity")]:
        if quantization_config.get(key):
            raise ValueError(f"it has {what} ({key}), which pytest-qrel does not load")
    schemes = {}
    for name, group in groups.items():
        if not isinstance(group, dict) or not isinstance(group.get("weights"), dict):
            raise ValueError(f"its config group {name!r} quantizes no weights")
        if group.get("output_activations"):
            raise ValueError(f"its config group {name!r} quantizes output activations, which pytest-qrel does not load")
        acts = group.get("input_activations")
        schemes[name] = (tuple(group["weights"].get(f) for f in WEIGHT_FIELDS),
                         tuple(acts.get(f) for f in ACTIVATION_FIELDS) if isinstance(acts, dict) else None)
    if len(set(schemes.values())) > 1:
        # one variant has one method and one bit-width
        raise ValueError(f"its config groups {', '.join(sorted(schemes))} use different schemes; one variant has one")
    (weights, acts), = set(schemes.values())
    bits, kind, strategy, group_size, symmetric, _ = weights
    if strategy not in ("group", "channel"):
        raise ValueError(f"its weights have strategy {strategy!r}; pytest-qrel accounts bits for 'group' and "
                         "'channel' (a scale per group or per row)")
    group = int(group_size) if strategy == "group" else None
    if not symmetric:
        # compressed-tensors packs the zero points, transformers builds the layers for unpacked
        # ones and refuses the stored shape (llm-compressor issue #1618): nothing to measure
        raise ValueError("its weights are asymmetric (zero points), which transformers cannot load from "
                         "compressed-tensors' packed format; pytest-qrel loads symmetric schemes")
    if kind == "float" and bits == 8:
        method = "ct-fp8"
    elif kind == "int" and bits in CompressedTensorsBackend.bits:
        method = "ct"
    else:
        raise ValueError(f"its weights are {bits}-bit {kind}; pytest-qrel loads int 2, 3, 4, 8 and float 8")
    if acts is not None:
        a_bits, a_kind = acts[0], acts[1]
        if (a_bits, a_kind) != (8, kind):
            raise ValueError(f"its activations are {a_bits}-bit {a_kind} with {kind} weights; pytest-qrel loads "
                             "int8 activations with int weights (W8A8) and float8 with float8 (FP8)")
        method += "-a8"
    return method, int(bits), group


class CompressedTensorsBackend(Backend):
    """Symmetric int weights, activations at full precision (W4A16, W8A16)."""

    name = "ct"
    bits: ClassVar[tuple[int, ...]] = (2, 3, 4, 8)
    requires = ("compressed_tensors",)
    extra = "compressed-tensors"
    quantizes = False
    symmetric = {b: True for b in bits}

    def missing_packages(self) -> list[str]:
        import importlib.util

        return [] if importlib.util.find_spec("compressed_tensors") else ["compressed-tensors"]

    def version(self) -> str:
        return f"compressed-tensors={installed_version('compressed-tensors')}"

    def read_checkpoint(self, path: Path, quantization_config: dict | None) -> tuple[int, int | None] | None:
        qc = quantization_config or {}
        if qc.get("quant_method") != QUANT_METHOD:
            return None
        method, bits, group = read_scheme(qc)
        return (bits, group) if method == self.name else None

    def load_checkpoint(self, path: Path, base: LoadedModel) -> torch.nn.Module:
        """As transformers loads it by default: compressed layers, decompressed on the first
        forward pass; the model its own config describes, computing in the base's dtype."""
        import torch
        from transformers import AutoModelForCausalLM

        if self.missing_packages():
            raise QuantizationError(f"{path} is a compressed-tensors checkpoint: pip install 'pytest-qrel[{self.extra}]'")
        model = AutoModelForCausalLM.from_pretrained(
            str(path), device_map={"": base.device}, dtype=base.dtype, **base.load_kwargs
        )
        head = model.get_output_embeddings()
        for name, module in model.named_modules():
            if getattr(module, "quantization_scheme", None) is None:
                continue
            # the bit accounting covers the linear layers outside the head, as for every backend
            if module is head or not isinstance(module, torch.nn.Linear):
                what = "its output head" if module is head else f"a {type(module).__name__}"
                raise QuantizationError(f"{path} quantizes {name} ({what}); pytest-qrel measures checkpoints that "
                                        "quantize the linear layers outside the output head")
            # floats where codes belong (format dense): compressed-tensors computes with them as they
            # are, the full-precision model under its config's bits (a KL of 0 at "4 bits", measured)
            weight = getattr(module, "weight", None)
            if (module.quantization_scheme.weights is not None and weight is not None
                    and weight.dtype.is_floating_point and weight.dtype.itemsize > 1):
                fmt = json.loads((path / "config.json").read_text())["quantization_config"].get("format")
                raise QuantizationError(
                    f"--qrel-models: {path} stores {name}'s weights as {weight.dtype} values, not as the "
                    f"{module.quantization_scheme.weights.num_bits}-bit codes its quantization_config declares "
                    f"(its format is {fmt!r}); pytest-qrel loads checkpoints that store their codes")
        return model.eval()

    def layer_bits(self, module: torch.nn.Module) -> int | None:
        """The code width of the int8 codes a layer stores (int-quantized format), from their
        range; packed codes are shaped by the declared width (transformers refuses a stored
        tensor of another shape); float8 codes are 8 bits; a decompressed layer says its scheme's."""
        import torch

        weight = getattr(module, "weight", None)
        if weight is not None and weight.dtype == torch.int8:
            low, high = int(weight.min()), int(weight.max())
            return next(b for b in range(1, 9) if -(2 ** (b - 1)) <= low and high < 2 ** (b - 1))
        if weight is not None and weight.dtype == torch.float8_e4m3fn:
            return 8
        return int(module.quantization_scheme.weights.num_bits)

    def layer_group_size(self, module: torch.nn.Module, bits: int, requested: int | None) -> int | None:
        """From the scales it loaded: one column per group (a single column, a scale per row)."""
        columns = module.weight_scale.shape[-1] if module.weight_scale.dim() > 1 else 1
        return None if columns == 1 else int(module.in_features) // int(columns)

    def skip_reason(self, base: LoadedModel, name: str, bits: int, group_size: int | None) -> str:
        return "the checkpoint stores it at full precision (its config's ignore list, or no target matches it)"

    def _quantize(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], calibration: list[str] | None
    ) -> torch.nn.Module:
        raise QuantizationError(f"{self.name} loads compressed-tensors checkpoints; it does not quantize")

    def _is_quantized(self, module: torch.nn.Module) -> bool:
        scheme = getattr(module, "quantization_scheme", None)
        return scheme is not None and scheme.weights is not None


class CompressedTensorsW8A8Backend(CompressedTensorsBackend):
    """Symmetric int weights and int8 activations (W8A8; W4A8)."""

    name = "ct-a8"
    activation_bits = 8


class CompressedTensorsFP8Backend(CompressedTensorsBackend):
    """float8 (e4m3) weights, activations at full precision (FP8 weight-only)."""

    name = "ct-fp8"
    bits = (8,)
    weight_format = "float8"
    symmetric = {8: True}


class CompressedTensorsFP8A8Backend(CompressedTensorsFP8Backend):
    """float8 weights and float8 activations (FP8_DYNAMIC)."""

    name = "ct-fp8-a8"
    activation_bits = 8


CT_BACKENDS = (CompressedTensorsBackend, CompressedTensorsW8A8Backend,
               CompressedTensorsFP8Backend, CompressedTensorsFP8A8Backend)
