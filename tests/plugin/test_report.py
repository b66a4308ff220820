"""Real runs of the shipped suites on the smallest zoo model: table, results.json, xdist.

These run pytest in process (tests/conftest.py keeps the libraries imported between runs);
the xdist test's workers are fresh interpreters.
"""

import json

import pytest

# the KL suite (and its fitted-law tests): the calibration and confidence suites have their own
# tests (test_drift_suites.py)
KL_ONLY = ["-k", "test_kl_to_base"]
FAST = ["--qrel-models=zoo-s", "--qrel-methods=hqq,bnb", "--qrel-bits=3,8", "--qrel-cache-dir=cache", "-p", "no:randomly",
        "-k", "test_kl_to_base or test_within_scaling_law"]


def _results(pytester):
    return json.loads((pytester.path / "qrel-report" / "results.json").read_text())


def test_suites_collected_without_a_path_and_table_printed(pytester):
    # An empty directory: no test files of the user's, the plugin adds the shipped suites.
    result = pytester.runpytest(*FAST, "--qrel-kl-threshold=3:0.0001,8:0.01")
    # KL: 2 pass, 1 fails, bnb 3-bit skipped; the fitted-law tests have too few points: not checked
    result.assert_outcomes(passed=2, failed=1, skipped=5)
    result.stdout.fnmatch_lines(
        [
            "*= qrel reliability report =*",
            "model zoo-s (43,104 parameters), kl, rows by total model bits:",
            "variant * method * bits * eff bits * stored bits * total bits * layers * metric * value * threshold * result",
            "zoo-s-hqq-3b-g64 * hqq * 3 * 3.297 * 5.3* * 7/7 * kl_to_base * 0.0001 * FAIL: kl_to_base = *",
            "zoo-s-hqq-8b-g64 * hqq * 8 * 8.375 * 9.3* * 7/7 * kl_to_base * 0.01 * PASS",
            "zoo-s-bnb-8b * bnb * 8 * 8.4* * 8.* * 7/7 * kl_to_base * 0.01 * PASS",
            "zoo-s-bnb-3b-g64 * SKIP: bnb does not support 3-bit weights (supported: 4, 8)",
            "qrel: 2 passed, 1 failed thresholds, 0 errors, 3 not checked; results in *results.json",
        ]
    )
    result.stdout.fnmatch_lines(["zoo-s-hqq-3b-g64: kl_to_base = *, expected <= 0.0001"])
    # Rows are sorted by total model bits (the sixth column)
    lines = result.stdout.lines
    start = lines.index("model zoo-s (43,104 parameters), kl, rows by total model bits:")
    table = lines[start + 1 : lines.index("", start)]
    rows = [r for r in (line.split() for line in table) if len(r) >= 11 and r[7] == "kl_to_base"]
    totals = [float(row[5]) for row in rows]
    assert len(rows) == 3 and totals == sorted(totals), rows

    doc = _results(pytester)
    assert doc["schema"] == 1
    # three variants are too few for any law: each is listed as not fitted, with the reason
    assert [(f["law"], f["family"], f["fitted"]) for f in doc["fits"]] == [
        ("log_quadratic", "3-bit", False), ("log_quadratic", "8-bit", False), ("power_law", "all", False)]
    assert all(f["reason"].startswith("Expected at least") for f in doc["fits"])
    variants = {v["id"]: v for v in doc["variants"]}
    assert set(variants) == {"zoo-s-hqq-3b-g64", "zoo-s-hqq-8b-g64", "zoo-s-bnb-3b-g64", "zoo-s-bnb-8b"}
    for key in ("model", "method", "bits", "group_size", "params", "total_bits", "effective_bits", "storage_bits"):
        assert key in variants["zoo-s-hqq-8b-g64"]
    # effective bits: paper 002 §3, b + (16 + b) / G for HQQ's asymmetric groups of 64
    assert variants["zoo-s-hqq-8b-g64"]["effective_bits"] == 8 + 24 / 64
    assert variants["zoo-s-hqq-3b-g64"]["effective_bits"] == 3 + 19 / 64
    # measured storage: HQQ keeps a float32 scale and zero per group of 64 on CPU (1 bit per
    # weight), a few bytes of metadata per layer, and packs 3-bit codes ten to an int32 with
    # the rows of zoo-s's small layers padded to a multiple of ten (4 bits per code here)
    assert 9.0 < variants["zoo-s-hqq-8b-g64"]["storage_bits"] < 9.4
    assert 5.0 < variants["zoo-s-hqq-3b-g64"]["storage_bits"] < 5.4
    assert variants["zoo-s-hqq-8b-g64"]["state_dict_bytes"] > 0
    assert variants["zoo-s-bnb-3b-g64"]["skip_reason"].startswith("bnb does not support 3-bit")
    # every variant carries its outcome and a one-line reason
    outcomes = {vid: (v["status"], v["reason"]) for vid, v in variants.items()}
    assert outcomes["zoo-s-bnb-3b-g64"] == ("skip", variants["zoo-s-bnb-3b-g64"]["skip_reason"])
    assert outcomes["zoo-s-hqq-3b-g64"][0] == "fail" and outcomes["zoo-s-hqq-3b-g64"][1].startswith("kl_to_base = ")
    assert outcomes["zoo-s-hqq-8b-g64"] == outcomes["zoo-s-bnb-8b"] == ("pass", None)
    results = {r["test"]: r for r in doc["results"]}
    r3 = results["test_kl_to_base[zoo-s-hqq-3b-g64]"]
    r8 = results["test_kl_to_base[zoo-s-hqq-8b-g64]"]
    assert r3["property"] == "kl" and r3["metric"] == "kl_to_base" and r3["passed"] is False
    assert set(r3) >= {"test", "property", "model", "method", "bits", "metric", "value", "base_value", "threshold", "passed"}
    assert r3["value"] > r8["value"] > 0


