"""Real runs of the robustness suite (paper 000 §3.2, Fig. 3) and its fuzzing test: a 2-bit
variant that loses the base's answers fails, an 8-bit one passes; test ids per variant,
perturbation and intensity; results.json and the report carry both models' accuracy and
AUROC per perturbation, the unknown-word share (none on the zoo's BPE) and the shrunk fuzzing example. (That the
draws do not depend on what else is sampled is tests/unit/test_generation.py's.)

These run pytest in process (tests/conftest.py keeps the libraries imported between runs)."""

import json

ROBUST = ["-p", "no:randomly", "--qrel-cache-dir=cache", "--qrel-models=zoo-l", "--qrel-methods=hqq", "--qrel-bits=2,8"]


def _records(pytester, metric=None):
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    return [r for r in doc["results"] if r["property"] == "robustness" and metric in (None, r["metric"])]


def test_two_bit_variant_fails_under_perturbation_and_fuzzing_and_eight_bit_passes(pytester):
    result = pytester.runpytest(*ROBUST, "-v", "-k", "perturbation_robustness or fuzzed",
                                           "--qrel-perturbations=word_swap,char_swap", "--qrel-intensities=4",
                                           "--qrel-fuzz-examples=4", "--qrel-fuzz-batch=8")
    out = result.stdout.str()
    _check_fuzzing(pytester, result)
    # the 2-bit variant keeps little of what the base still answers when two words trade places
    result.stdout.fnmatch_lines([
        "*test_perturbation_robustness[[]zoo-l-hqq-2b-g64-word_swap-i4] FAILED*",
        # under char_swap the base, trained on noisy questions, keeps enough right answers for the
        # gate to be checked (on the word-level zoo it answered almost nothing: not checked)
        "*test_perturbation_robustness[[]zoo-l-hqq-2b-g64-char_swap-i4] FAILED*",
        "*test_perturbation_robustness[[]zoo-l-hqq-8b-g64-word_swap-i4] PASSED*",
        "*test_perturbation_robustness[[]zoo-l-hqq-8b-g64-char_swap-i4] PASSED*",
        "*zoo-l-hqq-2b-g64: accuracy_drop = *, expected <= 0.05 (significant: adjusted p = *",
    ])
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "model zoo-l, robustness (paper 000 Fig. 3): accuracy / AUROC(-entropy) of sampled answers; *",
        "perturbation * unknown words * base acc / auroc * hqq-2b-g64 acc / auroc * hqq-8b-g64 acc / auroc",
        "unperturbed * - * 0.* / 0.* * 0.* / * 0.* / 0.*",
        "char_swap i4 *% of * 0.* / *",
        "word_swap i4 * - * 0.* / *",
        "worst case of zoo-l-hqq-2b-g64 at intensity 4: *",
    ])
    records = [r for r in _records(pytester) if r["metric"] != "answer_agreement"]
    assert {r["metric"] for r in records} == {"accuracy_drop", "auroc_drop", "robust_accuracy_drop", "robust_auroc_drop"}
    word_swap = [r for r in records if r["metric"] != "answer_agreement" and r["variant"] == "zoo-l-hqq-2b-g64" and r.get("perturbation") == "word_swap"
                 and r["metric"] == "accuracy_drop"]
    (r,) = word_swap
    comp = r["comparison"]
    # the record's value is what the comparison says: base accuracy minus the variant's, same prompts
    assert r["value"] == comp["base"]["accuracy"] - comp["quantized"]["accuracy"] or abs(
        r["value"] - (comp["base"]["accuracy"] - comp["quantized"]["accuracy"])) < 1e-9
    assert r["status"] == "fail" and r["adjusted_pvalue"] <= 0.05 and r["intensity"] == 4 and r["prompts"] == 100
    assert comp["base"]["accuracy"] < comp["base_unperturbed"]["accuracy"]
    # a character edit makes new words, which the zoo's byte-level BPE spells without an unknown token
    char = next(r for r in records if r.get("perturbation") == "char_swap" and "perturbed_words" in r)
    assert char["perturbed_words"] > 0 and char["unknown_words"] == 0
    assert all(r["status"] in ("pass", "skip") for r in records if r["variant"] == "zoo-l-hqq-8b-g64")
    assert "zoo-l-hqq-8b-g64: accuracy_drop" not in out
    assert (pytester.path / "qrel-report" / "report.md").read_text().count("zoo-l: robustness") == 1


def _check_fuzzing(pytester, result):
    """The 2-bit variant's greedy answers disagree with the base's; hypothesis shrinks the batch."""
    result.stdout.fnmatch_lines([
        "*test_fuzzed_answers_agree[[]zoo-l-hqq-2b-g64] FAILED*",
        "*test_fuzzed_answers_agree[[]zoo-l-hqq-8b-g64] PASSED*",
        "*zoo-l-hqq-2b-g64: answer_agreement = *, expected >= 0.5*",
        "fuzzing zoo-l-hqq-2b-g64: greedy answers agree with the base's on * of its first failing batch of 8 perturbed "
        "prompts (at least 0.500 required) -> FAIL",
        "  shrunk example (*): 'question : * ? answer :' -> base *, variant *",
    ])
    failed, passed = (next(r for r in _records(pytester, "answer_agreement") if r["variant"] == f"zoo-l-hqq-{b}b-g64")
                      for b in (2, 8))
    assert failed["status"] == "fail" and failed["value"] < 0.5
    from pytest_qrel.measures.fuzz import FUZZ_SHRINK_RUNS

    assert failed["fuzz_examples"] < failed["batches_run"] <= failed["fuzz_examples"] + FUZZ_SHRINK_RUNS  # it shrank, within budget
    shrunk = failed["shrunk_example"]
    assert shrunk and all(not e["agree"] and e["base_answer"] != e["answer"] for e in shrunk)
    assert len({e["prompt"] for e in shrunk}) == len(shrunk)  # distinct prompts, each once
    assert all(e["perturbation"] in ("char_swap", "word_swap") and e["perturbed"].endswith("answer :") for e in shrunk)
    assert passed["status"] == "pass" and passed["value"] >= 0.5 and "shrunk_example" not in passed


def test_the_fuzzing_test_alone_still_writes_every_report_file(pytester):
    """`-k fuzzed` (a documented invocation) has no unperturbed robustness row: it ended in
    KeyError: 'unperturbed' in the report writer, with no report.md (issue 15)."""
    result = pytester.runpytest("-p", "no:randomly", "--qrel-cache-dir=cache", "--qrel-models=zoo-xs",
                                "--qrel-methods=hqq", "--qrel-bits=8", "--qrel-fuzz-examples=2", "--qrel-fuzz-batch=4",
                                "--qrel-qa-limit=8", "--qrel-allow-unchecked", "-k", "fuzzed")
    assert "KeyError" not in result.stdout.str() and "could not be drawn" not in result.stdout.str()
    report = pytester.path / "qrel-report"
    assert {"results.json", "report.md", "results.csv"} <= {p.name for p in report.iterdir()}
    result.stdout.fnmatch_lines(["*= qrel reliability report =*", "fuzzing zoo-xs-hqq-8b-g64: greedy answers agree*",
                                 "qrel robustness: 0 checked (0 passed, 0 failed), 1 not checked, 0 errors"])
    assert "fuzzing zoo-xs-hqq-8b-g64" in (report / "report.md").read_text()
    # two batches of four prompts could not catch a variant agreeing 0.1 below the rate: not checked, never passed
    (record,) = json.loads((report / "results.json").read_text())["results"]
    assert record["status"] == "skip" and record["reason"].startswith("2 batches of 4 prompts would let a variant")
