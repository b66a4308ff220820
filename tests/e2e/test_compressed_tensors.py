"""compressed-tensors checkpoints of zoo models, made with compressed-tensors' own API
(compressed_checkpoints.py), loaded as pre-quantized variants: bits and method from the
config, KL ordered by bits, W8A8's int8 activations quantized on a CPU, declared bits that
are not the stored codes refused, and the calibration suite's scores on a loaded checkpoint
equal to lm-eval's HFLM on the same model (the cross-check of test_lmeval_crosscheck.py)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from compressed_checkpoints import make_ct_checkpoint
from helpers import session_for
from pytest_qrel.data import calibration_texts
from pytest_qrel.errors import VariantError
from pytest_qrel.models import load_base, zoo_dir

pytest.importorskip("compressed_tensors", reason="compressed-tensors checkpoints need the compressed-tensors extra")

# checkpoint directory -> (compressed-tensors preset, group size): zoo-xs's rows are 16 and 64 wide
PRESETS = {"w4a16": ("W4A16", 16), "w8a8": ("W8A8", None), "fp8": ("FP8_DYNAMIC", None)}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ct")
    for name, (preset, group) in PRESETS.items():
        make_ct_checkpoint("zoo-xs", preset, out / name, group)
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def kl_of(ckpt: Path, cache: Path, **opts) -> tuple[str, float, dict]:
    session = session_for(ckpt, cache, base="zoo-xs", **opts)
    (variant,) = session.variants
    kl = session.kl_to_base(variant)
    return variant.id, kl, session.variant_info[variant.id]


def test_each_scheme_is_a_variant_with_the_configs_bits_kl_ordered_by_bits(ckpts, cache):
    measured = {name: kl_of(ckpts / name, cache) for name in PRESETS}
    assert [measured[n][0] for n in PRESETS] == ["zoo-xs-ct-4b-g16-ckpt-w4a16", "zoo-xs-ct-a8-8b-ckpt-w8a8",
                                                 "zoo-xs-ct-fp8-a8-8b-ckpt-fp8"]
    w4, w8, fp8 = (measured[n][2] for n in PRESETS)
    # every linear layer quantized; paper 002's bits from the config's groups: 4 + 16/16, 8 + 16/row
    assert w4["quantized_layers"] == w4["linear_layers"] == 7 and w4["coverage"] == 1.0
    assert w4["effective_bits"] == 5.0 and w4["group_size"] == 16
    assert 8 < w8["effective_bits"] < 9 and w8["group_size"] is None
    # what is stored: 4-bit codes packed in int32, float32 scales and each shape; int8 codes, a scale per row
    assert 5.0 < w4["storage_bits"] < 7.0 and 8.0 < w8["storage_bits"] < 10.0
    assert measured["w4a16"][1] > 5 * max(measured["w8a8"][1], measured["fp8"][1]) > 0


def test_layers_it_leaves_at_full_precision_are_out_of_its_coverage(tmp_path, cache):
    ckpt = make_ct_checkpoint("zoo-xs", "W8A8", tmp_path / "no-down", ignore=("re:.*down_proj$",))
    _, _, info = kl_of(ckpt, cache)
    assert info["quantized_layers"] == 6 and info["linear_layers"] == 7 and 0 < info["coverage"] < 1
    assert info["skipped"] == {"model.layers.0.mlp.down_proj": "the checkpoint stores it at full precision (its "
                                                                 "config's ignore list, or no target matches it)"}


def test_w8a8_activations_are_quantized_on_a_cpu(ckpts):
    """compressed-tensors' forward quantizes each layer's input to int8 per token (W8A8) after
    decompressing the weights: with that switched off the same weights are closer to the base."""
    from pytest_qrel.quant import get_backend

    base = load_base("zoo-xs", str(zoo_dir() / "zoo-xs"), torch.device("cpu"))
    batch = base.tokenizer(calibration_texts()[:16], return_tensors="pt", padding=True)

    def kl(model) -> float:
        with torch.no_grad():
            ref, out = (torch.log_softmax(m(**batch).logits, -1) for m in (base.model, model))
        return float((ref.exp() * (ref - out)).sum(-1)[batch.attention_mask.bool()].mean())

    model = get_backend("ct-a8").load_checkpoint(ckpts / "w8a8", base)
    w8a8 = kl(model)
    schemes = [m.quantization_scheme for m in model.modules() if getattr(m, "quantization_scheme", None)]
    assert len(schemes) == 7 and all(s.input_activations.num_bits == 8 and s.input_activations.dynamic for s in schemes)
    for scheme in schemes:
        scheme.input_activations = None
    assert w8a8 > 1.5 * kl(model) > 0  # measured: 4.0e-4 against 1.5e-4 (zoo-l: 3.9e-4 against 7.1e-5)


def rewritten(source: Path, target: Path, edit) -> Path:
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    edit(config["quantization_config"]["config_groups"]["group_0"]["weights"])
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_declared_bits_and_groups_that_are_not_the_stored_codes_are_errors(ckpts, cache, tmp_path):
    # int8 codes declared as 4-bit: compressed-tensors loads them; the 4-bit threshold must not apply
    four = rewritten(ckpts / "w8a8", tmp_path / "four", lambda w: w.update(num_bits=4))
    with pytest.raises(VariantError) as error:
        kl_of(four, cache)
    assert str(error.value).startswith(f"--qrel-models: {four} is not what it declares: its layer model.layers.0."), error
    assert "stores 8-bit codes, but zoo-xs-ct-a8-4b-ckpt-four is 4-bit" in str(error.value)
    # packed codes with other groups than declared: transformers refuses the scales' shape
    groups = rewritten(ckpts / "w4a16", tmp_path / "groups", lambda w: w.update(group_size=8))
    with pytest.raises(VariantError) as error:
        kl_of(groups, cache)
    assert str(error.value).startswith(f"--qrel-models: cannot load {groups} as a ct quantization of "), error
    assert "\n" not in str(error.value)


def test_weights_stored_dense_are_no_quantized_variant(cache, tmp_path):
    """A checkpoint that stores its quantized layers' weights as floats (format dense) loads as
    the full-precision model: labelled with its config's 4 bits it would pass the 4-bit gate
    with a KL of 0 (measured, on one without the unused zero points that refuse it by chance)."""
    from safetensors.torch import load_file, save_file

    dense = make_ct_checkpoint("zoo-xs", "W4A16", tmp_path / "dense", 16, quantization_format="dense")
    weights = dense / "model.safetensors"
    save_file({k: v for k, v in load_file(weights).items() if not k.endswith("zero_point")}, weights, {"format": "pt"})
    with pytest.raises(VariantError) as error:
        kl_of(dense, cache)
    assert str(error.value) == (f"--qrel-models: {dense} stores model.layers.0.self_attn.q_proj's weights as "
                                "torch.float32 values, not as the 4-bit codes its quantization_config declares "
                                "(its format is 'dense'); pytest-qrel loads checkpoints that store their codes")


def test_calibration_scores_equal_lm_evals_on_the_loaded_checkpoint(ckpts, cache):
    """One task of the cross-check, on the W4A16 checkpoint as the store loads it."""
    from lm_eval.models.huggingface import HFLM
    from test_lmeval_crosscheck import LIMIT, _lmeval_task

    from pytest_qrel.data.tasks import zoo_task
    from pytest_qrel.measures.choices import score_task
    from pytest_qrel.prequantized import load_checkpoint

    session = session_for(ckpts / "w4a16", cache, base="zoo-xs")
    (variant,) = session.variants
    base = load_base("zoo-xs", str(zoo_dir() / "zoo-xs"), torch.device("cpu"))
    model, _ = load_checkpoint(variant, base, allow_pickle=False)
    name = "zoo_recall"
    task = _lmeval_task(name)
    lm = HFLM(pretrained=model, tokenizer=base.tokenizer, batch_size=64)
    theirs = np.array([ll for ll, _ in lm.loglikelihood(task.instances, disable_tqdm=True)]).reshape(LIMIT, -1)
    ours_task = zoo_task(name)
    ours_task = type(ours_task)(name, ours_task.contexts[:LIMIT], ours_task.continuations[:LIMIT],
                                ours_task.choices[:LIMIT], ours_task.labels[:LIMIT], ours_task.stratum, LIMIT)
    ours = score_task(model, base.tokenizer, ours_task)
    np.testing.assert_allclose(ours.loglik, theirs, atol=1e-4, rtol=0)
    # the quantized model, not the base: its scores differ from the base's
    assert np.abs(score_task(base.model, base.tokenizer, ours_task).loglik - ours.loglik).max() > 1e-3
