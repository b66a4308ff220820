"""Models that are not Llama: OPT (nn.Linear) and GPT-2 (transformers Conv1D projections)."""

import shutil

import pytest
from transformers import GPT2Config, GPT2LMHeadModel, OPTConfig, OPTForCausalLM

from pytest_qrel.models import zoo_dir


def _save(model, path):
    model.save_pretrained(path, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(zoo_dir() / "zoo-xs" / f, path / f)
    return path


@pytest.fixture(scope="module")
def vocab():
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(zoo_dir() / "zoo-xs"))


def test_opt_checkpoint_runs_through_both_backends(pytester, vocab):
    cfg = OPTConfig(vocab_size=vocab, hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                    word_embed_proj_dim=64, max_position_embeddings=128)
    _save(OPTForCausalLM(cfg), pytester.path / "tiny-opt")
    result = pytester.runpytest(
        "--qrel-models=./tiny-opt", "--qrel-methods=hqq,bnb", "--qrel-bits=4,8", "--qrel-kl-threshold=4:10,8:10",
        "-k", "test_kl_to_base")
    result.assert_outcomes(passed=4)
    # 2 layers x (q, k, v, out_proj, fc1, fc2) = 12 linear layers, every one quantized
    result.stdout.fnmatch_lines(["tiny-opt-hqq-4b-g64 * 12/12 * PASS", "tiny-opt-bnb-8b * 12/12 * PASS"])


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory, vocab):
    import torch

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=128)
    return _save(GPT2LMHeadModel(cfg), tmp_path_factory.mktemp("gpt2") / "tiny-gpt2")


@pytest.mark.parametrize("method", ["rtn", "hqq", "quanto"])
def test_gpt2_conv1d_projections_are_quantized_and_kl_ordered_by_bits(tiny_gpt2, tmp_path, method):
    from helpers import session_for

    session = session_for(tiny_gpt2, tmp_path, no_cache=True, methods=method, bits="2,4,8")
    kl, infos = [], []
    for variant in session.variants:
        kl.append(session.kl_to_base(variant))
        infos.append(session.variant_info[variant.id])
    # 2 blocks x (c_attn, c_proj, c_fc, mlp c_proj), all Conv1D: every one quantized
    assert [(i["quantized_layers"], i["linear_layers"], i["coverage"]) for i in infos] == [(8, 8, 1.0)] * 3
    assert kl[0] > kl[1] > kl[2] > 0


def test_gpt2_through_the_cli_quantizes_every_projection(pytester, tiny_gpt2):
    import shutil

    shutil.copytree(tiny_gpt2, pytester.path / "tiny-gpt2")
    result = pytester.runpytest("--qrel-models=./tiny-gpt2", "--qrel-methods=hqq,bnb", "--qrel-bits=4",
                                           "--qrel-no-cache", "-k", "test_kl_to_base")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["tiny-gpt2-bnb-4b-g64 * 8/8 * PASS", "tiny-gpt2-hqq-4b-g64 * 8/8 * PASS"])


def test_smoothquant_on_gpt2_smooths_nothing_and_does_not_read_as_smoothquant(tiny_gpt2, tmp_path):
    # no Llama-style block to fold into: every layer is plain W8A8, which must not pass as SmoothQuant
    # (as awq's RTN-fallback layers do not pass as AWQ)
    from helpers import run_session, session_for
    from pytest_qrel.results import coverage_problem

    (kl, info), = run_session(session_for(tiny_gpt2, tmp_path, no_cache=True, methods="smoothquant", bits="8")).values()
    assert info["quantized_layers"] == 8 and info["coverage"] == 0.0  # stored W8A8: its bits count
    assert len(info["skipped"]) == 8 and all("without smoothing" in why for why in info["skipped"].values())
    assert "below the minimum coverage" in coverage_problem(info, 1.0)
