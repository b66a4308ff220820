"""KL to base: how far a quantized variant's next-token distributions move from its
full-precision base on held-out text (paper 000 §4.3, eq. 7)."""

from pytest_qrel.matrix import suite_marks

pytestmark = suite_marks("kl")


def test_kl_to_base(qrel, qrel_variant):
    qrel.gate("kl", qrel_variant)
