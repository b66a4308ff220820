"""Fitted-law bounds: each variant's metric against the log-quadratic law in total model bits
fitted on the other variants of its bit-width (paper 000 §3.3, eq. 6): a checkpoint worse
than the law predicts for its bit budget is a regression."""

from pytest_qrel.matrix import suite_marks

pytestmark = suite_marks("scaling")


def test_within_scaling_law(qrel, qrel_scaled):
    metric, variant = qrel_scaled
    qrel.gate("scaling", variant, metric=metric)
