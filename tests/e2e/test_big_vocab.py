"""The Llama-3-sized vocabulary checkpoint (fixtures/build_big_vocab.py) at test size: it
loads offline through the plugin's loader, its tokenizer has exactly 128,256 entries and
reads the zoo's held-out text as real words, and the KL suite runs on it."""

import json

from pytest_qrel.fixtures.build_big_vocab import LLAMA3_VOCAB, build_small_checkpoint

from pytest_qrel.data import heldout_texts
from pytest_qrel.models import load_base


def test_small_big_vocab_checkpoint_loads_offline_with_real_tokens(tmp_path):
    import torch

    path = build_small_checkpoint(tmp_path / "big-vocab")
    config = json.loads((path / "config.json").read_text())
    assert (
        config["vocab_size"] == LLAMA3_VOCAB and config["tie_word_embeddings"] is False
    )
    assert config["bos_token_id"] == 1 and any(path.glob("*.safetensors"))
    base = load_base("big-vocab", str(path), torch.device("cpu"))
    assert len(base.tokenizer) == LLAMA3_VOCAB
    assert base.model.get_output_embeddings().weight.shape == (LLAMA3_VOCAB, 64)
    ids = [i for text in heldout_texts() for i in base.tokenizer(text)["input_ids"]]
    assert base.tokenizer.unk_token_id not in ids and ids.count(
        base.tokenizer.bos_token_id
    ) == len(heldout_texts())


def test_kl_suite_runs_on_the_small_big_vocab_checkpoint(pytester):
    build_small_checkpoint(pytester.path / "big-vocab")
    text = pytester.path / "text.txt"
    text.write_text("\n".join(heldout_texts()[:40]))
    result = pytester.runpytest(
        "--qrel-models=./big-vocab",
        "--qrel-methods=hqq",
        "--qrel-bits=8",
        "--qrel-no-cache",
        "-p",
        "no:randomly",
        "-k",
        "test_kl_to_base",
        f"--qrel-kl-text={text}",
        "--qrel-kl-context=64",
        "--qrel-kl-tokens=256",
        "--qrel-kl-threshold=8:9",
    )
    result.assert_outcomes(passed=1)
    (record,) = json.loads(
        (pytester.path / "qrel-report" / "results.json").read_text()
    )["results"]
    assert (
        record["tokens"] == 256
        and record["kl_topk"] == 1024
        and 0 <= record["kl_lower"] <= record["kl_upper"]
    )


def test_topk_bounds_contain_the_exact_kl_at_a_real_vocabulary(tmp_path):
    """On 128,256 tokens: the stored top-k bounds hold the exact full-vocabulary KL; a random
    model's nearly flat outputs leave them wide, so the gate recomputes exactly."""
    from helpers import session_for

    from pytest_qrel.measures.kl import KL_MAX_WIDTH

    path = build_small_checkpoint(tmp_path / "big-vocab")
    text = tmp_path / "text.txt"
    text.write_text("\n".join(heldout_texts()[:60]))
    opts = {"methods": "hqq", "bits": "8", "kl_text": str(text), "kl_context": "64", "kl_tokens": "128",
            "kl_threshold": "8:9"}
    exact = session_for(path, tmp_path / "all", kl_topk="all", **opts)
    truth = exact.measures["kl"].outcome(exact.variants[0])[0].measurement
    for k in ("16", "1024"):
        session = session_for(path, tmp_path / k, kl_topk=k, **opts)
        got = session.measures["kl"].outcome(session.variants[0])[0].measurement
        stored = got.detail["kl_stored_bound_width"]
        assert stored > KL_MAX_WIDTH and got.detail["kl_decided"] == "exact"
        assert got.detail["kl_stored_lower"] <= truth.value + 1e-9 <= got.detail["kl_stored_upper"] + 2e-9
        assert got.value == truth.value and got.detail["tokens"] == truth.detail["tokens"] == 128
