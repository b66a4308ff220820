"""Real runs of the calibration and confidence suites, and their start-up errors: test ids
per variant and task, the Table-1 style report, results.json's drift section, xdist, and a
one-line usage error (no traceback) for a bad task, a bad task file or an offline dataset.

These run pytest in process (tests/conftest.py keeps the libraries imported between runs);
the xdist test's workers are fresh interpreters."""

import json

import pytest

DRIFT_ONLY = ["-k", "calibration_drift or confidence_shift", "-p", "no:randomly", "--qrel-cache-dir=cache"]
ZOO_XS = ["--qrel-models=zoo-xs", "--qrel-methods=hqq", "--qrel-bits=2,8", "--qrel-tasks=zoo_recall,zoo_utilization",
          "--qrel-task-limit=300"]


def test_suites_run_per_variant_and_task_and_report(pytester):
    result = pytester.runpytest(*ZOO_XS, *DRIFT_ONLY, "-v")
    out = result.stdout.str()
    for suite in ("test_calibration.py::test_calibration_drift", "test_confidence.py::test_confidence_shift"):
        for vid in ("zoo-xs-hqq-2b-g64", "zoo-xs-hqq-8b-g64"):
            for task in ("zoo_recall", "zoo_utilization"):
                assert f"{suite}[{vid}-{task}]" in out
    result.stdout.fnmatch_lines([
        "*qrel calibration and confidence (paper 003 Tables 1-2, Fig. 1)*",
        "model zoo-xs, task zoo_recall (300 questions, memorization), rows by total model bits:",
        "variant * bits * acc * d acc * ECE * d ECE * ACE * d ACE * Brier d * Conf_true * d Conf_true * p * H d * JS * result",
        "base * - * 0.* * - *",
        "zoo-xs-hqq-2b-g64 * 2 *",
        "zoo-xs-hqq-8b-g64 * 8 * PASS",
        "mean confidence shift (quantized - base) per bin of base confidence:",
        "accuracy drop from base per bit-width, memorization vs utilization (paper 002), mean over methods:",
        "zoo-xs * 2 * *",
        "zoo-xs: 2-bit variants lose * true-class confidence than 8-bit ones (*, mean over tasks and methods)",
    ])
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    records = [r for r in doc["results"] if r["property"] in ("calibration", "confidence")]
    assert len(records) == 2 * 2 * 5  # variants x tasks x gated metrics
    assert {r["metric"] for r in records} == {"ece_increase", "ace_increase", "brier_increase", "conf_true_drop",
                                             "entropy_increase"}
    for r in records:
        assert r["task"] in ("zoo_recall", "zoo_utilization") and r["questions"] == 300
        assert 0 <= r["pvalue"] <= r["adjusted_pvalue"] <= 1 and r["family_size"] == 20 and r["correction"] == "holm"
        assert r["passed"] == (r["status"] == "pass")
        # power before PASS: a pass could have caught a harm of its threshold's size; what could not is not checked
        if r["status"] == "pass":
            assert r["minimum_detectable"] <= r["threshold"] and r["power"] == 0.8
        if r["status"] == "skip":
            assert "--qrel-task-limit >= " in r["reason"] or "do not differ" in r["reason"]
    # the report opens with the verdict matrix; a change metric's row shows the base's level beside it
    result.stdout.fnmatch_lines([
        "*= qrel reliability report =*",
        "verdicts (which checkpoints may ship):",
        "variant * calibration * confidence",
        "zoo-xs-hqq-8b-g64 * PASS * PASS",
        "model zoo-xs (20,528 parameters), calibration, rows by total model bits:",
        "zoo-xs-hqq-8b-g64 * brier_increase@zoo_recall * base 0.* PASS",
    ])
    assert "zoo-xs (base)" not in out  # the base's value of a drop is a level, not a value of the metric
    markdown = (pytester.path / "qrel-report" / "report.md").read_text()
    assert "## Verdicts\n\n| variant | calibration | confidence |" in markdown
    assert "| zoo-xs-hqq-8b-g64 | PASS | PASS |" in markdown
    assert "| brier_increase@zoo_utilization |" in markdown
    rows = {(x["variant"], x["task"]): x for x in doc["drift"]["tasks"]}
    assert len(rows) == 4
    r8, r2 = rows[("zoo-xs-hqq-8b-g64", "zoo_recall")], rows[("zoo-xs-hqq-2b-g64", "zoo_recall")]
    assert r8["base"] == r2["base"] and r8["base"]["accuracy"] > 0.25  # the same base numbers, above chance
    assert abs(r2["delta"]["accuracy"]) > abs(r8["delta"]["accuracy"])
    assert sum(r2["shift_by_bin"]["counts"]) == 300
    assert {(k["model"], k["bits"]) for k in doc["drift"]["knowledge"]} == {("zoo-xs", 2), ("zoo-xs", 8)}


