"""Models that are not Llama: OPT (nn.Linear) works, GPT-2 (Conv1D) fails clearly for hqq."""

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
    result = pytester.runpytest_subprocess(
        "--qrel-models=./tiny-opt", "--qrel-methods=hqq,bnb", "--qrel-bits=4,8", "--qrel-kl-threshold=4:10,8:10"
    )
    result.assert_outcomes(passed=4)
    # 2 layers x (q, k, v, out_proj, fc1, fc2) = 12 linear layers, every one quantized
    result.stdout.fnmatch_lines(["tiny-opt-hqq-4b-g64 * 12/12 * PASS", "tiny-opt-bnb-8b * 12/12 * PASS"])


def test_gpt2_conv1d_gives_a_clear_error_for_hqq(pytester, vocab):
    cfg = GPT2Config(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=128)
    _save(GPT2LMHeadModel(cfg), pytester.path / "tiny-gpt2")
    result = pytester.runpytest_subprocess("--qrel-models=./tiny-gpt2", "--qrel-methods=hqq", "--qrel-bits=4")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["hqq quantized no layer of tiny-gpt2 (GPT2LMHeadModel): it has 0 torch.nn.Linear layers outside the output head"]
    )