def test_xdist_workers_merge_results(pytester):
    pytest.importorskip("xdist")
    result = pytester.runpytest(
        *FAST, "-n", "2", "--dist", "loadgroup", "--qrel-report-dir=out", "--qrel-kl-threshold=3:0.0001,8:0.01"
    )
    result.assert_outcomes(passed=2, failed=1, skipped=5)
    assert result.stdout.str().count("qrel reliability report") == 1
    doc = json.loads((pytester.path / "out" / "results.json").read_text())
    assert len(doc["results"]) == 3 + 3  # KL, and the fitted-law tests reported as not checked
    assert sum(v["total_bits"] is not None for v in doc["variants"]) == 3


def test_missing_checkpoint_fails_its_variants_and_the_rest_completes(pytester):
    result = pytester.runpytest("--qrel-models=zoo-xs,./no-such-model", "--qrel-methods=hqq", "--qrel-bits=8", *KL_ONLY)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["--qrel-models: checkpoint directory * does not exist"])
    result.stdout.fnmatch_lines(["no-such-model-hqq-8b-g64 * ERROR: --qrel-models: checkpoint directory * does not exist"])


def test_pickle_only_checkpoint_is_refused(pytester):
    ckpt = pytester.mkdir("pickled")
    (ckpt / "config.json").write_text('{"model_type": "llama"}')
    (ckpt / "pytorch_model.bin").write_bytes(b"not loaded")
    result = pytester.runpytest("--qrel-models=./pickled", "--qrel-methods=hqq", "--qrel-bits=8", *KL_ONLY)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*has only pickle weights, which can run code when loaded; convert it to safetensors or pass --qrel-allow-pickle*"])


def test_remote_code_checkpoint_is_refused(pytester):
    ckpt = pytester.mkdir("remote")
    (ckpt / "config.json").write_text('{"model_type": "custom", "auto_map": {"AutoModelForCausalLM": "m.M"}}')
    (ckpt / "model.safetensors").write_bytes(b"")
    result = pytester.runpytest("--qrel-models=./remote", "--qrel-methods=hqq", "--qrel-bits=8", *KL_ONLY)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*needs trust_remote_code (its config has auto_map); pytest-qrel never runs code from a checkpoint*"])


def test_saving_the_baseline_to_the_reports_own_results_json_keeps_a_passing_run_passing(pytester):
    """--qrel-save-baseline naming the report's own results.json (issue 34, item 13): it is
    already there, nothing to copy; the run passes and the file is the run's."""
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-methods=rtn", "--qrel-bits=8", "--qrel-no-cache",
                                *KL_ONLY, "--qrel-save-baseline=qrel-report/results.json")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1)
    assert "SameFileError" not in result.stdout.str() + result.stderr.str()
    (record,) = _results(pytester)["results"]
    assert record["test"] == "test_kl_to_base[zoo-xs-rtn-8b-g64]" and record["status"] == "pass"
