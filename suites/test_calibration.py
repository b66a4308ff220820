"""Calibration drift: a quantized variant's ECE, adaptive CE and Brier score on
multiple-choice tasks against its full-precision base (paper 003 Table 1, App. B).
A metric fails only when its increase passes the threshold and is significant after the
run's multiple-comparison correction."""

from pytest_qrel.matrix import suite_marks

pytestmark = suite_marks("calibration")


def test_calibration_drift(qrel, qrel_variant, qrel_task):
    qrel.gate("calibration", qrel_variant, qrel_task)
