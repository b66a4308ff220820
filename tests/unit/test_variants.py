import pytest

from pytest_qrel import effective_bits, total_model_bits
from pytest_qrel.variants import Variant


@pytest.mark.parametrize(
    "bits, group, symmetric, expected",
    [
        # paper 002, App. D: b=4, G=128, asymmetric -> 4 + (16 + 4)/128 = 4.15625 (the table's 4.16)
        (4, 128, False, 4.15625),
        (4, 128, True, 4.125),  # 4 + 16/128
        (2, 64, False, 2.28125),  # 2 + 18/64
        (3, 64, False, 3.296875),  # 3 + 19/64
        (8, 32, True, 8.5),  # 8 + 16/32
        (4, None, False, 4.0),  # per-row scales: negligible overhead
    ],
)
def test_effective_bits_matches_paper_formula(bits, group, symmetric, expected):
    assert effective_bits(bits, group, symmetric=symmetric) == expected


def test_effective_bits_scale_bits():
    assert effective_bits(4, 64, scale_bits=32, symmetric=True) == 4.5


@pytest.mark.parametrize("bits, group", [(0, 64), (-2, 64), (4, 0), (2.5, 64), (4, -64)])
def test_effective_bits_rejects_bad_input(bits, group):
    with pytest.raises(ValueError, match="Expected `(bits|group_size)`"):
        effective_bits(bits, group)


def test_total_model_bits():
    # 1000 weights at 4.25 bits + 100 norm weights at 32 bits
    assert total_model_bits([(1000, 4.25), (100, 32)]) == 4250 + 3200


def test_variant_ids():
    assert Variant("zoo-m", "/x", "hqq", 4, 64).id == "zoo-m-hqq-4b-g64"
    assert Variant("zoo-m", "/x", "bnb", 8, None).id == "zoo-m-bnb-8b"
