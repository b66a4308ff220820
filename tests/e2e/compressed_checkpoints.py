"""compressed-tensors checkpoints of zoo models, made with compressed-tensors' own API as
llm-compressor drives it (llm-compressor itself pins another transformers): the scheme applied
by ``apply_quantization_config``, each weight's scales from its min and max by
``calculate_qparams`` (llm-compressor's min-max observer, round-to-nearest), then
``ModelCompressor`` compresses the model and writes its quantization_config."""

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pytest_qrel.models import zoo_dir


def make_ct_checkpoint(zoo: str, preset: str, out: Path, group_size: int | None = None, ignore: tuple = (),
                       quantization_format: str | None = None) -> Path:
    """``zoo`` quantized with compressed-tensors' ``preset`` scheme (W4A16, W8A8, FP8_DYNAMIC,
    ...; ``group_size`` replaces a group scheme's) on every linear layer but the head and those
    ``ignore`` names (compressed-tensors' names or ``re:`` patterns), saved to ``out`` in
    ``quantization_format`` (default: the one compressed-tensors infers from the scheme)."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationConfig,
        QuantizationStatus,
        QuantizationStrategy,
        apply_quantization_config,
        preset_name_to_scheme,
    )
    from compressed_tensors.quantization.utils.helpers import calculate_qparams

    model = AutoModelForCausalLM.from_pretrained(zoo_dir() / zoo, dtype=torch.float32)
    scheme = preset_name_to_scheme(preset, ["Linear"])
    if group_size and scheme.weights.strategy == QuantizationStrategy.GROUP:
        scheme.weights.group_size = group_size
    apply_quantization_config(model, QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head", *ignore]))
    with torch.no_grad():
        for module in model.modules():
            args = getattr(getattr(module, "quantization_scheme", None), "weights", None)
            if args is None:
                continue
            w = module.weight
            if args.strategy == QuantizationStrategy.GROUP:
                w = w.reshape(w.shape[0], -1, args.group_size)
            scale, zero = calculate_qparams(w.amin(-1), w.amax(-1), args)
            module.weight_scale.copy_(scale.reshape(module.weight_scale.shape))
            if hasattr(module, "weight_zero_point"):
                module.weight_zero_point.copy_(zero.reshape(module.weight_zero_point.shape))
            module.quantization_status = QuantizationStatus.FROZEN
    compressor = ModelCompressor.from_pretrained_model(model, quantization_format)
    compressor.compress_model(model)
    model.save_pretrained(out)
    compressor.update_config(str(out))
    AutoTokenizer.from_pretrained(zoo_dir() / zoo).save_pretrained(out)
    return out
