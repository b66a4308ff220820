"""The backend protocol: what every quantization method declares and does."""

from __future__ import annotations

import copy
import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from .. import placement
from ..cache import installed_version
from ..errors import QuantizationError
from ..variants import QuantizedInfo, effective_bits, total_model_bits

if TYPE_CHECKING:
    import torch

    from ..models import LoadedModel


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
    # a scale per group and no zero point (paper 002 §3: z = 0 in b + (16 + z) / G), by bits
    symmetric: ClassVar[dict[int, bool]] = {}
    activation_bits: ClassVar[int | None] = None  # activations quantized too (W8A8), or None
    # bump when what this backend does changes without its library's version changing
    # (its fixed settings, how it calibrates): part of every cache key
    config_version: ClassVar[int] = 1
    # the run's settings (QrelConfig fields) its quantization reads: passed to ``_quantize`` as
    # keywords, and part of its variants' cache keys
    settings_fields: ClassVar[tuple[str, ...]] = ()
    # whether the mixed-precision search (quantize.py) may swap its single quantized layers into the base
    mixed_precision: ClassVar[bool] = True
    # False: it only loads pre-quantized checkpoints (compressed-tensors) or files (gguf): not a
    # --qrel-methods value, its bits not --qrel-bits
    quantizes: ClassVar[bool] = True

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
        from importlib.metadata import PackageNotFoundError

        names = self.requires or ("torch",)
        try:
            return ",".join(f"{n}={installed_version(n)}" for n in names)
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
        settings: dict[str, Any] | None = None,
    ) -> tuple[torch.nn.Module, QuantizedInfo]:
        """Quantize the linear ``layers`` of ``base`` (default: every linear layer outside the
        output head) and measure what was done; nothing quantized is an error. Backends that
        need calibration data take it as ``calibration`` texts, those with ``settings_fields``
        their values as ``settings``."""
        reason = self.unsupported_reason(bits)
        if reason:
            raise QuantizationError(reason)
        if self.needs_calibration and not calibration:
            raise QuantizationError(f"{self.name} needs calibration texts, but got none")
        layers = base.linear_layer_names if layers is None else list(layers)
        model = self._quantize(base, bits, group_size, layers, calibration, **(settings or {}))
        return model, self.measure(base, model, bits, group_size, requested=layers)

    def measure(
        self,
        base: LoadedModel,
        model: torch.nn.Module,
        bits: int,
        group_size: int | None,
        requested: list[str] | None = None,
    ) -> QuantizedInfo:
        """Count the quantized layers against the ``requested`` ones (default: every linear
        layer), say why each missing one stayed, and account bits: paper 002's effective
        bits from each layer's real group size, and what each layer really stores."""
        model.eval()
        layers = {name: mod for name, mod in model.named_modules() if self._is_quantized(mod)}
        if not layers:
            raise QuantizationError(
                f"{self.name} quantized no layer of {base.name} ({type(base.model).__name__}): "
                f"it has {len(base.linear_layer_names)} linear layers (torch.nn.Linear or Conv1D) outside the output head"
            )
        requested = base.linear_layer_names if requested is None else list(requested)
        asked_group = self.group_size_for(bits, group_size)
        numel = {name: base.model.get_submodule(name).weight.numel() for name in {*layers, *base.linear_layer_names}}
        storage = {name: storage_bytes(mod) * 8 / numel[name] for name, mod in layers.items()}
        effective, regrouped = {}, {}
        for name, mod in layers.items():
            width = in_features(base.model.get_submodule(name))
            group = self.layer_group_size(mod, bits, group_size)
            # paper 002 §3: b_eff = b + (s + z) / G, s = 16 scale bits, z = b when asymmetric;
            # one group per row is G = the row's width
            effective[name] = effective_bits(bits, group or width, symmetric=self.symmetric.get(bits, False))
            if group != asked_group and (group or width) != (asked_group or width):
                regrouped[name] = (
                    f"group size {group or 'one per row'} instead of {asked_group}: "
                    f"its rows of {width} weights do not split into groups of {asked_group}"
                )
        quantized_weights = sum(numel[n] for n in layers)
        dtype_bits = _dtype_bits(base.checkpoint_dtype)
        elements: list[tuple[int, float]] = []
        for pname, p in base.model.named_parameters():
            module, _, leaf = pname.rpartition(".")
            quantized = module in layers and leaf == "weight"
            elements.append((p.numel(), effective[module] if quantized else dtype_bits))
        asked_weights = sum(numel[n] for n in requested)
        return QuantizedInfo(
            quantized_layers=sorted(layers),
            requested_layers=list(requested),
            linear_layers=len(base.linear_layer_names),
            group_size=asked_group,
            effective_bits=sum(effective[n] * numel[n] for n in layers) / quantized_weights,
            storage_bits=sum(storage[n] * numel[n] for n in layers) / quantized_weights,
            params=base.params,
            total_bits=total_model_bits(elements),
            base_total_bits=total_model_bits((n, dtype_bits) for n, _ in elements),
            state_dict_bytes=storage_bytes(model, include_bias=True),
            quantized_fraction=quantized_weights / sum(numel[n] for n in base.linear_layer_names),
            coverage=sum(numel[n] for n in requested if n in layers) / asked_weights if asked_weights else 1.0,
            skipped={n: self.skip_reason(base, n, bits, group_size) for n in requested if n not in layers},
            regrouped=regrouped,
        )

    def layer_group_size(self, module: torch.nn.Module, bits: int, requested: int | None) -> int | None:
        """The group size quantized ``module`` really uses (None: one scale per row)."""
        return self.group_size_for(bits, requested)

    def layer_bits(self, module: torch.nn.Module) -> int | None:
        """The code width quantized ``module`` really stores, read from the module (None: this
        backend cannot tell)."""
        return None

    def skip_reason(self, base: LoadedModel, name: str, bits: int, group_size: int | None) -> str:
        """Why this backend left the asked-for layer ``name`` at full precision."""
        return f"{self.name} did not quantize it"

    # -- cache serialization: the quantized layers' state dicts, in safetensors ------------

    def save_quantized(self, model: torch.nn.Module, layers: list[str], directory: Path) -> None:
        save_layers(model, layers, directory)

    def load_quantized(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], directory: Path
    ) -> torch.nn.Module:
        from safetensors.torch import load_file

        state = load_file(str(directory / "layers.safetensors"), device=str(base.device))
        per_layer: dict[str, dict] = {name: {} for name in layers}
        for key, value in state.items():
            name, _, leaf = key.partition("::")
            per_layer[name][leaf] = value
        def rebuild(linear: torch.nn.Module, name: str) -> torch.nn.Module:
            layer = self._empty_layer(as_linear(linear), bits, group_size)
            layer.load_state_dict(per_layer[name])
            return layer

        return replace_layers(copy_sharing(base.model, layers), layers, rebuild)

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
        def make(layer: torch.nn.Module, _: str) -> torch.nn.Module:
            # a shell over the base's own tensors: hqq empties the layer it is given (del_orig),
            # which must not be the base's; a layer left as it is gets its copy after all
            quantized = self._quantize_layer(as_linear(_shell(layer)), bits, group_size)
            return quantized if quantized is not None else copy.deepcopy(layer)

        return replace_layers(copy_sharing(base.model, layers), layers, make)

    def _quantize_layer(self, linear: torch.nn.Linear, bits: int, group_size: int | None) -> torch.nn.Module | None:
        """The quantized replacement of one linear layer, or None to keep it as it is."""
        raise NotImplementedError(f"{self.name} overrides _quantize")

    def _empty_layer(self, linear: torch.nn.Linear, bits: int, group_size: int | None) -> torch.nn.Module:
        """An empty quantized layer shaped for ``linear``, to load its stored tensors into."""
        raise NotImplementedError(f"{self.name} does not rebuild single layers; it overrides load_quantized")

    @abstractmethod
    def _is_quantized(self, module: torch.nn.Module) -> bool: ...


