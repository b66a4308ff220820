"""A user's own model gets no silent gaps (issue 37): the properties whose tests were not run
for want of data are named with what would run them (terminal, report.md, results.json, the
verdict matrix); a KL text, task or QA file the model's tokenizer reads mostly as its unknown
token is not checked, with the share; a model outside the zoo without --qrel-kl-text is
measured on the shipped prose, and the report says so.

The models are built here: a tiny untrained Llama with a word-level tokenizer of 40 words (its
own small vocabulary), and one with the zoo's byte-level tokenizer, both saved as safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_qrel.models import zoo_dir

WORDS = ("the cat dog sat on a mat and ran to house big small red blue green it was is in of he she they "
         "saw we you went home day night sun moon tree bird sang fish swam water cold warm").split()
RUN = ["--qrel-methods=rtn", "--qrel-bits=8", "--qrel-cache-dir=cache", "-p", "no:randomly"]


def _llama(path: Path, vocab_size: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                      tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(path)  # safetensors


@pytest.fixture(scope="module")
def word_model(tmp_path_factory) -> Path:
    """A model with its own small vocabulary: a transformers WordLevel tokenizer of WORDS."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("user") / "word-model"
    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(path)
    _llama(path, len(vocab))
    return path


@pytest.fixture(scope="module")
def bpe_model(tmp_path_factory) -> Path:
    """A model outside the zoo with the zoo's byte-level tokenizer (no unknown tokens)."""
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("user") / "bpe-model"
    tok = AutoTokenizer.from_pretrained(zoo_dir() / "zoo-xs")
    tok.save_pretrained(path)
    _llama(path, len(tok))
    return path


def _kl(report: Path) -> dict:
    doc = json.loads((report / "results.json").read_text())
    return next(r for r in doc["results"] if r["metric"] == "kl_to_base")


def test_a_word_level_model_is_told_what_was_not_run_and_its_kl_is_not_checked(pytester, word_model):
    result = pytester.runpytest(f"--qrel-models={word_model}", *RUN, "--qrel-kl-tokens=1024")
    name = word_model.name
    result.stdout.fnmatch_lines([
        "verdicts (which checkpoints may ship):",
        "variant * kl * calibration * confidence * robustness * scaling",
        f"{name}-rtn-8b-g64 * not checked * not run (name its tasks with --qrel-tasks=…) * not run (give --qrel-qa-file=…) *",
    ])
    result.stdout.fnmatch_lines([
        "KL text: the shipped prose alice_in_wonderland.txt *; 7?.?% of its tokens are the tokenizer's unknown token",
    ])
    result.stdout.fnmatch_lines([
        f"qrel: calibration, confidence: not run for {name}: name its tasks with --qrel-tasks=…",
        f"qrel: robustness: not run for {name}: give --qrel-qa-file=…",
    ])
    kl = _kl(pytester.path / "qrel-report")
    assert kl["status"] == "skip"
    share = kl["kl_unknown_share"]
    assert share > 0.5
    assert kl["reason"].startswith(f"{share:.1%} of the tokens of the KL text (the shipped prose alice_in_wonderland.txt")
    md = (pytester.path / "qrel-report" / "report.md").read_text()
    assert f"- calibration, confidence: not run for {name}: name its tasks with --qrel-tasks=…" in md
    assert f"- robustness: not run for {name}: give --qrel-qa-file=…" in md
    assert "not run (give --qrel-qa-file=…" in md  # the verdict matrix's cell
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    assert doc["not_run"] == {name: {"calibration": kl_why("tasks"), "confidence": kl_why("tasks"),
                                     "robustness": kl_why("qa")}}


def kl_why(kind: str) -> str:
    from pytest_qrel.matrix import NEEDS_QA, NEEDS_TASKS

    return NEEDS_TASKS if kind == "tasks" else NEEDS_QA


def test_the_same_model_on_text_of_its_own_vocabulary_gets_a_checked_kl(pytester, word_model):
    import random

    rng = random.Random(0)
    (pytester.path / "own.txt").write_text(" ".join(rng.choice(WORDS) for _ in range(3000)))
    result = pytester.runpytest(f"--qrel-models={word_model}", *RUN, "--qrel-kl-text=own.txt", "--qrel-kl-context=64",
                                "-k", "test_kl_to_base")
    result.stdout.fnmatch_lines(["KL text: file own.txt, windows of 64 tokens; *; 0.0% of its tokens are the "
                                 "tokenizer's unknown token"])
    kl = _kl(pytester.path / "qrel-report")
    assert kl["status"] in ("pass", "fail"), kl
    assert kl["kl_unknown_share"] == 0.0


def test_a_model_outside_the_zoo_is_measured_on_the_shipped_prose(pytester, bpe_model):
    result = pytester.runpytest(f"--qrel-models={bpe_model}", *RUN, "--qrel-kl-tokens=1024", "-k", "test_kl_to_base")
    result.assert_outcomes(passed=1)
    kl = _kl(pytester.path / "qrel-report")
    assert kl["kl_text"] == ("the shipped prose alice_in_wonderland.txt (Alice's Adventures in Wonderland, "
                                       "public domain), windows of 128 tokens")
    assert kl["kl_unknown_share"] == 0.0
    md = (pytester.path / "qrel-report" / "report.md").read_text()
    assert "- KL text: the shipped prose alice_in_wonderland.txt (Alice's Adventures in Wonderland, public domain)" in md


def test_tasks_and_a_qa_file_the_tokenizer_cannot_read_are_not_checked(pytester, word_model):
    """Named tasks and a QA file run (nothing is listed as not run), but the word-level model
    reads the zoo's questions mostly as its unknown token: every gate of them is not checked."""
    rows = [{"prompt": f"question : where does person {n} live ? answer :", "answers": ["paris"]}
            for n in ("anna", "boris", "chen", "dara", "emil", "fatima")]
    (pytester.path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pytester.runpytest(f"--qrel-models={word_model}", *RUN, "--qrel-tasks=zoo_recall", "--qrel-task-limit=8",
                       "--qrel-qa-file=qa.jsonl", "--qrel-perturbations=char_swap", "--qrel-samples=1",
                       "--qrel-fuzz-examples=2", "-k", "not test_kl_to_base and not scaling")
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    assert "not_run" not in doc
    by_property: dict[str, list[dict]] = {}
    for r in doc["results"]:
        by_property.setdefault(r["property"], []).append(r)
    assert set(by_property) == {"calibration", "confidence", "robustness"}
    for r in by_property["calibration"] + by_property["confidence"]:
        assert r["status"] == "skip", r
        assert "of the tokens of task zoo_recall are the tokenizer's unknown token (more than 5%)" in r["reason"], r
    for r in by_property["robustness"]:
        assert r["status"] == "skip", r
        assert "of the tokens of the QA prompts and answers (qa) are the tokenizer's unknown token" in r["reason"], r


def test_under_xdist_the_controller_learns_what_its_workers_did_not_run(pytester, word_model):
    """The controller of -n collects nothing: the workers' deselections reach it at their end
    (tests a user deselects with -k are the user's choice, not a gap: not listed)."""
    result = pytester.runpytest(f"--qrel-models={word_model}", *RUN, "--qrel-kl-tokens=256", "-n", "2")
    result.stdout.fnmatch_lines([
        f"qrel: calibration, confidence: not run for {word_model.name}: name its tasks with --qrel-tasks=…",
        f"qrel: robustness: not run for {word_model.name}: give --qrel-qa-file=…",
    ])
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    assert list(doc["not_run"][word_model.name]) == ["calibration", "confidence", "robustness"]
