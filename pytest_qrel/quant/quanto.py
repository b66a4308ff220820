"""optimum-quanto: int2 / int4 / int8 weights (``quanto``), float8 weights (``quanto-fp8``),
and the W8A8 formats of paper 001 (its SmoothQuant / FP8 rows): int8 weights with int8
activations (``quanto-a8``) and float8 weights with float8 activations (``quanto-fp8-a8``).

quanto picks its own weight groups: int2 and int4 use groups of 128 along a row (or the
largest multiple of 32 that divides a wider row), one scale per row for rows of 128 or
fewer weights; int8 and float8 keep one scale per row. The bits per weight are measured
from what each layer stores. Activation scales are calibrated (absmax with momentum) on
the shipped calibration text, with quanto's ``streamline`` off so that what is stored is
all that decides which activations are quantized: a model loaded from the cache then
computes exactly what the freshly quantized one did.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, ClassVar

from ..cache import installed_version
from ..engine import encode
from ..errors import QuantizationError
from .base import Backend, linearize
from .stored import read_safetensors

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from ..models import LoadedModel


QUANTO_QMAP = "quanto_qmap.json"  # what QuantizedModelForCausalLM.save_pretrained writes


class QuantoBackend(Backend):
    name = "quanto"
    bits: ClassVar[tuple[int, ...]] = (2, 4, 8)
    requires = ("optimum.quanto",)
    extra = "quanto"
    fixed_group_size = {2: 128, 4: 128, 8: None}
    # quanto's qtype name for the weights at each bit-width, and for the activations
    weight_qtypes: ClassVar[dict[int, str]] = {2: "qint2", 4: "qint4", 8: "qint8"}
    activation_qtype: ClassVar[str | None] = None
    symmetric = {2: False, 4: False, 8: True}  # int2/int4 store a shift per group, int8 only a scale

    def missing_packages(self) -> list[str]:
        import importlib.util

        return [] if importlib.util.find_spec("optimum") and importlib.util.find_spec("optimum.quanto") else ["optimum-quanto"]

    def version(self) -> str:
        return f"optimum-quanto={installed_version('optimum-quanto')}"

    def _quantize(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], calibration: list[str] | None
    ) -> torch.nn.Module:
        from optimum.quanto import Calibration, freeze, quantize

        model = linearize(copy.deepcopy(base.model), layers)  # quanto quantizes nn.Linear, not Conv1D
        quantize(model, weights=self.weight_qtypes[bits], activations=self.activation_qtype, include=list(layers))
        if self.activation_qtype is not None:
            import torch


            # no_grad, not inference_mode: the activation scales set here live on in the model
            with torch.no_grad(), Calibration(momentum=0.9, streamline=False):
                for batch in encode(base.tokenizer, list(calibration or [])):
                    model(input_ids=batch.input_ids.to(base.device), attention_mask=batch.attention_mask.to(base.device))
        freeze(model)
        return model.eval()

    def save_quantized(self, model: torch.nn.Module, layers: list[str], directory: Path) -> None:
        from optimum.quanto import quantization_map
        from safetensors.torch import save_file

        qmap = quantization_map(model)
        tensors = {
            f"{name}.{key}": value.detach().cpu().contiguous()
            for name in qmap
            for key, value in model.get_submodule(name).state_dict().items()
        }
        save_file(tensors, str(directory / "layers.safetensors"))
        (directory / "quantization_map.json").write_text(json.dumps(qmap, indent=1, sort_keys=True))

    def load_quantized(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], directory: Path
    ) -> torch.nn.Module:
        from safetensors.torch import load_file

        tensors = load_file(str(directory / "layers.safetensors"), device=str(base.device))
        qmap = json.loads((directory / "quantization_map.json").read_text())
        model = linearize(copy.deepcopy(base.model), list(qmap))
        # a cache entry stores only the quantized layers: the rest is the base's
        state = {k: v for k, v in model.state_dict().items() if k.rpartition(".")[0] not in qmap}
        return _requantize(model, {**state, **tensors}, qmap, base.device)

    def read_checkpoint(self, path: Path, quantization_config: dict | None) -> tuple[int, int | None] | None:
        """optimum-quanto's own format (``QuantizedModelForCausalLM.save_pretrained``):
        the model's safetensors and a ``quanto_qmap.json`` naming each layer's qtypes."""
        qmap_file = path / QUANTO_QMAP
        if not qmap_file.is_file():
            return None
        try:
            qtypes = {(q.get("weights"), q.get("activations", "none")) for q in json.loads(qmap_file.read_text()).values()}
        except (json.JSONDecodeError, AttributeError):
            return None
        for bits, weights in self.weight_qtypes.items():
            if qtypes == {(weights, self.activation_qtype or "none")}:
                return bits, self.fixed_group_size[bits]
        return None

    def load_checkpoint(self, path: Path, base: LoadedModel) -> torch.nn.Module:
        """As optimum-quanto's ``QuantizedModelForCausalLM.from_pretrained`` loads it: the model
        the checkpoint's own config describes (``tie_word_embeddings`` included, never the
        base's), every tensor from its files (the store then checks that none was ignored or
        overwritten), computing in the base's dtype."""
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        model = AutoModelForCausalLM.from_config(config, dtype=base.dtype, trust_remote_code=False).to(base.device)
        qmap = json.loads((path / QUANTO_QMAP).read_text())
        return _requantize(linearize(model, list(qmap)), read_safetensors(path, base.device), qmap, base.device)

    def layer_bits(self, module: torch.nn.Module) -> int | None:
        return int(module.weight_qtype.bits)

    def layer_group_size(self, module: torch.nn.Module, bits: int, requested: int | None) -> int | None:
        return module.weight_group_size

    def _is_quantized(self, module: torch.nn.Module) -> bool:
        from optimum.quanto.nn import QModuleMixin

        return isinstance(module, QModuleMixin)


