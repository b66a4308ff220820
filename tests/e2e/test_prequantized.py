"""Pre-quantized checkpoints: loaded as they are (method and bits read from their config),
paired with a base given by --qrel-base or their own base_model field, and refused with a
one-line reason when they cannot be compared."""

import json
import shutil

import pytest
import torch

from helpers import run_session, session_for
from pytest_qrel.errors import VariantError
from pytest_qrel.models import load_base
from pytest_qrel.quant import get_backend


@pytest.fixture(scope="module")
def checkpoints(tiny, tmp_path_factory):
    """gptqmodel, bitsandbytes (nf4, fp4, int8) and optimum-quanto checkpoints of ``tiny``,
    each written by its own library's save, and the KL of the same quantization made here."""
    from optimum.quanto import QuantizedModelForCausalLM, qint4
    from transformers import AutoModelForCausalLM

    from pytest_qrel.data import calibration_texts

    out = tmp_path_factory.mktemp("ckpts")
    base = load_base("tiny", str(tiny), torch.device("cpu"))
    for method, bits in [("gptq", 4), ("bnb", 4), ("bnb-fp4", 4), ("bnb", 8)]:
        backend = get_backend(method)
        model, info = backend.quantize(base, bits, 64, calibration=calibration_texts()[:32])
        directory = out / f"{method}-{bits}"
        directory.mkdir()
        backend.save_quantized(model, info.quantized_layers, directory)  # gptqmodel's / transformers' save
    quanto = QuantizedModelForCausalLM.quantize(
        AutoModelForCausalLM.from_pretrained(tiny), weights=qint4, exclude="lm_head"
    )
    quanto.save_pretrained(out / "quanto-4")
    return out


def test_method_and_bits_come_from_the_checkpoint(tiny, checkpoints, tmp_path):
    models = ",".join(str(p) for p in sorted(checkpoints.iterdir()))
    session = session_for(models, tmp_path, base=str(tiny), methods="hqq", bits="2")
    ids = {v.id: v for v in session.variants}
    # the full-precision matrix (hqq 2-bit) applies to full-precision models only: none here
    assert set(ids) == {
        "tiny-gptq-4b-g64-ckpt-gptq-4",
        "tiny-bnb-4b-g64-ckpt-bnb-4",
        "tiny-bnb-fp4-4b-g64-ckpt-bnb-fp4-4",
        "tiny-bnb-8b-ckpt-bnb-8",
        "tiny-quanto-4b-g128-ckpt-quanto-4",
    }
    measured = run_session(session)
    for vid, (kl, info) in measured.items():
        assert info["cache"] == "prequantized"
        assert info["quantized_layers"] == info["linear_layers"] == 14, vid
        assert 0 < kl < 0.01, vid
    assert measured["tiny-bnb-8b-ckpt-bnb-8"][0] < measured["tiny-bnb-4b-g64-ckpt-bnb-4"][0]
    # loading what a library saved gives what the same quantization computes here
    fresh = run_session(session_for(tiny, tmp_path / "fresh", methods="bnb,quanto,gptq", bits="4", no_cache=True,
                                    calibration_samples="32"))
    for ckpt, made_here in [("bnb-4b-g64-ckpt-bnb-4", "bnb-4b-g64"), ("quanto-4b-g128-ckpt-quanto-4", "quanto-4b-g128"),
                            ("gptq-4b-g64-ckpt-gptq-4", "gptq-4b-g64")]:
        assert measured[f"tiny-{ckpt}"][0] == pytest.approx(fresh[f"tiny-{made_here}"][0], rel=1e-5), ckpt
    record = {r["id"]: r for r in session.variant_records()}["tiny-gptq-4b-g64-ckpt-gptq-4"]
    assert record["checkpoint"] == str(checkpoints / "gptq-4") and record["bits"] == 4


def test_base_model_field_pairs_without_the_option(tiny, checkpoints, tmp_path):
    ckpt = tmp_path / "gptq-4"
    shutil.copytree(checkpoints / "gptq-4", ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "base_model": str(tiny)}))
    session = session_for(ckpt, tmp_path)
    (variant,) = session.variants
    assert (variant.model, variant.source, variant.method, variant.bits) == ("tiny", str(tiny), "gptq", 4)
    # or a model card's front matter, relative to the checkpoint
    (ckpt / "config.json").write_text(json.dumps(config))
    (ckpt / "README.md").write_text(f"---\nbase_model: ../{tiny.parent.name}/{tiny.name}\n---\n# card\n")
    shutil.copytree(tiny, tmp_path / tiny.parent.name / tiny.name)
    (variant,) = session_for(ckpt, tmp_path).variants
    assert variant.source == str((tmp_path / tiny.parent.name / tiny.name).resolve())
    # a hub id named by the card is not fetched unless asked for
    (ckpt / "README.md").write_text("---\nbase_model: some-org/some-model\n---\n")
    with pytest.raises(pytest.UsageError, match="names base_model 'some-org/some-model', which is not a local directory"):
        session_for(ckpt, tmp_path)


