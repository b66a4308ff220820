"""bitsandbytes through transformers' BitsAndBytesConfig: nf4 (``bnb``) or fp4 (``bnb-fp4``)
at 4 bits, LLM.int8 at 8."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import QuantizationError
from .base import Backend, in_features


class _DropInt8CastNotice(logging.Filter):
    """LLM.int8 on CPU logs a cast notice on every matmul: one line per layer per batch."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "inputs will be cast from" not in record.getMessage()


logging.getLogger("bitsandbytes.autograd._functions").addFilter(_DropInt8CastNotice())

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from ..models import LoadedModel


class BitsAndBytesBackend(Backend):
    name = "bnb"
    bits: ClassVar[tuple[int, ...]] = (4, 8)
    requires = ("bitsandbytes",)
    extra = "bnb"
    # nf4 quantizes blocks of 64 weights (transformers does not expose the block size);
    # int8 keeps one absmax scale per output row.
    fixed_group_size = {4: 64, 8: None}
    weight_format = "nf4"
    symmetric = {4: True, 8: True}  # absmax scales, no zero point

    def _quantize(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], calibration: list[str] | None
    ) -> torch.nn.Module:
        from transformers import BitsAndBytesConfig

        # transformers quantizes every linear layer but those named here
        keep = [n for n, m in base.model.named_modules() if m is base.model.get_output_embeddings()]
        keep += sorted(set(base.linear_layer_names) - set(layers))
        if bits == 4:
            config = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=self.weight_format,
                bnb_4bit_compute_dtype=base.dtype,
                llm_int8_skip_modules=keep + self._cpu_unsafe_nf4_layers(base),
            )
        else:
            config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=keep)
        return self._load(base.path, base, quantization_config=config)

    @staticmethod
    def _cpu_unsafe_nf4_layers(base: LoadedModel) -> list[str]:
        """Layers bitsandbytes 0.50 cannot run in 4 bits on a CPU: its CPU dequantization is
        wrong when a weight row does not split into whole 64-weight blocks (measured: 0.26
        relative reconstruction error on a 64x96 Gaussian matrix, where nf4 itself gives
        0.09 and the quantized codes are right). They stay at full precision, and the report
        shows how many layers were quantized."""
        if base.device.type != "cpu":
            return []
        return [n for n in base.linear_layer_names if in_features(base.model.get_submodule(n)) % 64]

    def skip_reason(self, base: LoadedModel, name: str, bits: int, group_size: int | None) -> str:
        if bits == 4 and name in self._cpu_unsafe_nf4_layers(base):
            return ("bitsandbytes' CPU 4-bit kernel cannot run rows that do not split into 64-weight blocks "
                    "(a GPU can; or choose --qrel-bits=8)")
        return super().skip_reason(base, name, bits, group_size)

    def save_quantized(self, model: torch.nn.Module, layers: list[str], directory: Path) -> None:
        model.save_pretrained(directory, safe_serialization=True)

    def load_quantized(
        self, base: LoadedModel, bits: int, group_size: int | None, layers: list[str], directory: Path
    ) -> torch.nn.Module:
        # the saved config carries its quantization_config: transformers restores the layers
        return self._load(str(directory), base)

    def read_checkpoint(self, path: Path, quantization_config: dict | None) -> tuple[int, int | None] | None:
        qc = quantization_config or {}
        if qc.get("quant_method") != "bitsandbytes":
            return None
        if qc.get("load_in_8bit"):
            bits = 8
        elif qc.get("load_in_4bit") and qc.get("bnb_4bit_quant_type", "fp4") == self.weight_format:
            bits = 4
        else:
            return None
        return (bits, self.fixed_group_size[bits]) if bits in self.bits else None

    def load_checkpoint(self, path: Path, base: LoadedModel) -> torch.nn.Module:
        model = self._load(str(path), base)
        import bitsandbytes as bnb

        unsafe = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit) and m.in_features % 64]
        if unsafe and base.device.type == "cpu":
            raise QuantizationError(
                f"{path}: bitsandbytes cannot run its 4-bit layers on a CPU when a row does not split into "
                f"64-weight blocks ({len(unsafe)} layers, first: {unsafe[0]}); evaluate it on a GPU"
            )
        return model

    @staticmethod
    def _load(path: str, base: LoadedModel, **kwargs: Any) -> torch.nn.Module:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            path, device_map={"": base.device}, dtype=base.dtype, **base.load_kwargs, **kwargs
        )
        for module in model.modules():
            # bitsandbytes 0.50 repacks nf4 weights for AVX512-BF16 CPUs on first use: that
            # path breaks on layers narrower than a block (in_features < 64) and rounds the
            # scales to bfloat16, so results would differ between CPUs. Keep nf4 as stored.
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
        return model

    def layer_bits(self, module: torch.nn.Module) -> int | None:
        import bitsandbytes as bnb

        return 4 if isinstance(module, bnb.nn.Linear4bit) else 8

    def _is_quantized(self, module: torch.nn.Module) -> bool:
        import bitsandbytes as bnb

        return isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt))


class BitsAndBytesFP4Backend(BitsAndBytesBackend):
    """The 4-bit float format of bitsandbytes (``bnb_4bit_quant_type="fp4"``)."""

    name = "bnb-fp4"
    bits = (4,)
    fixed_group_size = {4: 64}
    weight_format = "fp4"
    symmetric = {4: True}
