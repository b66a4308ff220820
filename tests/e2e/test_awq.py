"""AWQ through gptqmodel on CPU: better than round-to-nearest at 2 bits, KL ordered by bits,
RTN-fallback layers reported out of the coverage, cached and reloaded bit-identically, and a
checkpoint gptqmodel saved loaded as a pre-quantized variant."""

import json
import sys

import pytest
import torch

from helpers import run_session, session_for
from pytest_qrel.models import load_base, zoo_dir
from pytest_qrel.quant import get_backend
from pytest_qrel.results import coverage_problem

GROUP = "32"
SAMPLES = "64"


@pytest.fixture(scope="module")
def zoo_m(tmp_path_factory):
    """{variant id: (KL, info)} of awq at every bit-width and rtn at 2 bits on zoo-m."""
    session = session_for("zoo-m", tmp_path_factory.mktemp("awq-m"), methods="awq,rtn", bits="2,3,4,8",
                          group_size=GROUP, no_cache=True, calibration_samples=SAMPLES)
    return run_session(session)


def test_kl_ordered_by_bits_and_eight_bits_near_lossless(zoo_m):
    kls = [zoo_m[f"zoo-m-awq-{b}b-g32"][0] for b in (2, 3, 4, 8)]
    assert kls == sorted(kls, reverse=True) and len(set(kls)) == 4, kls
    assert kls[-1] <= 1e-4
    for b in (2, 3, 4, 8):
        info = zoo_m[f"zoo-m-awq-{b}b-g32"][1]
        # asymmetric (a zero point per group): paper 002's b + (16 + b) / G
        assert info["effective_bits"] == pytest.approx(b + (16 + b) / 32)
        assert info["coverage"] == 1.0 and info["skipped"] == {}


def test_awq_beats_round_to_nearest_at_two_bits(zoo_m):
    # measured with 64 calibration documents, groups of 32: zoo-m 0.81 vs 1.35 nats, zoo-l 0.95 vs 1.40
    assert zoo_m["zoo-m-awq-2b-g32"][0] < 0.8 * zoo_m["zoo-m-rtn-2b-g32"][0]


def test_awq_beats_round_to_nearest_at_two_bits_on_zoo_l(tmp_path):
    measured = run_session(session_for("zoo-l", tmp_path, methods="awq,rtn", bits="2", group_size=GROUP,
                                       no_cache=True, calibration_samples=SAMPLES))
    assert measured["zoo-l-awq-2b-g32"][0] < 0.8 * measured["zoo-l-rtn-2b-g32"][0]


def test_rtn_fallback_layers_are_reported_out_of_coverage_and_cached(tmp_path, monkeypatch):
    import gptqmodel.utils.fallback as fallback

    real = fallback.should_use_fallback
    calls = []

    def mlp_falls_back(*args, **kwargs):
        # gptqmodel asks once per scaling group, in order: attention (q, k, v), o, (gate, up), down
        calls.append(None)
        return len(calls) in (3, 4) or real(*args, **kwargs)

    monkeypatch.setattr(fallback, "should_use_fallback", mlp_falls_back)
    first = run_session(session_for("zoo-m", tmp_path, methods="awq", bits="4", group_size=GROUP,
                                    calibration_samples="16"))
    kl, info = first["zoo-m-awq-4b-g32"]
    mlp = ["model.layers.0.mlp.down_proj", "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"]
    assert sorted(info["skipped"]) == mlp
    assert all("round-to-nearest, not AWQ" in why for why in info["skipped"].values())
    assert info["quantized_layers"] == 7  # still stored quantized: their bits count
    assert 0 < info["coverage"] < 1
    assert "below the minimum coverage" in coverage_problem(info, 1.0)
    monkeypatch.setattr(fallback, "should_use_fallback", real)
    again = run_session(session_for("zoo-m", tmp_path, methods="awq", bits="4", group_size=GROUP,
                                    calibration_samples="16"))
    assert again["zoo-m-awq-4b-g32"][1]["cache"] == "hit"
    assert again["zoo-m-awq-4b-g32"][1]["skipped"] == info["skipped"]
    assert again["zoo-m-awq-4b-g32"][0] == kl


def test_cached_variant_reloads_bit_identically(tmp_path):
    first = session_for("zoo-m", tmp_path, methods="awq", bits="4", group_size=GROUP, calibration_samples="16")
    (variant,) = first.variants
    kl = first.kl_to_base(variant)
    state = {k: v.clone() for k, v in first.store.quantized(variant).state_dict().items()}
    assert first.variant_info[variant.id]["cache"] == "miss"
    again = session_for("zoo-m", tmp_path, methods="awq", bits="4", group_size=GROUP, calibration_samples="16")
    assert again.kl_to_base(variant) == kl
    assert again.variant_info[variant.id]["cache"] == "hit"
    reloaded = again.store.quantized(variant).state_dict()
    assert reloaded.keys() == state.keys()
    assert all(torch.equal(reloaded[k], v) for k, v in state.items())
    assert not first.variant_info[variant.id]["skipped"]


def test_prequantized_awq_checkpoint_is_gated(tmp_path, pytester):
    from gptqmodel import BACKEND, GPTQModel, QuantizeConfig

    from pytest_qrel.data import calibration_texts
    from pytest_qrel.quant.gptq import configure_workers

    configure_workers()
    base = load_base("zoo-m", str(zoo_dir() / "zoo-m"), torch.device("cpu"))
    ckpt = tmp_path / "zoo-m-awq"
    config = QuantizeConfig(bits=4, group_size=32, quant_method="awq", format="gemm", sym=False,
                            offload_to_disk=False)
    model = GPTQModel.load(base.path, config, device="cpu", dtype=torch.float16)
    model.quantize(calibration_texts()[:16], batch_size=8, backend=BACKEND.AWQ_TORCH)
    model.save(str(ckpt))  # gptqmodel's own save: quant_method awq in config.json
    assert json.loads((ckpt / "config.json").read_text())["quantization_config"]["quant_method"] == "awq"
    session = session_for(ckpt, tmp_path, base="zoo-m")
    (variant,) = session.variants
    assert (variant.method, variant.bits, variant.group_size) == ("awq", 4, 32)
    kl, info = run_session(session)[variant.id]
    assert info["cache"] == "prequantized" and info["quantized_layers"] == 7 and 0 < kl < 0.05
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "test_kl_to_base", f"--qrel-models={ckpt}",
                                "--qrel-base=zoo-m", "--qrel-no-cache")
    assert "1 passed" in result.stdout.str(), result.stdout.str()[-3000:]


def test_named_without_gptqmodel_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gptqmodel", None)  # importlib.util.find_spec now finds nothing
    with pytest.raises(pytest.UsageError, match=r"--qrel-methods: awq needs gptqmodel, which is not installed: "
                                                r"pip install 'pytest-qrel\[gptq\]'"):
        session_for("zoo-m", tmp_path, methods="awq")
    assert get_backend("awq").describe()["extra"] == "gptq"


def test_rows_gptqmodel_cannot_clip_are_refused_with_the_reason():
    from pytest_qrel.errors import QuantizationError

    base = load_base("zoo-s", str(zoo_dir() / "zoo-s"), torch.device("cpu"))  # hidden size 32
    with pytest.raises(QuantizationError, match=r"awq cannot quantize zoo-s: its layer model.layers.0.self_attn.v_proj "
                                                r"has 32 output rows, and gptqmodel's AWQ clipping search needs a multiple of 64"):
        get_backend("awq").quantize(base, 4, 32, calibration=["some text"])
