"""Confidence shift: a quantized variant's confidence in the true answer and its predictive
entropy on multiple-choice tasks against its full-precision base (paper 003 §3.2, Table 2,
paired t-test). A metric fails only when its shift passes the threshold and is significant
after the run's multiple-comparison correction."""

from pytest_qrel.matrix import suite_marks

pytestmark = suite_marks("confidence")


def test_confidence_shift(qrel, qrel_variant, qrel_task):
    qrel.gate("confidence", qrel_variant, qrel_task)
