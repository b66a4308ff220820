"""The backend protocol: what every quantization method declares and does."""

from __future__ import annotations

import copy
import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar

from ..variants import QuantizedInfo, total_model_bits

if TYPE_CHECKING:
    import torch

    from ..models import LoadedModel


class QuantizationError(RuntimeError):
    """A backend could not produce the variant asked for (the message says why)."""


class Backend(ABC):
    """A quantization method.

    Subclasses declare their name, the bit-widths they support, the packages they need
    (and the pytest-qrel extra that installs them), and implement ``_quantize`` (return
    a quantized copy of the base model) and ``_is_quantized`` (recognise its layers).
    Bits per weight are measured, not assumed: the bytes a quantized layer really stores
    (packed codes, scales and zero points in the dtype the backend keeps them in).
    """

    name: ClassVar[str]
    bits: ClassVar[tuple[int, ...]]
    requires: ClassVar[tuple[str, ...]]
    extra: ClassVar[str]
    needs_calibration: ClassVar[bool] = False
    fixed_group_size: ClassVar[dict[int, int | None]] = {}  # bits -> the group size it always uses
    weight_format: ClassVar[str] = "int"  # how weights are stored: int, nf4, fp4, float8
    activation_bits: ClassVar[int | None] = None  # activations quantized too (W8A8), or None
    # bump when what this backend does changes without its library's version changing
    # (its fixed settings, how it calibrates): part of every cache key
    config_version: ClassVar[int] = 1

    def missing_packages(self) -> list[str]:
        return [pkg for pkg in self.requires if importlib.util.find_spec(pkg) is None]

    def group_size_for(self, bits: int, requested: int | None) -> int | None:
        """The group size this backend really uses at ``bits`` (some fix their own)."""
        return self.fixed_group_size.get(bits, requested)

    def unsupported_reason(self, bits: int) -> str | None:
        """Why this backend cannot produce a ``bits``-bit variant here, or None."""
        if bits not in self.bits:
            supported = ", ".join(map(str, self.bits))
            return f"{self.name} does not support {bits}-bit weights (supported: {supported})"
        missing = self.missing_packages()
        if missing:
            return f"{self.name} needs {', '.join(missing)}: install pytest-qrel[{self.extra}]"
        return None

    def version(self) -> str:
        """The installed version of the backend's library: part of every cache key."""
        from importlib.metadata import PackageNotFoundError, version

        names = self.requires or ("torch",)
        try:
            return ",".join(f"{n}={version(n)}" for n in names)
        except PackageNotFoundError:
            return "unknown"

    def describe(self) -> dict:
        """What the registry says of this backend: its methods table in the README comes from here."""
        return {
            "method": self.name,
            "bits": list(self.bits),
            "group_size": {b: self.fixed_group_size[b] for b in self.bits if b in self.fixed_group_size} or "any",
            "weight_format": self.weight_format,
            "activation_bits": self.activation_bits,
            "needs_calibration": self.needs_calibration,
            "requires": list(self.requires),
            "extra": self.extra,
            "available": not self.missing_packages(),
        }

    def quantize(
        self,
        base: LoadedModel,
        bits: int,
        group_size: int | None,
        layers: list[str] | None = None,
        calibration: list[str] | None = None,
    ) -> tuple[torch.nn.Module, QuantizedInfo]:
        """Quantize the linear ``layers`` of ``base`` (default: every linear layer outside the
        output head) and measure what was done; nothing quantized is an error. Backends that
        need calibration data take it as ``calibration`` texts."""
        reason = self.unsupported_reason(bits)
        if reason:
            raise QuantizationError(reason)
        if self.needs_calibration and not calibration:
            raise QuantizationError(f"{self.name} needs calibration texts, but got none")
        layers = base.linear_layer_names if layers is None else list(layers)
        model = self._quantize(base, bits, group_size, layers, calibration)
        return model, self.measure(base, model, bits, group_size)

    def measure(self, base: LoadedModel, model: torch.nn.Module, bits: int, group_size: int | None) -> QuantizedInfo:
        """Count the quantized layers and account bits from what they really store."""
        model.eval()
        layers = {name: mod for name, mod in model.named_modules() if self._is_quantized(mod)}
        if not layers:
            raise QuantizationError(
                f"{self.name} quantized no layer of {base.name} ({type(base.model).__name__}): "
                f"it has {len(base.linear_layer_names)} torch.nn.Linear layers outside the output head"
            )
        layer_bits = {
            name: storage_bytes(mod) * 8 / base.model.get_submodule(name).weight.numel() for name, mod in layers.items()
        }
        n_quant_weights = 0
        quant_bits = 0.0
        elements: list[tuple[int, float]] = []
        for pname, p in base.model.named_parameters():
            module, _, leaf = pname.rpartition(".")
            if module in layer_bits and leaf == "weight":
                elements.append((p.numel(), layer_bits[module]))
                n_quant_weights += p.numel()
                quant_bits += p.numel() * layer_bits[module]
            else:
                elements.append((p.numel(), p.element_size() * 8))
        return QuantizedInfo(
            quantized_layers=sorted(layers),
            linear_layers=len(base.linear_layer_names),
            group_size=self.group_size_for(bits, group_size),
            effective_bits=quant_bits / n_quant_weights,
            params=base.params,
            total_bits=total_model_bits(elements),
            state_dict_bytes=storage_bytes(model, include_bias=True),
            quantized_fraction=n_quant_weights
            / sum(base.model.get_submodule(n).weight.numel() for n in base.linear_layer_names),
        )

    # -- cache serialization: the quantized layers' state dicts, in safetensors ------------

    def save_quantized(self, model: torch.nn.Module, layers: list[str], directory: Path) -> None:
        from safetensors.torch import save_file

        tensors = {
            f"{name}::{key}": value.detach().cpu().contiguous()
            for name in layers
            for key, value in model.get_submodule(name).state_dict().items()
        }
        save_file(tensors, str(directory / "layers.safetensors"))

    def load_quantized(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], directory: Path
    ) -> torch.nn.Module:
        from safetensors.torch import load_file

        state = load_file(str(directory / "layers.safetensors"), device=str(base.device))
        per_layer: dict[str, dict] = {name: {} for name in layers}
        for key, value in state.items():
            name, _, leaf = key.partition("::")
            per_layer[name][leaf] = value
        def rebuild(linear: torch.nn.Linear, name: str) -> torch.nn.Module:
            layer = self._empty_layer(linear, bits, group_size)
            layer.load_state_dict(per_layer[name])
            return layer

        return replace_layers(copy.deepcopy(base.model), layers, rebuild)

    # -- pre-quantized checkpoints --------------------------------------------------------

    def read_checkpoint(self, path: Path, quantization_config: dict | None) -> tuple[int, int | None] | None:
        """(bits, group size) if ``path`` is a checkpoint this backend made (its config's
        ``quantization_config``, or a file of the backend's own format), else None."""
        return None

    def load_checkpoint(self, path: Path, base: LoadedModel) -> torch.nn.Module:
        """The pre-quantized model stored at ``path``, computing like ``base``."""
        raise QuantizationError(f"{self.name} does not load pre-quantized checkpoints")

    # -- layer-replacing backends implement these two; others override _quantize and the
    #    cache serialization as a whole --------------------------------------------------------

    def _quantize(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], calibration: list[str] | None
    ) -> torch.nn.Module:
        return replace_layers(
            copy.deepcopy(base.model), layers, lambda linear, _: self._quantize_layer(linear, bits, group_size)
        )

    def _quantize_layer(self, linear: torch.nn.Linear, bits: int, group_size: int | None) -> torch.nn.Module | None:
        """The quantized replacement of one linear layer, or None to keep it as it is."""
        raise NotImplementedError(f"{self.name} overrides _quantize")

    def _empty_layer(self, linear: torch.nn.Linear, bits: int, group_size: int | None) -> torch.nn.Module:
        raise NotImplementedError(f"{self.name} does not rebuild single layers; it overrides load_quantized")

    @abstractmethod
    def _is_quantized(self, module: torch.nn.Module) -> bool: ...


