"""A test's JUnit properties from its records (pytest_qrel/junit.py), the records made by
Results as a run makes them: names, statuses, what is left out. The properties' way into
--junitxml is tests/plugin/test_junit.py's."""

import math

from pytest_qrel.junit import properties
from pytest_qrel.measures import Measurement
from pytest_qrel.results import Results
from pytest_qrel.variants import Variant

VARIANT = Variant("zoo-xs", "fixtures/zoo/zoo-xs", "hqq", 4, 64)
INFO = {"effective_bits": 4.5, "total_bits": 123456.0, "params": 20528}


def test_a_per_task_test_names_its_task_and_each_metric():
    results = Results()
    results.gate("test_calibration_drift[zoo-xs-hqq-4b-g64-zoo_recall]", VARIANT, "calibration", "ece_increase",
                 Measurement(0.07, 0.2, detail={"task": "zoo_recall"}, significant=True), 0.05, False, INFO, 0.0)
    results.skip("test_calibration_drift[zoo-xs-hqq-4b-g64-zoo_recall]", VARIANT, "calibration", "ace_increase",
                 "too few questions", INFO, 0.0, Measurement(math.nan, detail={"task": "zoo_recall"}), 0.03)
    props = properties(VARIANT, INFO, results.take_pending({})["results"])
    assert props[:7] == [("qrel.variant", "zoo-xs-hqq-4b-g64"), ("qrel.model", "zoo-xs"), ("qrel.method", "hqq"),
                         ("qrel.bits", "4"), ("qrel.group_size", "64"), ("qrel.effective_bits", "4.5"),
                         ("qrel.total_bits", "123456.0")]
    d = dict(props)
    assert (d["qrel.property"], d["qrel.task"], d["qrel.status"]) == ("calibration", "zoo_recall", "fail")
    assert (d["qrel.ece_increase.value"], d["qrel.ece_increase.base_value"]) == ("0.07", "0.2")
    assert (d["qrel.ece_increase.threshold"], d["qrel.ece_increase.status"]) == ("0.05", "fail")
    # not checked, with its reason; its NaN value Results keeps as None: not known, so left out
    assert (d["qrel.ace_increase.status"], d["qrel.ace_increase.reason"]) == ("not checked", "too few questions")
    assert "qrel.ace_increase.value" not in d and d["qrel.ace_increase.threshold"] == "0.03"
    assert all(value != "None" for _, value in props)


def test_an_error_at_a_metric_and_a_test_that_recorded_nothing():
    results = Results()
    results.error("test_kl_to_base[zoo-xs-hqq-4b-g64]", VARIANT, "kl", "kl_to_base", "base did not load")
    d = dict(properties(VARIANT, None, results.take_pending({})["results"]))
    assert (d["qrel.status"], d["qrel.reason"]) == ("error", "base did not load")
    assert (d["qrel.kl_to_base.status"], d["qrel.kl_to_base.reason"]) == ("error", "base did not load")
    assert "qrel.effective_bits" not in d and "qrel.kl_to_base.value" not in d  # never quantized
    skipped = dict(properties(VARIANT, None, [], "bnb does not support 2-bit weights", "kl"))
    assert (skipped["qrel.status"], skipped["qrel.reason"], skipped["qrel.property"]) == \
        ("skip", "bnb does not support 2-bit weights", "kl")
