"""GGUF files of the zoo (written by the gguf package's own writer and Python quantizers)
loaded through transformers' GGUF loader as variants of their base: KL ordered by the types'
bits, bits and totals from the file, an embedded tokenizer that is not the base's an ERROR,
and the calibration suite's scores equal to lm-eval's HFLM loading the same file its own way."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import run_session, session_for
from pytest_qrel.errors import VariantError
from pytest_qrel.models import load_base, zoo_dir
from pytest_qrel.quant.gguf import bits_per_weight

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/gguf_files.py
from gguf_files import PYTHON_TYPES, write_gguf

gguf = pytest.importorskip("gguf", reason="GGUF files need the gguf extra")


@pytest.fixture(scope="module")
def zoo_s_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf")
    return {t: write_gguf(zoo_dir() / "zoo-s", t, out / f"zoo-s-{t}.gguf") for t in PYTHON_TYPES}


def test_kl_is_ordered_by_the_types_bits_and_bits_come_from_the_file(zoo_s_files, tmp_path):
    session = session_for(",".join(str(p) for p in zoo_s_files.values()), tmp_path, base="zoo-s",
                          kl_threshold="4:9,5:9,8:9", no_cache=True)
    measured = run_session(session)
    by_type = {t: measured[f"zoo-s-gguf-{v.bits}b-g32-ckpt-zoo-s-{t}.gguf"] for t in PYTHON_TYPES
               for v in session.variants if v.checkpoint == str(zoo_s_files[t])}
    # fewer bits per weight, more KL: Q8_0 8.5 < Q5_1 6 < Q5_0 5.5 < Q4_1 5 < Q4_0 4.5 < MXFP4 4.25
    order = sorted(PYTHON_TYPES, key=bits_per_weight, reverse=True)
    kls = [by_type[t][0] for t in order]
    assert kls == sorted(kls) and kls[0] < 1e-3 < kls[-1], dict(zip(order, kls))
    for qtype, (_, info) in by_type.items():
        reader = gguf.GGUFReader(str(zoo_s_files[qtype]))
        assert info["cache"] == "prequantized"
        assert info["effective_bits"] == info["storage_bits"] == bits_per_weight(qtype)
        assert info["quantized_layers"] == info["linear_layers"] == 7 and info["coverage"] == 1.0  # one block
        # every tensor at the bits it is stored in: the file's tensor bytes (the tied head stored once)
        assert info["total_bits"] == 8 * sum(int(t.n_bytes) for t in reader.tensors)
        assert info["state_dict_bytes"] == sum(int(t.n_bytes) for t in reader.tensors)


def test_a_tokenizer_that_is_not_the_bases_makes_the_variant_an_error(tmp_path):
    def swap(tokens: list[str]) -> list[str]:
        tokens[40], tokens[41] = tokens[41], tokens[40]
        return tokens

    path = write_gguf(zoo_dir() / "zoo-s", "Q8_0", tmp_path / "swapped.gguf", tokens=swap)
    session = session_for(path, tmp_path, base="zoo-s", no_cache=True)
    (variant,) = session.variants
    with pytest.raises(VariantError, match=r"^--qrel-models: .*swapped.gguf does not tokenize as its base .*zoo-s: "
                                           r"its tokenizer gives '.*' the id 40, the base's 41$"):
        session.kl_to_base(variant)


def test_results_carry_the_files_bits_and_a_mix_of_types_is_said(pytester, tmp_path):
    q8 = write_gguf(zoo_dir() / "zoo-s", "Q8_0", tmp_path / "zoo-s-Q8_0.gguf")
    mix = write_gguf(zoo_dir() / "zoo-s", "Q4_0", tmp_path / "zoo-s-mix.gguf", {"ffn_down": "Q8_0"})
    result = pytester.runpytest(f"--qrel-models={q8},{mix}", "--qrel-base=zoo-s", "--qrel-no-cache",
                                "-p", "no:randomly", "-k", "test_kl_to_base")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["note: zoo-s-gguf-4b-g32-ckpt-zoo-s-mix.gguf: 1 layer quantized with Q8_0 "
                                 "(8.5 bits per weight), not Q4_0, the type most linear weights have*"])
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    variants = {v["id"]: v for v in doc["variants"]}
    one = variants["zoo-s-gguf-8b-g32-ckpt-zoo-s-Q8_0.gguf"]
    assert (one["method"], one["bits"], one["effective_bits"], one["checkpoint"]) == ("gguf", 8, 8.5, str(q8))
    mixed = variants["zoo-s-gguf-4b-g32-ckpt-zoo-s-mix.gguf"]
    assert mixed["bits"] == 4 and 4.5 < mixed["effective_bits"] < 8.5 and len(mixed["regrouped"]) > 0
    assert {r["status"] for r in doc["results"]} == {"pass"}


def test_calibration_scores_equal_lmevals_on_the_same_gguf(tmp_path):
    """lm-eval loads the file its own way (HFLM's gguf_file=); the calibration suite's
    per-choice log-likelihoods on our loaded variant agree within the cross-check's 1e-4."""
    from lm_eval.models.huggingface import HFLM
    from test_lmeval_crosscheck import LIMIT, _lmeval_task

    from pytest_qrel.data.tasks import zoo_task
    from pytest_qrel.measures.choices import score_task

    path = write_gguf(zoo_dir() / "zoo-l", "Q4_0", tmp_path / "zoo-l-Q4_0.gguf")
    session = session_for(path, tmp_path, base="zoo-l", no_cache=True)
    (variant,) = session.variants
    base = load_base("zoo-l", str(zoo_dir() / "zoo-l"), torch.device("cpu"))
    model = session.store.quantized(variant)

    name = "zoo_recall"
    task = _lmeval_task(name)
    lm = HFLM(pretrained=str(tmp_path), gguf_file=path.name, tokenizer=base.tokenizer, batch_size=64, device="cpu",
              dtype="float32")
    responses = lm.loglikelihood(task.instances, disable_tqdm=True)
    by_doc: dict[int, list] = {}
    for inst, (ll, _) in zip(task.instances, responses):
        by_doc.setdefault(inst.doc_id, []).append((inst.idx, ll))
    theirs = np.array([[ll for _, ll in sorted(by_doc[d])] for d in sorted(by_doc)])
    ours_task = zoo_task(name)
    ours_task = type(ours_task)(
        name, ours_task.contexts[:LIMIT], ours_task.continuations[:LIMIT], ours_task.choices[:LIMIT],
        ours_task.labels[:LIMIT], ours_task.stratum, LIMIT,
    )
    ours = score_task(model, base.tokenizer, ours_task)
    assert ours.loglik.shape == theirs.shape == (LIMIT, 4)
    np.testing.assert_allclose(ours.loglik, theirs, atol=1e-4, rtol=0)
    # the quantization shows: the variant's scores are not the base's
    assert np.abs(ours.loglik - score_task(base.model, base.tokenizer, ours_task).loglik).max() > 1e-2
