"""KL to base: how far a quantized variant's next-token distributions move from its
full-precision base on held-out text (paper 000 §4.3, eq. 7)."""

import pytest

# raised while the quantization libraries import their dependencies: not the user's concern
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


def test_kl_to_base(qrel, qrel_variant):
    qrel.gate("kl", qrel_variant)
