"""AWQ (activation-aware weight quantization) through gptqmodel, at 2, 3, 4 and 8 bits,
calibrated on shipped text.

gptqmodel's AWQ: per input channel scales searched on the calibration activations and
folded into the preceding operation, then a clipping search, then asymmetric group-wise
round-to-nearest (a zero point per group: paper 002's ``z = b``), stored in its GEMM format.
It runs on CPU only when given its plain torch kernel (``BACKEND.AWQ_TORCH``; its default
choice is CUDA-only) and with the model quantized in float16 (its packer refuses float32);
the quantized model is then loaded as gptq's is (``GPTQBackend._load``), computing in the
base's dtype.

gptqmodel falls back to plain round-to-nearest for a group of layers whose calibration
activations are too few (its ``fallback``, on by default): those layers are RTN, not AWQ.
Which ones fell back is recorded while quantizing, stored beside the checkpoint, and reported
as the variant's coverage and skipped layers, so a partly-RTN variant never reads as AWQ.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import QuantizationError
from .gptq import CALIBRATION_BATCH, GPTQBackend, configure_workers, logs_outside_cwd

if TYPE_CHECKING:
    import torch

    from ..models import LoadedModel
    from ..variants import QuantizedInfo

FALLBACK_FILE = "qrel_awq_fallback.json"  # {layer: reason} of the layers gptqmodel quantized by RTN
CLIP_ROWS = 64  # gptqmodel's clipping search takes output rows in batches of 64 (or 256)
NOT_CLIPPED = ("q_", "k_", "query", "key", "Wqkv")  # names its clipping search leaves out


class AWQBackend(GPTQBackend):
    name = "awq"
    bits = (2, 3, 4, 8)
    requires = ("gptqmodel",)
    extra = "gptq"
    needs_calibration = True
    symmetric = {b: False for b in bits}  # a zero point per group (zero_point=True)
    kernel = "AWQ_TORCH"

    def _quantize(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], calibration: list[str] | None
    ) -> torch.nn.Module:
        import torch

        self._check_rows(base, layers)
        configure_workers()
        from gptqmodel import BACKEND, GPTQModel, QuantizeConfig

        config = QuantizeConfig(
            bits=bits,
            group_size=group_size or -1,
            quant_method="awq",
            format="gemm",
            sym=False,
            dynamic=self._dynamic(base, group_size, layers) or None,
            offload_to_disk=False,
        )
        out = tempfile.TemporaryDirectory(prefix="qrel-awq-")
        try:
            with logs_outside_cwd(), _fallbacks_recorded() as fallback:
                # float16: gptqmodel's AWQ packer refuses float32 weights
                model = GPTQModel.load(
                    base.path, config, device=str(base.device), dtype=torch.float16, trust_remote_code=False
                )
                model.quantize(list(calibration or []), batch_size=CALIBRATION_BATCH, backend=BACKEND.AWQ_TORCH)
                model.save(out.name)
            del model
        except (ValueError, NotImplementedError, TypeError, AssertionError) as exc:
            out.cleanup()
            raise QuantizationError(f"awq could not quantize {base.name}: {exc}".splitlines()[0]) from exc
        (Path(out.name) / FALLBACK_FILE).write_text(json.dumps(fallback, sort_keys=True))
        quantized = self._load(out.name, base)
        quantized._qrel_gptq_dir = out  # kept alive with the model, for save_quantized
        quantized._qrel_awq_fallback = dict(fallback)
        return quantized

    def _check_rows(self, base: LoadedModel, layers: list[str]) -> None:
        """gptqmodel's clipping search asserts that a clipped layer's output rows come in
        batches of 64: refuse such a model with the reason rather than its bare AssertionError."""
        for name in layers:
            module = base.model.get_submodule(name)
            rows = module.weight.shape[1] if type(module).__name__ == "Conv1D" else module.weight.shape[0]
            if rows % CLIP_ROWS and not any(part in name.rpartition(".")[2] for part in NOT_CLIPPED):
                raise QuantizationError(
                    f"awq cannot quantize {base.name}: its layer {name} has {rows} output rows, and gptqmodel's "
                    f"AWQ clipping search needs a multiple of {CLIP_ROWS}"
                )

    def load_quantized(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], directory: Path
    ) -> torch.nn.Module:
        model = self._load(str(directory), base)
        model._qrel_awq_fallback = read_fallback(directory)
        return model

    def measure(
        self,
        base: LoadedModel,
        model: torch.nn.Module,
        bits: int,
        group_size: int | None,
        requested: list[str] | None = None,
    ) -> QuantizedInfo:
        """What was quantized, counting the layers gptqmodel quantized by RTN fallback as not
        AWQ: out of the coverage and in ``skipped`` with why (their bits still count: they
        are stored quantized)."""
        info = super().measure(base, model, bits, group_size, requested)
        fallback: dict[str, str] = getattr(model, "_qrel_awq_fallback", {})
        asked = [n for n in info.requested_layers if n in fallback]
        if not asked:
            return info
        numel = {n: base.model.get_submodule(n).weight.numel() for n in info.requested_layers}
        total = sum(numel.values())
        info.coverage = max(0.0, info.coverage - sum(numel[n] for n in asked) / total) if total else info.coverage
        info.skipped.update({n: fallback[n] for n in asked})
        return info

    def load_checkpoint(self, path: Path, base: LoadedModel) -> torch.nn.Module:
        model = self._load(str(path), base)
        model._qrel_awq_fallback = read_fallback(path)
        return model


def read_fallback(directory: Path | str) -> dict[str, str]:
    """The layers a stored AWQ checkpoint had quantized by RTN fallback (none recorded: {})."""
    path = Path(directory) / FALLBACK_FILE
    return dict(json.loads(path.read_text())) if path.is_file() else {}


@contextlib.contextmanager
def _fallbacks_recorded() -> Iterator[dict[str, str]]:
    """Record the layers gptqmodel's AWQ quantizes by its RTN fallback: it calls
    ``AWQProcessor.apply_quant`` with no AWQ scales exactly for those (a whole decoder layer
    whose AWQ could not proceed, or a group of layers its calibration reached too little),
    and says why only in its log."""
    from gptqmodel.looper.awq_processor import AWQProcessor

    recorded: dict[str, str] = {}
    apply_quant, layer_fallback = AWQProcessor.apply_quant, AWQProcessor._quantize_layer_fallback
    why = {"reason": "too few calibration tokens reached it (gptqmodel's fallback threshold)"}

    def recording_apply(self: Any, named_linears: dict[str, Any], scales_list: Any) -> Any:
        if not scales_list:
            for named in named_linears.values():
                recorded[named.full_name] = f"quantized by round-to-nearest, not AWQ: {why['reason']}"
        return apply_quant(self, named_linears, scales_list)

    def recording_fallback(self: Any, layer_index: int, state: Any, reason: str) -> Any:
        why["reason"] = f"gptqmodel's AWQ fell back ({reason})"
        try:
            return layer_fallback(self, layer_index, state, reason)
        finally:
            why["reason"] = "too few calibration tokens reached it (gptqmodel's fallback threshold)"

    AWQProcessor.apply_quant, AWQProcessor._quantize_layer_fallback = recording_apply, recording_fallback
    try:
        yield recorded
    finally:
        AWQProcessor.apply_quant, AWQProcessor._quantize_layer_fallback = apply_quant, layer_fallback
