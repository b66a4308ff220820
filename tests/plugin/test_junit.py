"""Results in the CI's format (issue 37, item 4): ``--junitxml`` carries each qrel test's
metrics (value, threshold, status, reason) and its variant's bits as JUnit properties, read
back here with xml.etree as a CI system reads them: the shipped suites in process, a property
added from outside and a test that crashed or was skipped under xdist.

Runs pytest in process (tests/conftest.py keeps the libraries imported between runs)."""

import json
import xml.etree.ElementTree as ET

import pytest

# results.json's record status -> the status property's value
STATUS = {"pass": "pass", "fail": "fail", "skip": "not checked", "error": "error"}


def _properties(path) -> dict[str, dict[str, str]]:
    """Each testcase's properties, by test name."""
    root = ET.parse(path).getroot()
    return {tc.get("name"): {p.get("name"): p.get("value") for p in tc.iter("property")} for tc in root.iter("testcase")}


def test_junitxml_holds_each_gate_its_threshold_and_status(pytester):
    """zoo-xs at 8 bits against a KL threshold it cannot meet (fail) and a p99 one it meets
    (pass), and its fitted-law test, which one variant leaves not checked (no law to fit)."""
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-methods=hqq", "--qrel-bits=8", "--qrel-cache-dir=cache",
                                "--qrel-kl-threshold=8:1e-12", "--qrel-kl-p99-threshold=10", "-k", "kl_to_base",
                                "-p", "no:randomly", "--junitxml=out.xml")
    result.assert_outcomes(failed=1, skipped=1)
    props = _properties(pytester.path / "out.xml")
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    (variant,) = doc["variants"]

    kl = props["test_kl_to_base[zoo-xs-hqq-8b-g64]"]
    assert (kl["qrel.status"], kl["qrel.property"]) == ("fail", "kl")
    assert kl["qrel.kl_to_base.status"] == "fail" and float(kl["qrel.kl_to_base.threshold"]) == 1e-12
    assert kl["qrel.kl_to_base.reason"].startswith("kl_to_base = ") and "expected <= 1e-12" in kl["qrel.kl_to_base.reason"]
    assert kl["qrel.reason"] == kl["qrel.kl_to_base.reason"]
    assert (kl["qrel.kl_p99.status"], float(kl["qrel.kl_p99.threshold"])) == ("pass", 10.0)
    assert "qrel.kl_p99.reason" not in kl  # a passed gate has none: nothing is written as "None"

    scaling = props["test_within_scaling_law[kl_to_base-zoo-xs-hqq-8b-g64]"]
    assert scaling["qrel.status"] == scaling["qrel.kl_to_base.status"] == "not checked"
    assert scaling["qrel.kl_to_base.reason"].startswith("no 8-bit law to bound kl_to_base with")
    assert scaling["qrel.property"] == "scaling"

    for test in (kl, scaling):  # the variant as results.json's variants entry has it, bits from its quantization
        assert test["qrel.variant"] == variant["id"] == "zoo-xs-hqq-8b-g64"
        assert (test["qrel.method"], test["qrel.bits"], test["qrel.group_size"]) == ("hqq", "8", "64")
        assert float(test["qrel.effective_bits"]) == variant["effective_bits"] > 8
        assert float(test["qrel.total_bits"]) == variant["total_bits"] > 0
    # every record of results.json is in its test's properties, with the same numbers
    assert len(doc["results"]) == 3
    for r in doc["results"]:
        test = props[r["test"]]
        assert test[f"qrel.{r['metric']}.status"] == STATUS[r["status"]]
        assert float(test[f"qrel.{r['metric']}.value"]) == r["value"]
        if r["status"] != "skip":
            assert float(test[f"qrel.{r['metric']}.threshold"]) == r["threshold"]
            assert float(test[f"qrel.{r['metric']}.base_value"]) == r["base_value"]


# a property from outside the package whose measure loads no model: 1 / bits, at most 0.2
CONFTEST = """
from pytest_qrel.measures import Measure, Measurement
from pytest_qrel.properties import Metric, Property


class Inverse(Measure):
    key = "inverse"

    def measure(self, variant):
        return Measurement(1 / variant.bits, 0.0)


def pytest_qrel_register_properties(register):
    register(Property("inverse", "one over the bits", (Metric("inverse_bits", "inverse", threshold=0.2),)), Inverse)
"""

