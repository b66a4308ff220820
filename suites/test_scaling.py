"""Fitted-law bounds: each variant's metric against the log-quadratic law in total model bits
fitted on the other variants of its bit-width (paper 000 §3.3, eq. 6): a checkpoint worse
than the law predicts for its bit budget is a regression."""

import pytest

pytestmark = [
    pytest.mark.qrel_property("scaling"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]


def test_within_scaling_law(qrel, qrel_scaled):
    metric, variant = qrel_scaled
    qrel.gate("scaling", variant, metric=metric)
