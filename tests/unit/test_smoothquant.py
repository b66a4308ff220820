"""smoothquant's arithmetic: int8 weights exactly as quanto's qint8, per-token int8 activations
against a plain numpy reference, folds that leave a model's function unchanged (grouped
attention included), and its bits and options."""

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from pytest_qrel.quant import get_backend
from pytest_qrel.quant.smoothquant_linear import W8A8Linear, apply_fold, llama_folds


def test_weights_are_quantos_qint8_codes_and_scales():
    quanto = pytest.importorskip("optimum.quanto")
    torch.manual_seed(0)
    linear = torch.nn.Linear(48, 24)
    ours = W8A8Linear.from_linear(linear)
    qlinear = quanto.nn.QLinear.from_module(linear, weights=quanto.qint8)
    qlinear.freeze()
    assert torch.equal(ours.weight_codes, qlinear.weight._data)
    assert torch.equal(ours.weight_scale, qlinear.weight._scale.reshape(-1))


def test_forward_is_per_token_int8_times_per_row_int8():
    torch.manual_seed(1)
    linear = torch.nn.Linear(32, 8)
    x = torch.randn(2, 5, 32) * torch.linspace(0.1, 20, 32)  # channels of very different ranges
    x[0, 2] = 0.0  # an all-zero token: no division by a zero scale
    w = linear.weight.detach().numpy().astype(np.float64)
    sw = np.abs(w).max(1, keepdims=True) / 127
    qw = np.clip(np.round(w / sw), -128, 127)
    xs = x.numpy().reshape(-1, 32).astype(np.float64)
    sx = np.abs(xs).max(1, keepdims=True) / 127
    sx[sx == 0] = 1
    qx = np.clip(np.round(xs / sx), -128, 127)
    expected = (qx @ qw.T) * sx * sw.T + linear.bias.detach().numpy()
    got = W8A8Linear.from_linear(linear)(x).reshape(-1, 8).numpy()
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kv_heads", [4, 2])  # 2: grouped attention, two heads read each v head
def test_folds_keep_the_function_and_cover_every_linear_layer(kv_heads):
    torch.manual_seed(2)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=kv_heads)
    model = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        folds = llama_folds(model)
        consumers = sorted(c for f in folds for c in f.consumers)
        linears = sorted(n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head")
        assert consumers == linears
        for fold in folds:
            width = model.get_submodule(fold.target).weight.shape[0]
            apply_fold(model, fold, torch.rand(width) * 10 + 0.1)
        after = model(input_ids=ids).logits
    assert torch.allclose(after, before, rtol=1e-4, atol=1e-4)


def test_bits_and_accounting_are_those_of_a_per_row_symmetric_int8_scheme():
    backend = get_backend("smoothquant")
    assert backend.unsupported_reason(8) is None
    assert backend.unsupported_reason(4) == "smoothquant does not support 4-bit weights (supported: 8)"
    row = backend.describe()
    assert (row["bits"], row["activation_bits"], row["needs_calibration"], row["requires"]) == ([8], 8, True, [])
    assert backend.group_size_for(8, 64) is None and backend.symmetric == {8: True}  # as quanto-a8
    assert get_backend("quanto-a8").symmetric[8] and get_backend("quanto-a8").group_size_for(8, 64) is None


def _config(**values):
    from pathlib import Path

    from pytest_qrel.config import QrelConfig

    return QrelConfig.from_values({"qrel_models": "zoo-xs", "qrel_methods": "smoothquant", "qrel_bits": "8",
                                   "qrel_no_cache": True, **values}, Path.cwd())


def test_alpha_option():
    assert _config().smoothquant_alpha == 0.5
    assert _config(qrel_smoothquant_alpha="0.8").smoothquant_alpha == 0.8
    with pytest.raises(pytest.UsageError, match="--qrel-smoothquant-alpha"):
        _config(qrel_smoothquant_alpha="1.5")


def test_mixed_precision_ratio_is_a_usage_error():
    with pytest.raises(pytest.UsageError, match="--qrel-quant-ratio: smoothquant cannot be searched at ratio 0.5"):
        _config(qrel_quant_ratio="0.5,1")
