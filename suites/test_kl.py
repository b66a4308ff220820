"""KL to base: how far a quantized variant's next-token distributions move from its
full-precision base on held-out text (paper 000 §4.3, eq. 7)."""

import pytest

# raised while the quantization libraries import their dependencies: not the user's concern
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


def test_kl_to_base(qrel, qrel_variant, request):
    kl = qrel.kl_to_base(qrel_variant)
    qrel.check(
        request.node.name,
        qrel_variant,
        "kl",
        "kl_to_base",
        kl,
        base_value=0.0,
        threshold=qrel.config.kl_threshold[qrel_variant.bits],
    )
