"""Bit accounting: paper 002's effective bits, measured storage, and total model bits that
do not depend on the device; a layer narrower than its group is quantized, not skipped."""

import dataclasses

import pytest
import torch

from pytest_qrel.models import load_base, resolve_model
from pytest_qrel.quant import get_backend


@pytest.fixture(scope="module")
def zoo_s():
    name, source = resolve_model("zoo-s")
    return load_base(name, source, torch.device("cpu"))


def test_total_bits_do_not_depend_on_the_compute_dtype(zoo_s):
    # a GPU computes in bfloat16, a CPU in float32: the checkpoint (float32) is the same
    assert zoo_s.checkpoint_dtype == torch.float32
    as_on_gpu = dataclasses.replace(zoo_s, model=zoo_s.model.to(torch.bfloat16), dtype=torch.bfloat16)
    try:
        _, info16 = get_backend("rtn").quantize(as_on_gpu, 4, 64)
    finally:
        zoo_s.model.to(torch.float32)
    _, info32 = get_backend("rtn").quantize(zoo_s, 4, 64)
    assert info16.total_bits == info32.total_bits
    linear = sum(zoo_s.model.get_submodule(n).weight.numel() for n in zoo_s.linear_layer_names)
    rest = zoo_s.params - linear
    assert info32.total_bits == pytest.approx(linear * info32.effective_bits + rest * 32)


@pytest.mark.parametrize("method, bits, symmetric", [("rtn", 2, False), ("hqq", 4, False), ("gptq", 4, True)])
def test_effective_bits_follow_paper_002(method, bits, symmetric):
    name, source = resolve_model("zoo-m")  # every row of zoo-m splits into groups of 64
    base = load_base(name, source, torch.device("cpu"))
    calibration = ["question : where does yusuf price live ? answer : montreal"] * 8 if method == "gptq" else None
    _, info = get_backend(method).quantize(base, bits, 64, calibration=calibration)
    # b + (s + z) / G with s = 16 scale bits and z = b for asymmetric schemes, 0 for symmetric
    assert info.effective_bits == bits + (16 + (0 if symmetric else bits)) / 64
    assert info.regrouped == {} and info.coverage == 1.0


def test_layers_narrower_than_the_group_are_quantized_with_a_smaller_group(zoo_s):
    # zoo-s: hidden size 32, so six of its seven layers have rows of 32 weights
    _, info = get_backend("rtn").quantize(zoo_s, 4, 64)
    assert info.coverage == 1.0 and info.skipped == {}
    assert len(info.quantized_layers) == info.linear_layers == 7
    assert len(info.regrouped) == 6
    assert info.regrouped["model.layers.0.self_attn.q_proj"] == (
        "group size 32 instead of 64: its rows of 32 weights do not split into groups of 64"
    )
    # six layers of 32x32 or 64x32 at 4 + 20/32 bits, down_proj (32x64) at 4 + 20/64
    sizes = {n: zoo_s.model.get_submodule(n).weight.numel() for n in zoo_s.linear_layer_names}
    down = "model.layers.0.mlp.down_proj"
    expected = (sum(v for n, v in sizes.items() if n != down) * (4 + 20 / 32) + sizes[down] * (4 + 20 / 64)) / sum(sizes.values())
    assert info.effective_bits == pytest.approx(expected, rel=1e-12)
    # rtn stores exactly what the formula counts, up to the last byte of each packed buffer
    assert info.storage_bits == pytest.approx(info.effective_bits, abs=0.01)
