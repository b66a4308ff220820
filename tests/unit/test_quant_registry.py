import json

import pytest

from pytest_qrel.checkpoints import identify_checkpoint, is_prequantized
from pytest_qrel.quant import BACKENDS, get_backend, register, supported_bits


def test_lookup_miss_lists_valid_names():
    with pytest.raises(ValueError, match=r"Expected a quantization method in \['awq', 'bnb', 'bnb-fp4', 'ct', 'ct-a8', 'ct-fp8', "
                       r"'ct-fp8-a8', 'gguf', 'gptq', 'hqq', 'quanto', 'quanto-a8', "
                       r"'quanto-fp8', 'quanto-fp8-a8', 'rtn', 'smoothquant'\], but got 'aqlm'"):
        get_backend("aqlm")


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="'hqq' is already registered"):
        register(BACKENDS["hqq"])


def test_supported_bits_is_the_union():
    assert supported_bits() == [2, 3, 4, 8]


def test_unsupported_pair_has_a_reason():
    assert get_backend("bnb").unsupported_reason(3) == "bnb does not support 3-bit weights (supported: 4, 8)"
    assert get_backend("hqq").unsupported_reason(3) is None


def test_missing_package_reason(monkeypatch):
    backend = get_backend("hqq")
    monkeypatch.setattr(type(backend), "requires", ("not_a_real_package_qrel",))
    assert backend.unsupported_reason(4) == "hqq needs not_a_real_package_qrel: install pytest-qrel[hqq]"


def test_backends_group_sizes():
    assert get_backend("bnb").group_size_for(4, 128) == 64  # nf4 blocks are fixed
    assert get_backend("bnb").group_size_for(8, 128) is None  # int8: per row
    assert get_backend("hqq").group_size_for(4, 128) == 128


@pytest.mark.parametrize("method, extra", [("gptq", "gptq"), ("awq", "gptq"), ("quanto-a8", "quanto"), ("bnb-fp4", "bnb")])
def test_missing_library_skips_with_its_extra(monkeypatch, method, extra):
    # the library cannot be imported: the backend is skipped with the extra to install
    import importlib.util

    real = importlib.util.find_spec
    blocked = {"gptqmodel", "optimum", "optimum.quanto", "bitsandbytes"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in blocked else real(name, *a))
    reason = get_backend(method).unsupported_reason(get_backend(method).bits[0])
    assert reason is not None and reason.endswith(f"install pytest-qrel[{extra}]"), reason
    assert get_backend("rtn").unsupported_reason(4) is None  # the others are unaffected


def test_registry_describes_each_backend():
    rows = {name: b.describe() for name, b in BACKENDS.items()}
    assert rows["gptq"]["needs_calibration"] and not rows["hqq"]["needs_calibration"]
    assert rows["awq"]["needs_calibration"] and rows["awq"]["bits"] == [2, 3, 4, 8] and rows["awq"]["extra"] == "gptq"
    assert rows["quanto-a8"]["activation_bits"] == 8 and rows["quanto"]["activation_bits"] is None
    assert rows["quanto-fp8"]["weight_format"] == "float8" and rows["bnb-fp4"]["weight_format"] == "fp4"
    assert rows["bnb"]["group_size"] == {4: 64, 8: None} and rows["hqq"]["group_size"] == "any"
    assert rows["quanto"]["bits"] == [2, 4, 8] and rows["gptq"]["bits"] == [2, 3, 4, 8]


def _ckpt(tmp_path, qc, files=()):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", **({"quantization_config": qc} if qc else {})}))
    for name, text in files:
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "qc, files, expected",
    [
        ({"quant_method": "gptq", "bits": 3, "group_size": 128}, (), ("gptq", 3, 128)),
        ({"quant_method": "gptq", "bits": 4, "group_size": -1}, (), ("gptq", 4, None)),
        ({"quant_method": "awq", "bits": 4, "group_size": 32, "version": "gemm"}, (), ("awq", 4, 32)),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}, (), ("bnb", 4, 64)),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "fp4"}, (), ("bnb-fp4", 4, 64)),
        ({"quant_method": "bitsandbytes", "load_in_8bit": True}, (), ("bnb", 8, None)),
        (None, [("quanto_qmap.json", json.dumps({"a": {"weights": "qint4", "activations": "none"}}))], ("quanto", 4, 128)),
        (None, [("quanto_qmap.json", json.dumps({"a": {"weights": "qint8", "activations": "qint8"}}))], ("quanto-a8", 8, None)),
        (None, [("quanto_qmap.json", json.dumps({"a": {"weights": "qfloat8_e4m3fn", "activations": "none"}}))],
         ("quanto-fp8", 8, None)),
    ],
)
def test_checkpoint_method_and_bits_read_from_config(tmp_path, qc, files, expected):
    path = _ckpt(tmp_path, qc, files)
    assert is_prequantized(path)
    assert identify_checkpoint(path) == expected


def test_unknown_checkpoint_format_is_named(tmp_path):
    assert not is_prequantized(_ckpt(tmp_path / "plain", None))
    path = _ckpt(tmp_path / "aqlm", {"quant_method": "aqlm", "bits": 4})  # awq is loaded now
    with pytest.raises(ValueError, match="quant_method 'aqlm', which pytest-qrel does not load"):
        identify_checkpoint(path)
