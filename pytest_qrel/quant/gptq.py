"""GPTQ through gptqmodel (the maintained successor of auto-gptq, which does not import
under transformers 5), at 2, 3, 4 and 8 bits, calibrated on shipped text.

The configuration is paper 003's (App. A, 4-bit GPTQ): symmetric, ``damp_percent=0.01``,
``desc_act=False``, group size from ``--qrel-group-size`` (paper 002 varies it, 128 in
paper 003); the calibration set and its size come from ``--qrel-calibration-samples``.

gptqmodel quantizes a checkpoint directory, not a module in memory: the base checkpoint
is quantized, saved in gptqmodel's safetensors format to a temporary directory and loaded
back with the base's dtype, so the model evaluated is exactly what the cache stores.
Its kernels split every weight row into whole groups: a layer whose ``in_features`` the
group size does not divide is quantized with one group per row (group size -1), which
the measured bits per weight then show.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Iterator

from ..errors import QuantizationError
from .base import Backend, in_features
from .stored import read_safetensors

if TYPE_CHECKING:
    import torch

    from ..models import LoadedModel

DAMP_PERCENT = 0.01
CALIBRATION_BATCH = 8


class GPTQBackend(Backend):
    name = "gptq"
    bits = (2, 3, 4, 8)
    requires = ("gptqmodel",)
    extra = "gptq"
    needs_calibration = True
    symmetric = {b: True for b in bits}  # sym=True (paper 003 App. A)
    kernel: ClassVar[str] = "GPTQ_TORCH"  # gptqmodel's BACKEND member _load runs: its plain torch kernel

    def layer_bits(self, module: torch.nn.Module) -> int | None:
        return int(module.bits)

    def layer_group_size(self, module: torch.nn.Module, bits: int, requested: int | None) -> int | None:
        return module.group_size  # gptqmodel keeps the row width for one group per row

    def _quantize(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], calibration: list[str] | None
    ) -> torch.nn.Module:
        configure_workers()
        from gptqmodel import GPTQModel, QuantizeConfig

        config = QuantizeConfig(
            bits=bits,
            group_size=group_size or -1,
            damp_percent=DAMP_PERCENT,
            desc_act=False,
            act_group_aware=False,  # gptqmodel's own addition, off: the paper's plain GPTQ
            sym=True,
            dynamic=self._dynamic(base, group_size, layers) or None,
            offload_to_disk=False,  # the model being quantized stays in memory, as the base does
        )
        out = tempfile.TemporaryDirectory(prefix="qrel-gptq-")
        try:
            with logs_outside_cwd():
                model = GPTQModel.load(
                    base.path, config, device=str(base.device), dtype=base.dtype, trust_remote_code=False
                )
                model.quantize(list(calibration or []), batch_size=CALIBRATION_BATCH)
                model.save(out.name)
            del model
        except (ValueError, NotImplementedError, TypeError) as exc:
            out.cleanup()
            raise QuantizationError(f"gptq could not quantize {base.name}: {exc}".splitlines()[0]) from exc
        quantized = self._load(out.name, base)
        quantized._qrel_gptq_dir = out  # kept alive with the model, for save_quantized
        return quantized

    @staticmethod
    def _dynamic(base: LoadedModel, group_size: int | None, layers: list[str]) -> dict:
        """gptqmodel's per-module overrides: ``-:`` skips a layer (mixed precision keeps it
        at base precision), ``+:`` sets one row-wide group where rows do not split."""
        dynamic: dict[str, dict] = {}
        chosen = set(layers)
        for name in base.linear_layer_names:
            pattern = f"^{re.escape(name)}$"
            if name not in chosen:
                dynamic[f"-:{pattern}"] = {}
            elif group_size and in_features(base.model.get_submodule(name)) % group_size:
                dynamic[f"+:{pattern}"] = {"group_size": -1}
        return dynamic

    def save_quantized(self, model: torch.nn.Module, layers: list[str], directory: Path) -> None:
        source = getattr(model, "_qrel_gptq_dir", None)
        if source is None:  # loaded from the cache: it is already stored
            raise QuantizationError("gptq: this model was not quantized in this run; nothing to store")
        shutil.copytree(source.name, directory, dirs_exist_ok=True)

    def load_quantized(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], directory: Path
    ) -> torch.nn.Module:
        return self._load(str(directory), base)

    @classmethod
    def _load(cls, path: str, base: LoadedModel) -> torch.nn.Module:
        """Load a gptqmodel checkpoint with its plain torch kernel (dequantize, then matmul:
        the one that runs every bit-width on every device), computing in the base's dtype.

        That kernel refuses to be built in float32, so the model is built in float16 and
        cast: quantized layers to float32 (their stored scales are float16, so nothing
        changes), the rest to the base dtype, every other tensor then set from the
        checkpoint itself, which stores them at the base's precision."""
        import torch

        configure_workers()
        from gptqmodel import BACKEND, GPTQModel

        model = GPTQModel.load(
            path, device=str(base.device), dtype=torch.float16, backend=getattr(BACKEND, cls.kernel), trust_remote_code=False
        ).model
        from gptqmodel.nn_modules.qlinear import BaseQuantLinear

        model.to(base.dtype)
        for module in model.modules():
            if isinstance(module, BaseQuantLinear):
                module.to(torch.float32)  # the fp16 scales, exactly (bfloat16 would round them)
        stored = read_safetensors(path, base.device)
        with torch.no_grad():
            for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
                if name in stored and stored[name].is_floating_point() and stored[name].shape == tensor.shape:
                    tensor.copy_(stored[name])
        for module in model.modules():
            # gptqmodel wraps each layer's dequantization in torch.compile (inductor): on a
            # CPU that compiles C++ on first use (seconds per layer, and a compiler must be
            # installed). Run the eager method it wraps: same arithmetic, no compiler.
            if isinstance(module, BaseQuantLinear) and "dequantize_weight" in vars(module):
                del module.dequantize_weight
        return model.eval()

    def read_checkpoint(self, path: Path, quantization_config: dict | None) -> tuple[int, int | None] | None:
        qc = quantization_config or {}
        if qc.get("quant_method") != self.name:  # gptq, or awq (a subclass): both load through gptqmodel
            return None
        if "bits" not in qc:
            raise ValueError(f"{path}: its {self.name} quantization_config has no 'bits'")
        group = qc.get("group_size", 128)
        return int(qc["bits"]), (None if group in (-1, None) else int(group))

    def load_checkpoint(self, path: Path, base: LoadedModel) -> torch.nn.Module:
        return self._load(str(path), base)

    def _is_quantized(self, module: torch.nn.Module) -> bool:
        from gptqmodel.nn_modules.qlinear import BaseQuantLinear

        return isinstance(module, BaseQuantLinear)


def configure_workers() -> None:
    """gptqmodel's CPU pool defaults to one worker on a 2-core machine while its model
    loader asks for two ("Virtual pool 'model_loader:cpu' requests 2 workers but parent
    'cpu' only has 1"): give it at least two, unless the user chose. Set before gptqmodel
    is first imported, which reads it."""
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, os.cpu_count() or 1)))


@contextlib.contextmanager
def logs_outside_cwd() -> Iterator[None]:
    """gptqmodel writes a log file per quantized layer group under ./logs of the current
    directory (``loop_processor._PROJECT_LOG_DIR``): send them to a temporary directory, so
    a user's checkout is not filled with them."""
    from gptqmodel.looper import loop_processor

    saved = getattr(loop_processor, "_PROJECT_LOG_DIR", None)
    with tempfile.TemporaryDirectory(prefix="qrel-gptq-logs-") as logs:
        loop_processor._PROJECT_LOG_DIR = Path(logs)
        try:
            yield
        finally:
            if saved is not None:
                loop_processor._PROJECT_LOG_DIR = saved
