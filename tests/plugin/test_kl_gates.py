"""The optional KL gates (issue 16) through a real run: the 99th percentile of the per-token
KL and top-1 agreement FAIL a 2-bit variant past them and PASS its 8-bit sibling, in the
terminal and results.json; the p99 gate on too few tokens is *not checked* (never PASS).

Runs pytest in process (tests/conftest.py keeps the libraries imported between runs)."""

import json

KL = ["--qrel-models=zoo-xs", "--qrel-methods=rtn", "--qrel-bits=2,8", "--qrel-kl-threshold=2:9,8:9",
      "--qrel-no-cache", "-p", "no:randomly", "-k", "test_kl_to_base"]


def _records(pytester) -> dict[tuple[int, str], dict]:
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    return {(r["bits"], r["metric"]): r for r in doc["results"]}


def test_tail_and_top1_gates_fail_a_2_bit_variant_and_pass_its_8_bit_sibling(pytester):
    result = pytester.runpytest(*KL, "--qrel-kl-p99-threshold=0.5", "--qrel-top1-threshold=0.9")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["zoo-xs-rtn-2b-g64: kl_p99 = *, expected <= 0.5; top1_agreement = *, expected >= 0.9"])
    records = _records(pytester)
    assert {m for _, m in records} == {"kl_to_base", "kl_p99", "top1_agreement"}
    assert records[2, "kl_to_base"]["status"] == "pass"  # the mean is within 9 nats: the tail and top-1 decide
    assert records[2, "kl_p99"]["status"] == "fail" and records[2, "kl_p99"]["value"] > 0.5
    assert records[2, "top1_agreement"]["status"] == "fail" and records[2, "top1_agreement"]["value"] < 0.9
    for metric in ("kl_to_base", "kl_p99", "top1_agreement"):
        assert records[8, metric]["status"] == "pass"
    assert records[8, "kl_p99"]["value"] < 0.5 and records[8, "top1_agreement"]["value"] > 0.9


def test_the_tail_gate_on_too_few_tokens_is_not_checked(pytester):
    from pytest_qrel.data import heldout_texts

    text = pytester.path / "own.txt"
    text.write_text(" ".join(heldout_texts()))
    # one window of 64 tokens scores 32: their 99th percentile would be their maximum
    result = pytester.runpytest(*KL, f"--qrel-kl-text={text}", "--qrel-kl-context=64", "--qrel-kl-tokens=32",
                                "--qrel-kl-p99-threshold=100")
    records = _records(pytester)
    for bits in (2, 8):
        r = records[bits, "kl_p99"]
        assert r["status"] == "skip" and r["status"] != "pass"
        assert "kl_p99 of 32 scored tokens would be their maximum: the tail gate needs at least 100" in r["reason"]
        assert records[bits, "kl_to_base"]["status"] == "pass"
    result.stdout.fnmatch_lines(["qrel kl: 2 checked (2 passed, 0 failed), 2 not checked, 0 errors"])
