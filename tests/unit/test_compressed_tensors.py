"""compressed-tensors checkpoints: the scheme of a quantization_config as compressed-tensors
itself writes it (its presets, dumped as its ModelCompressor writes config.json) read into a
method, bits and group size; what pytest-qrel cannot account for refused with the reason."""

import json
from pathlib import Path

import pytest

from pytest_qrel.checkpoints import identify_checkpoint
from pytest_qrel.config import QrelConfig
from pytest_qrel.quant import BACKENDS
from pytest_qrel.quant.compressed import read_scheme


def ct_config(preset: str, group_size: int | None = None, **extra) -> dict:
    """The quantization_config compressed-tensors writes for its ``preset`` on every Linear."""
    from compressed_tensors.quantization import QuantizationConfig, preset_name_to_scheme

    scheme = preset_name_to_scheme(preset, ["Linear"])
    if group_size:
        scheme.weights.group_size = group_size
    dumped = QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"]).model_dump(mode="json")
    return {**dumped, "quant_method": "compressed-tensors", **extra}


@pytest.mark.parametrize("preset, group, expected", [
    ("W4A16", 64, ("ct", 4, 64)),
    ("W4A16", None, ("ct", 4, 128)),
    ("W8A16", 32, ("ct", 8, 32)),
    ("W8A8", None, ("ct-a8", 8, None)),  # int8 weights, a scale per row; int8 activations
    ("W4A8", 64, ("ct-a8", 4, 64)),
    ("FP8_DYNAMIC", None, ("ct-fp8-a8", 8, None)),
])
def test_a_presets_scheme_is_its_method_bits_and_group(preset, group, expected):
    assert read_scheme(ct_config(preset, group)) == expected


def test_float8_weights_alone_are_ct_fp8():
    qc = ct_config("FP8_DYNAMIC")
    qc["config_groups"]["group_0"]["input_activations"] = None
    assert read_scheme(qc) == ("ct-fp8", 8, None)


@pytest.mark.parametrize("qc, message", [
    (ct_config("FP8"), "its weights have strategy 'tensor'; pytest-qrel accounts bits for 'group' and 'channel'"),
    (ct_config("NVFP4A16"), "its weights have strategy 'tensor_group'"),
    (ct_config("W4A16_ASYM"), "its weights are asymmetric (zero points), which transformers cannot load"),
    (ct_config("W4A16", kv_cache_scheme={"num_bits": 8}), "it has a quantized KV cache (kv_cache_scheme)"),
    ({**ct_config("W4A16"), "config_groups": {}}, "its config_groups name no quantization scheme"),
    ({**ct_config("W4A16"), "config_groups": {**ct_config("W4A16")["config_groups"],
                                              "group_1": ct_config("W8A8")["config_groups"]["group_0"]}},
     "its config groups group_0, group_1 use different schemes; one variant has one"),
    ({**ct_config("W4A16"), "config_groups": {"group_0": {**ct_config("W4A16")["config_groups"]["group_0"],
                                                          "input_activations": ct_config("FP8_DYNAMIC")[
                                                              "config_groups"]["group_0"]["input_activations"]}}},
     "its activations are 8-bit float with int weights"),
])
def test_what_it_cannot_account_for_is_refused_with_the_reason(qc, message):
    with pytest.raises(ValueError) as error:
        read_scheme(qc)
    assert str(error.value).startswith(message), error.value


def test_a_checkpoint_directory_is_identified_by_its_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "quantization_config": ct_config("W8A8")}))
    assert identify_checkpoint(tmp_path) == ("ct-a8", 8, None)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "quantization_config": ct_config("FP8")}))
    with pytest.raises(ValueError, match=rf"^{tmp_path}: unreadable quantization_config for ct \(its weights have "):
        identify_checkpoint(tmp_path)


def test_the_loaders_are_no_methods_to_quantize_with(tmp_path: Path):
    assert {n for n, b in BACKENDS.items() if not b.quantizes} == {"ct", "ct-a8", "ct-fp8", "ct-fp8-a8", "gguf"}
    assert BACKENDS["ct-a8"].describe()["activation_bits"] == 8 and BACKENDS["ct"].describe()["activation_bits"] is None
    assert BACKENDS["ct-fp8"].describe()["weight_format"] == "float8"
    with pytest.raises(pytest.UsageError, match=r"^--qrel-methods: ct-a8 loads pre-quantized checkpoints and does not "
                                                r"quantize; give the checkpoint \(its directory, or a .gguf file\) to --qrel-models$"):
        QrelConfig.from_values({"qrel_models": "zoo-xs", "qrel_no_cache": True, "qrel_methods": "rtn,ct-a8"}, tmp_path)