def replace_layers(
    model: torch.nn.Module, names: list[str], make: Callable[[torch.nn.Module, str], torch.nn.Module | None]
) -> torch.nn.Module:
    """Replace each named submodule of ``model`` (in place) by ``make(module, name)``, unless None."""
    for name in names:
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        layer = make(getattr(parent, leaf), name)
        if layer is not None:
            setattr(parent, leaf, layer)
    return model


def read_safetensors(directory: Path | str, device: torch.device | str) -> dict[str, torch.Tensor]:
    """Every tensor of the ``*.safetensors`` files in ``directory`` (one file or shards)."""
    from safetensors.torch import load_file

    tensors: dict = {}
    for shard in sorted(Path(directory).glob("*.safetensors")):
        tensors.update(load_file(str(shard), device=str(device)))
    return tensors


def storage_bytes(module: torch.nn.Module, include_bias: bool = False) -> int:
    """Bytes of the tensors in ``module``'s state dict, each storage counted once (tied
    embeddings share one); biases are left out unless asked for, as they stay unquantized."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for key, t in module.state_dict().items():
        if not hasattr(t, "element_size") or (key.endswith("bias") and not include_bias):
            continue
        ident = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.numel() else (id(t), 0)
        if ident in seen:
            continue
        seen.add(ident)
        total += t.numel() * t.element_size()
    return total
