import pytest

from pytest_qrel.quant.mixed import allocate, components

NAMES = [
    "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.up_proj",
    "model.layers.1.self_attn.q_proj", "model.layers.1.mlp.up_proj",
    "model.layers.10.mlp.up_proj",
]


def test_components_by_granularity():
    assert components(NAMES, "matmul") == [[n] for n in NAMES]
    assert components(NAMES, "layer") == [NAMES[:2], NAMES[2:4], NAMES[4:]]


@pytest.mark.parametrize(
    "sizes, ratio, order, expected",
    [
        ([10, 10, 10, 10], 0.5, [3, 1, 0, 2], [1, 3]),  # exactly half
        ([10, 10, 10, 10], 0.9, [0, 1, 2, 3], [0, 1, 2, 3]),  # 1.0 is closer to 0.9 than 0.75
        ([10, 10, 10, 10], 0.6, [0, 1, 2, 3], [0, 1]),  # 0.5 is closer than 0.75
        ([70, 10, 10, 10], 0.3, [0, 1, 2, 3], [1, 2, 3]),  # the big one would overshoot: skipped
    ],
)
def test_allocate_gets_closest_to_ratio(sizes, ratio, order, expected):
    assert allocate(sizes, ratio, order) == expected