def save_layers(model: torch.nn.Module, layers: list[str], directory: Path) -> None:
    """The state dicts of ``model``'s ``layers`` in ``directory``/layers.safetensors (a cache entry)."""
    from safetensors.torch import save_file

    tensors = {
        f"{name}::{key}": value.detach().cpu().contiguous()
        for name in layers
        for key, value in model.get_submodule(name).state_dict().items()
    }
    save_file(tensors, str(directory / "layers.safetensors"))


def copy_sharing(model: torch.nn.Module, names: list[str]) -> torch.nn.Module:
    """A deep copy of ``model`` whose submodules ``names`` are the original modules, shared, not
    copied: for a copy in which every one of them is replaced at once (by a module that only
    reads its shape, dtype and bias), the weights it would copy only to drop them are most of
    a model (973M of Llama-3.2-1B's 1.24B parameters)."""
    memo: dict[int, Any] = {id(module): module for module in (model.get_submodule(n) for n in names)}
    return copy.deepcopy(model, memo)


def _shell(module: torch.nn.Module) -> torch.nn.Module:
    """A shallow copy of ``module`` with its own parameter, buffer and submodule tables: the same
    tensors, but setting one of its attributes (to None, as hqq does) leaves ``module`` whole."""
    shell = copy.copy(module)
    shell._parameters = dict(module._parameters)
    shell._buffers = dict(module._buffers)
    shell._modules = dict(module._modules)
    return shell


