"""A property added from outside the package, as ARCHITECTURE.md promises: one catalog entry
and one measure registered by the ``pytest_qrel_register_properties`` hook (in a conftest.py),
and one test file. It is collected over the variant matrix, measured on real quantized
models, gated against the catalog's threshold, and reported in the table and results.json.

Runs pytest in process (tests/conftest.py keeps the libraries imported between runs)."""

import json

import pytest

CONFTEST = '"""A property from outside the package: top-1 disagreement of next-token predictions."""\n\nfrom pytest_qrel.data import heldout_texts\nfrom pytest_qrel.engine import encode, next_token_logprobs\nfrom pytest_qrel.measures import Measure, Measurement\nfrom pytest_qrel.properties import Metric, Property\n\n\nclass Top1Disagreement(Measure):\n    key = "top1"\n\n    def measure(self, variant):\n        base = self.store.base(variant)\n        batches = encode(base.tokenizer, heldout_texts()[:16])\n        model = self.store.quantized(variant)\n        differ = total = 0\n        for batch, lb, lq in zip(batches, next_token_logprobs(base.model, batches), next_token_logprobs(model, batches)):\n            mask = batch.target_mask.bool()\n            differ += int(((lb.argmax(-1) != lq.argmax(-1)) & mask).sum())\n            total += int(mask.sum())\n        return Measurement(differ / total, 0.0)\n\n\ndef pytest_qrel_register_properties(register):\n    register(Property("top1", "top-1 disagreement of next-token predictions with the base",\n                      (Metric("top1_disagreement", "top1", threshold=THRESHOLD),),\n                      threshold_option="--qrel-top1-disagreement-threshold"), Top1Disagreement)\n\n\nTHRESHOLD = 0.2\n'

TEST_FILE = 'from pytest_qrel.matrix import suite_marks\n\npytestmark = suite_marks("top1")\n\n\ndef test_top1_agreement(qrel, qrel_variant):\n    qrel.gate("top1", qrel_variant)\n'


def test_a_registered_property_is_collected_measured_gated_and_reported(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_top1=TEST_FILE)
    result = pytester.runpytest("test_top1.py", "--qrel-models=zoo-xs", "--qrel-methods=rtn",
                                           "--qrel-bits=2,8", "--qrel-no-cache", "-p", "no:randomly")
    # 2-bit rtn changes the argmax of most tokens of the tiny zoo model; 8-bit of few
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "zoo-xs-rtn-2b-g64: top1_disagreement = *, expected <= 0.2",
    ])
    result.stdout.fnmatch_lines([
        "*= qrel reliability report =*",
        "model zoo-xs (20,528 parameters), top1, rows by total model bits:",
        "zoo-xs-rtn-2b-g64 * rtn * 2 * top1_disagreement * 0.2 * FAIL: top1_disagreement = *",
        "zoo-xs-rtn-8b-g64 * rtn * 8 * top1_disagreement * 0.2 * PASS",
        "qrel: 1 passed, 1 failed thresholds, 0 errors; results in *results.json",
    ])
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    records = {r["variant"]: r for r in doc["results"]}
    assert {r["property"] for r in records.values()} == {"top1"}
    low, high = records["zoo-xs-rtn-2b-g64"], records["zoo-xs-rtn-8b-g64"]
    assert (low["status"], high["status"]) == ("fail", "pass")
    assert low["value"] > 0.2 >= high["value"] >= 0 and low["threshold"] == 0.2


def test_a_registered_property_that_clashes_is_a_usage_error(pytester):
    pytester.makeconftest(CONFTEST.replace('Property("top1"', 'Property("kl"'))
    pytester.makepyfile(test_top1=TEST_FILE)
    result = pytester.runpytest("test_top1.py", "--qrel-models=zoo-xs", "--qrel-methods=rtn", "--qrel-bits=8")
    result.stderr.fnmatch_lines(["*pytest_qrel_register_properties: property 'kl' is registered twice*"])
    assert result.ret == 4  # usage error


def test_a_registered_property_declares_its_threshold_option_in_its_catalog_entry(pytester):
    """Its Property's threshold_option is all it takes: the option is in --help, on the command
    line and in [tool.qrel], and sets the threshold its gate holds the variant to."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_top1=TEST_FILE)
    helped = pytester.runpytest("--help")
    helped.stdout.fnmatch_lines(["*--qrel-top1-disagreement-threshold=VALUE*", "*thresholds of top-1 disagreement*"])
    args = ("test_top1.py", "--qrel-models=zoo-xs", "--qrel-methods=rtn", "--qrel-bits=8", "--qrel-no-cache",
            "-p", "no:randomly")

    def threshold() -> float:
        doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
        (record,) = doc["results"]
        return record["threshold"]

    pytester.runpytest(*args, "--qrel-top1-disagreement-threshold=0.35").assert_outcomes(passed=1)
    assert threshold() == 0.35
    pytester.makepyprojecttoml("[tool.qrel]\ntop1-disagreement-threshold = 0.25\n")
    pytester.runpytest(*args).assert_outcomes(passed=1)
    assert threshold() == 0.25
    bad = pytester.runpytest(*args, "--qrel-top1-disagreement-threshold=top2:0.1")
    bad.stderr.fnmatch_lines(["*--qrel-top1-disagreement-threshold: unknown metric 'top2'; expected some of: top1*"])


@pytest.mark.parametrize("flag, whose", [("--qrel-top1-threshold", "property 'kl''s"), ("--qrel-bits", "the run's own")])
def test_a_threshold_option_that_is_already_another_options_is_a_usage_error(pytester, flag, whose):
    """A plugin naming a declared flag (KL's top-1 gate, the run's bit-widths) would set that
    option's setting and leave its own property's empty, silently (review of issue 35)."""
    pytester.makeconftest(CONFTEST.replace('"--qrel-top1-disagreement-threshold"', f'"{flag}"'))
    pytester.makepyfile(test_top1=TEST_FILE)
    result = pytester.runpytest("test_top1.py", "--qrel-models=zoo-xs", "--qrel-methods=rtn", "--qrel-bits=8")
    result.stderr.fnmatch_lines([f"*property 'top1': its threshold_option {flag} is already {whose} option; "
                                 "name one of its own*"])
    assert result.ret == 4 and "Traceback" not in result.stderr.str()