TESTS = """
import pytest

from pytest_qrel.matrix import suite_marks

pytestmark = suite_marks("inverse")


def test_gated(qrel, qrel_variant):
    qrel.gate("inverse", qrel_variant)


def test_crashes(qrel_variant):
    raise RuntimeError("boom")


def test_skips(qrel_variant):
    pytest.skip("nothing to measure")


@pytest.fixture
def breaks_on_teardown():
    yield
    raise OSError("teardown broke")


def test_teardown_fails(qrel, qrel_variant, breaks_on_teardown):
    qrel.gate("inverse", qrel_variant)
"""


def test_a_plugin_property_and_a_crash_carry_their_properties_from_xdist_workers(pytester):
    """Under -n 2 the properties travel with each worker's report: a plugin property's gates
    (2 bits fails, 8 passes), a test that crashed before it recorded (ERROR, its reason), a test
    that skipped itself and a variant its backend lacks (skip, the reason), and a test whose
    teardown failed after it gated (its gate, and ERROR: one set of properties, not two)."""
    pytest.importorskip("xdist")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inverse=TESTS)
    result = pytester.runpytest("test_inverse.py", "--qrel-models=zoo-xs", "--qrel-methods=rtn,bnb", "--qrel-bits=2,8",
                                "--qrel-no-cache", "-p", "no:randomly", "-n", "2", "--junitxml=out.xml")
    # the teardown of test_teardown_fails errors on the three variants that ran
    result.assert_outcomes(passed=4, failed=5, skipped=7, errors=3)
    props = _properties(pytester.path / "out.xml")
    assert len(props) == 16

    low, high = props["test_gated[zoo-xs-rtn-2b-g64]"], props["test_gated[zoo-xs-rtn-8b-g64]"]
    assert (low["qrel.inverse_bits.status"], float(low["qrel.inverse_bits.value"])) == ("fail", 0.5)
    assert (high["qrel.inverse_bits.status"], float(high["qrel.inverse_bits.value"])) == ("pass", 0.125)
    assert low["qrel.inverse_bits.threshold"] == high["qrel.inverse_bits.threshold"] == "0.2"
    assert (low["qrel.property"], low["qrel.bits"], high["qrel.bits"]) == ("inverse", "2", "8")
    assert "qrel.effective_bits" not in low  # not quantized: what it does not know, it leaves out

    crashed = props["test_crashes[zoo-xs-rtn-8b-g64]"]
    assert (crashed["qrel.status"], crashed["qrel.reason"]) == ("error", "RuntimeError: boom")
    assert (crashed["qrel.variant"], crashed["qrel.property"]) == ("zoo-xs-rtn-8b-g64", "inverse")
    skipped = props["test_skips[zoo-xs-rtn-8b-g64]"]
    assert (skipped["qrel.status"], skipped["qrel.reason"]) == ("skip", "nothing to measure")
    lacked = props["test_gated[zoo-xs-bnb-2b-g64]"]
    assert lacked["qrel.status"] == "skip" and lacked["qrel.reason"].startswith("bnb does not support 2-bit")
    assert (lacked["qrel.method"], lacked["qrel.bits"]) == ("bnb", "2")

    broken = [(p.get("name"), p.get("value")) for tc in ET.parse(pytester.path / "out.xml").getroot().iter("testcase")
              if tc.get("name") == "test_teardown_fails[zoo-xs-rtn-8b-g64]" for p in tc.iter("property")]
    names = [name for name, _ in broken]
    assert len(names) == len(set(names))  # its call's properties replaced, not doubled
    broken_props = dict(broken)
    assert broken_props["qrel.status"] == "error" and "teardown of test_teardown_fails" in broken_props["qrel.reason"]
    assert broken_props["qrel.inverse_bits.status"] == "pass"  # what its call gated stays


def test_a_test_that_fails_after_it_gated_is_no_pass(pytester):
    """A suite's own check after its gate passed fails the test: its JUnit status, and the
    record results.json and the verdicts keep, is not the gate's pass."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_after="""
from pytest_qrel.matrix import suite_marks

pytestmark = suite_marks("inverse")


def test_checks_more(qrel, qrel_variant):
    qrel.gate("inverse", qrel_variant)
    assert False, "the suite's own check"
""")
    result = pytester.runpytest("test_after.py", "--qrel-models=zoo-xs", "--qrel-methods=rtn", "--qrel-bits=8",
                                "--qrel-no-cache", "-p", "no:randomly", "--junitxml=out.xml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["zoo-xs-rtn-8b-g64  ERROR", "qrel: 1 passed, 0 failed thresholds, 1 errors; *"])
    (test,) = _properties(pytester.path / "out.xml").values()
    assert test["qrel.inverse_bits.status"] == "pass"  # the gate passed
    assert test["qrel.status"] == "error" and test["qrel.reason"].startswith("AssertionError: the suite's own check")
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    assert {r["status"] for r in doc["results"]} == {"pass", "error"}