def replace_layers(
    model: torch.nn.Module, names: list[str], make: Callable[[torch.nn.Module, str], torch.nn.Module | None]
) -> torch.nn.Module:
    """Replace each named submodule of ``model`` (in place) by ``make(module, name)``, unless None."""
    for name in names:
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        layer = getattr(parent, leaf)
        if any(t.device.type == "meta" for t in layer.parameters()):  # offloaded (placement.py): one layer read back
            layer = placement.read_back(copy.deepcopy(layer), model, name, placement.execution_device(layer))
        layer = make(layer, name)
        if layer is not None:
            setattr(parent, leaf, layer)
    return model


def as_linear(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` as a ``torch.nn.Linear``: a transformers ``Conv1D`` (GPT-2's projections,
    ``y = x W + b`` with W stored (in, out)) becomes the Linear computing the same thing
    with the weight transposed; any other module is returned as it is."""
    import torch

    if not _is_conv1d(module):
        return module
    linear = torch.nn.Linear(module.nx, module.nf, bias=module.bias is not None,
                             device=module.weight.device, dtype=module.weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(module.weight.T)
        if module.bias is not None:
            linear.bias.copy_(module.bias)
    return linear


def in_features(module: torch.nn.Module) -> int:
    """The input width of a Linear or Conv1D layer (the length of one weight row)."""
    return module.nx if _is_conv1d(module) else module.in_features


def _is_conv1d(module: torch.nn.Module) -> bool:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(module, Conv1D)


def linearize(model: torch.nn.Module, names: list[str]) -> torch.nn.Module:
    """Replace (in place) the Conv1D layers among ``names`` by equivalent Linears."""
    return replace_layers(model, names, lambda module, _: as_linear(module) if _is_conv1d(module) else None)


def fitting_group(size: int, requested: int | None) -> int | None:
    """The group size to quantize ``size`` consecutive weights (a row, or a whole weight)
    with: ``requested`` when it divides them, else the largest power of two below it that
    does (at least 8), else None (one group per row). A layer narrower than its group is
    then quantized with smaller groups rather than left at full precision."""
    if requested is None or size % requested == 0:
        return requested
    group = requested
    while group > 8 and size % group:
        group //= 2
    return group if size % group == 0 else None


def _dtype_bits(dtype: torch.dtype) -> int:
    import torch

    return torch.finfo(dtype).bits if dtype.is_floating_point else torch.iinfo(dtype).bits


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