def _requantize(model: torch.nn.Module, state: dict, qmap: dict, device: torch.device) -> torch.nn.Module:
    """``model`` (in place) with its layers named in ``qmap`` rebuilt from the quantized
    tensors in ``state``, which must hold them: a float weight never stands in for a quantized one."""
    from optimum.quanto import requantize

    # quanto loads non-strictly, and a layer it quantizes starts from the model's float
    # weight: without its stored codes and scales it would silently be quantized afresh
    def stored(name: str, part: str) -> bool:  # int8/float8 store weight._data, int2/int4 weight._data._data
        return any(k == f"{name}.weight.{part}" or k.startswith(f"{name}.weight.{part}.") for k in state)

    missing = [n for n in qmap if qmap[n].get("weights", "none") != "none"
               and not (stored(n, "_data") and stored(n, "_scale"))]
    if missing:
        raise QuantizationError(
            f"the stored quanto model lacks the quantized weights of {len(missing)} layers (first: {missing[0]})"
        )
    requantize(model, state, qmap, device=device)
    if getattr(model.config, "tie_word_embeddings", True):  # as quanto's from_pretrained: only where the config ties
        model.tie_weights()
    return model.eval()


class QuantoFloat8Backend(QuantoBackend):
    name = "quanto-fp8"
    bits = (8,)
    fixed_group_size = {8: None}
    weight_format = "float8"
    weight_qtypes = {8: "qfloat8_e4m3fn"}
    symmetric = {8: True}


class QuantoW8A8Backend(QuantoBackend):
    """int8 weights and int8 activations (static per-tensor scales)."""

    name = "quanto-a8"
    bits = (8,)
    fixed_group_size = {8: None}
    weight_qtypes = {8: "qint8"}
    activation_qtype = "qint8"
    activation_bits = 8
    needs_calibration = True


class QuantoFloat8W8A8Backend(QuantoW8A8Backend):
    """float8 (e4m3) weights and float8 activations."""

    name = "quanto-fp8-a8"
    weight_format = "float8"
    weight_qtypes = {8: "qfloat8_e4m3fn"}
    activation_qtype = "qfloat8_e4m3fn"
