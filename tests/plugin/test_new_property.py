"""A property added from outside the package, as ARCHITECTURE.md promises: one catalog entry
and one measure registered by the ``pytest_qrel_register_properties`` hook (in a conftest.py),
and one test file. It is collected over the variant matrix, measured on real quantized
models, gated against the catalog's threshold, and reported in the table and results.json.

Runs pytest in process (tests/conftest.py keeps the libraries imported between runs)."""

import json

CONFTEST = '"""A property from outside the package: top-1 disagreement of next-token predictions."""\n\nfrom pytest_qrel.data import heldout_texts\nfrom pytest_qrel.engine import encode, next_token_logprobs\nfrom pytest_qrel.measures import Measure, Measurement\nfrom pytest_qrel.properties import Metric, Property\n\n\nclass Top1Disagreement(Measure):\n    key = "top1"\n\n    def measure(self, variant):\n        base = self.store.base(variant)\n        batches = encode(base.tokenizer, heldout_texts()[:16])\n        model = self.store.quantized(variant)\n        differ = total = 0\n        for batch, lb, lq in zip(batches, next_token_logprobs(base.model, batches), next_token_logprobs(model, batches)):\n            mask = batch.target_mask.bool()\n            differ += int(((lb.argmax(-1) != lq.argmax(-1)) & mask).sum())\n            total += int(mask.sum())\n        return Measurement(differ / total, 0.0)\n\n\ndef pytest_qrel_register_properties(register):\n    register(Property("top1", "top-1 disagreement of next-token predictions with the base",\n                      (Metric("top1_disagreement", "top1", threshold=THRESHOLD),)), Top1Disagreement)\n\n\nTHRESHOLD = 0.2\n'

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
