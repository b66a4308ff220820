"""The flip-rate gate (Dutta et al. 2024, arXiv 2407.09141, §3 "flips") in real runs of the
calibration suite on the zoo: a 2-bit variant that changes which questions it gets right on
a third of them fails, its 8-bit sibling passes on an exact bound, too few questions leave the
gate not checked with the number that would decide it, and with the gate off (the default)
the flips are still reported beside accuracy, in the terminal, report.md and results.json.

These run pytest in process (tests/conftest.py keeps the libraries imported between runs)."""

import json

import numpy as np

CALIBRATION_ONLY = [
    "-k",
    "calibration_drift",
    "-p",
    "no:randomly",
    "--qrel-cache-dir=cache",
]
ZOO_S = [
    "--qrel-models=zoo-s",
    "--qrel-methods=hqq",
    "--qrel-bits=2,8",
    "--qrel-tasks=zoo_recall",
]


def _results(pytester) -> dict:
    return json.loads((pytester.path / "qrel-report" / "results.json").read_text())


def _flip_records(doc: dict) -> dict[str, dict]:
    return {r["variant"]: r for r in doc["results"] if r["metric"] == "flip_rate"}


def test_many_flips_fail_and_few_flips_on_enough_questions_pass(pytester):
    result = pytester.runpytest(
        *ZOO_S, "--qrel-task-limit=300", "--qrel-flips-threshold=0.2", *CALIBRATION_ONLY
    )
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*zoo-s-hqq-2b-g64: *flip_rate = 0.*, expected <= 0.2 on zoo_recall (significant: adjusted p = * <= 0.05)*",
        ]
    )
    doc = _results(pytester)
    flips = _flip_records(doc)
    r2, r8 = flips["zoo-s-hqq-2b-g64"], flips["zoo-s-hqq-8b-g64"]
    assert (
        r2["status"] == "fail" and r2["value"] > 0.2 and r2["adjusted_pvalue"] <= 0.05
    )
    assert (
        r2["stat_test"] == "exact_binomial"
        and r2["threshold"] == 0.2
        and r2["property"] == "calibration"
    )
    # PASS only on the exact upper bound at the family's strictest level (Holm over 2 variants x 4 metrics)
    assert (
        r8["status"] == "pass"
        and r8["upper_bound"] < 0.2
        and r8["bound_level"] == 0.05 / 8
    )
    assert {r["family_size"] for r in doc["results"]} == {8}
    for r in (r2, r8):  # the gate's value is the comparison's flip rate
        f = r["comparison"]["flips"]
        assert (
            r["value"]
            == f["flip_rate"]
            == (f["right_to_wrong_count"] + f["wrong_to_right_count"]) / 300
        )
    # the drift table: flips beside accuracy, and the failing gate named
    result.stdout.fnmatch_lines(
        [
            "variant * bits * acc * d acc * r>w * w>r * flips * ECE *",
            "base * - * 0.* * - * - * - * - *",
            "zoo-s-hqq-2b-g64 * 2 * 0.* -0.* 0.* 0.* 0.* *FAIL: *flip_rate*",
            "r>w, w>r: share of the questions the variant gets wrong that the base got right, and the reverse; flips: *",
        ]
    )


def test_too_few_questions_leave_the_gate_not_checked_per_bit_width(pytester):
    result = pytester.runpytest(
        *ZOO_S,
        "--qrel-task-limit=5",
        "--qrel-flips-threshold=2:0.5,8:0.1",
        "--qrel-allow-unchecked",
        *CALIBRATION_ONLY,
    )
    assert "Traceback" not in result.stdout.str()
    flips = _flip_records(_results(pytester))
    assert {v: r["threshold"] for v, r in flips.items()} == {
        "zoo-s-hqq-2b-g64": 0.5,
        "zoo-s-hqq-8b-g64": 0.1,
    }
    for r in flips.values():
        assert r["status"] == "skip" and r["questions"] == 5
        assert (
            r["reason"].startswith("flips: with 5 samples the share ")
            and "--qrel-task-limit >= " in r["reason"]
        )
        assert r["upper_bound"] >= r["threshold"]  # not ruled out: no PASS


def test_flips_are_reported_beside_accuracy_with_the_gate_off(pytester):
    result = pytester.runpytest(
        "--qrel-models=zoo-xs",
        "--qrel-methods=hqq",
        "--qrel-bits=2",
        "--qrel-tasks=zoo_recall",
        "--qrel-task-limit=200",
        *CALIBRATION_ONLY,
    )
    doc = _results(pytester)
    assert not _flip_records(
        doc
    )  # off by default: no record, no hypothesis in the family
    assert {r["family_size"] for r in doc["results"]} == {3}
    (row,) = doc["drift"]["tasks"]
    f = row["flips"]
    assert set(f) == {
        "right_to_wrong",
        "wrong_to_right",
        "flip_rate",
        "right_to_wrong_count",
        "wrong_to_right_count",
        "questions",
    }
    assert (
        f["questions"] == 200
        and f["flip_rate"] == f["right_to_wrong"] + f["wrong_to_right"] > 0
    )
    assert np.isclose(
        row["delta"]["accuracy"], f["wrong_to_right"] - f["right_to_wrong"]
    )
    for r in doc[
        "results"
    ]:  # every record of the calibration test carries them in its comparison
        assert r["comparison"]["flips"] == f
    row_line = f"zoo-xs-hqq-2b-g64 * 2 * * {f['right_to_wrong']:.3f} * {f['wrong_to_right']:.3f} * {f['flip_rate']:.3f} *"
    result.stdout.fnmatch_lines([row_line])
    markdown = (pytester.path / "qrel-report" / "report.md").read_text()
    assert (
        "## Calibration and confidence" in markdown and "arXiv 2407.09141" in markdown
    )
    assert (
        "| variant | bits | acc | d acc | right→wrong | wrong→right | flips |"
        in markdown
    )
    assert (
        f"| {f['right_to_wrong']:.3f} | {f['wrong_to_right']:.3f} | {f['flip_rate']:.3f} |"
        in markdown
    )