def test_quanto_checkpoint_missing_a_layer_is_refused(tiny, checkpoints, tmp_path):
    from safetensors.torch import load_file, save_file

    ckpt = tmp_path / "quanto-4"
    shutil.copytree(checkpoints / "quanto-4", ckpt)
    tensors = load_file(str(ckpt / "model.safetensors"))
    save_file({k: v for k, v in tensors.items() if ".layers.1.mlp.up_proj." not in k}, str(ckpt / "model.safetensors"))
    session = session_for(ckpt, tmp_path, base=str(tiny))
    (variant,) = session.variants
    with pytest.raises(VariantError, match=r"lacks the quantized weights of 1 layers \(first: model.layers.1.mlp.up_proj\)"):
        session.kl_to_base(variant)
    assert "lacks the quantized weights" in session.variant_info[variant.id]["error"]


def test_ambiguous_names_and_malformed_configs_are_usage_errors(tiny, checkpoints, tmp_path):
    for sub in ("a", "b"):
        shutil.copytree(checkpoints / "bnb-8", tmp_path / sub / "final")
    with pytest.raises(pytest.UsageError, match="are both named 'final'"):
        session_for(f"{tmp_path / 'a' / 'final'},{tmp_path / 'b' / 'final'}", tmp_path, base=str(tiny))
    other = tmp_path / "elsewhere" / tiny.name
    shutil.copytree(tiny, other)
    with pytest.raises(pytest.UsageError, match=f"two models would share the test id '{tiny.name}'"):
        session_for(f"{other},{checkpoints / 'bnb-8'}", tmp_path, base=str(tiny))
    with pytest.raises(pytest.UsageError, match="is itself quantized"):
        session_for(checkpoints / "bnb-8", tmp_path, base=str(checkpoints / "bnb-4"))
    broken = tmp_path / "broken"
    shutil.copytree(checkpoints / "gptq-4", broken)
    config = json.loads((broken / "config.json").read_text())
    del config["quantization_config"]["bits"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(pytest.UsageError, match="its gptq quantization_config has no 'bits'"):
        session_for(broken, tmp_path, base=str(tiny))


def test_no_base_and_unknown_format_are_usage_errors(checkpoints, tmp_path):
    with pytest.raises(pytest.UsageError, match=r"pre-quantized checkpoint \(gptq, 4 bits\); name the full-precision"):
        session_for(checkpoints / "gptq-4", tmp_path)
    aqlm = tmp_path / "aqlm"  # awq is loaded now (test_awq.py): aqlm is not
    shutil.copytree(checkpoints / "bnb-4", aqlm)
    config = json.loads((aqlm / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "aqlm", "bits": 4}
    (aqlm / "config.json").write_text(json.dumps(config))
    with pytest.raises(pytest.UsageError, match="quant_method 'aqlm', which pytest-qrel does not load"):
        session_for(aqlm, tmp_path, base="zoo-xs")


def _run_suite(pytester, *args) -> str:
    """The shipped KL suite, as a user runs it; its terminal output."""
    result = pytester.runpytest("-p", "no:cacheprovider", "--qrel-cache-dir=cache", "-k", "test_kl_to_base", *args)
    return result.stdout.str()


def test_checkpoint_of_another_model_and_pickle_checkpoint_fail_alone(tiny, checkpoints, tmp_path, pytester):
    pickled = tmp_path / "pickled"
    shutil.copytree(checkpoints / "bnb-8", pickled)
    st = next(pickled.glob("*.safetensors"))
    st.rename(pickled / "pytorch_model.bin")
    good = checkpoints / "bnb-8"
    out = _run_suite(pytester, f"--qrel-models={good},{pickled}", f"--qrel-base={tiny}")
    assert "1 failed, 1 passed" in out, out[-3000:]
    assert "has only pickle weights" in out and "--qrel-allow-pickle" in out
    # zoo-xs is not what this checkpoint quantized
    out = _run_suite(pytester, f"--qrel-models={good}", "--qrel-base=zoo-xs")
    assert "is not a quantization of" in out and "hidden_size 64 != 16" in out, out[-3000:]
    assert "1 failed" in out