def test_xdist_one_family_per_model(pytester):
    pytest.importorskip("xdist")
    args = ["--qrel-models=zoo-xs,zoo-s", "--qrel-methods=hqq", "--qrel-bits=8", "--qrel-tasks=zoo_recall",
            "--qrel-task-limit=200", *DRIFT_ONLY]
    result = pytester.runpytest(*args, "-n", "2", "--dist", "loadgroup")
    result.assert_outcomes(passed=4)
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    assert {r["family_size"] for r in doc["results"]} == {5}  # per model: 1 variant x 1 task x 5 metrics
    assert len(doc["drift"]["tasks"]) == 2


@pytest.mark.parametrize(
    "args, files, message",
    [
        (["--qrel-tasks=zoo_recal"], {}, "*--qrel-tasks: Expected a zoo task (zoo_recall, zoo_utilization, "
                                         "zoo_utilization_heldout), a task YAML or an lm-eval task, but got 'zoo_recal'*"),
        (["--qrel-tasks=./empty.yaml"], {"empty.yaml": "\n"}, "*--qrel-tasks: Expected an lm-eval task in */empty.yaml, "
                                                              "but the file is empty*"),
        (["--qrel-tasks=./bad.yaml"], {"bad.yaml": "task: x\n  output_type: [multiple_choice\n"},
         "*--qrel-tasks: Expected valid YAML in */bad.yaml, but it has a syntax error at line *"),
        (["--qrel-tasks=./gen.yaml"], {"gen.yaml": "task: gen\ndataset_path: json\ndoc_to_choice: c\n"},
         "*--qrel-tasks: Expected `output_type: multiple_choice` in */gen.yaml * but got 'generate_until'*"),
        (["--qrel-tasks=./missing.yaml"], {}, "*--qrel-tasks: Expected an lm-eval task YAML at */missing.yaml, but it "
                                              "does not exist*"),
        (["--qrel-tasks=hellaswag"], {}, "*--qrel-tasks: lm-eval task 'hellaswag' needs its dataset 'Rowan/hellaswag' from "
                                         "the network (Hugging Face Hub), which is not in the local cache and cannot be "
                                         "fetched in offline mode*"),
        (["--qrel-task-limit=1"], {}, "*--qrel-task-limit: expected one integer >= 2, but got '1'*"),
        (["--qrel-alpha=ece:2"], {}, "*--qrel-alpha: expected a level in [[]1e-06, 0.5] (below it nothing could fail, above it noise would), but got ece:2*"),
        (["--qrel-confidence-threshold=ece:0.1"], {}, "*--qrel-confidence-threshold: unknown metric 'ece'; expected "
                                                      "some of: conf_true, entropy*"),
        (["--qrel-correction=bonferroni"], {}, "*--qrel-correction: expected one of holm, bh, but got 'bonferroni'*"),
    ],
)
def test_bad_tasks_and_options_are_one_line_usage_errors(pytester, args, files, message):
    for name, text in files.items():
        (pytester.path / name).write_text(text)
    result = pytester.runpytest("--qrel-models=zoo-xs", "--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_options_have_config_file_twins(pytester):
    pytester.makepyprojecttoml(
        "[tool.qrel]\nmodels = 'zoo-xs'\nmethods = 'hqq'\nbits = 8\ntasks = ['zoo_recall']\ntask-limit = 50\n"
        "alpha = {conf_true = 0.01}\ncorrection = 'bh'\nconfidence-threshold = {conf_true = 0.02}\n"
    )
    result = pytester.runpytest(*DRIFT_ONLY, "-k", "confidence_shift")
    result.assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    got = {r["metric"]: r for r in doc["results"]}
    assert got["conf_true_drop"]["alpha"] == 0.01 and got["entropy_increase"]["alpha"] == 0.05
    assert got["conf_true_drop"]["threshold"] == 0.02 and got["entropy_increase"]["threshold"] == 0.1
    assert got["conf_true_drop"]["correction"] == "bh" and got["conf_true_drop"]["questions"] == 50
