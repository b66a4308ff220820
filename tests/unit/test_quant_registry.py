import pytest

from pytest_qrel.quant import BACKENDS, get_backend, register, supported_bits


def test_lookup_miss_lists_valid_names():
    with pytest.raises(ValueError, match=r"Expected a quantization method in \['bnb', 'hqq', 'rtn'\], but got 'awq'"):
        get_backend("awq")


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="'hqq' is already registered"):
        register(BACKENDS["hqq"])


def test_supported_bits_is_the_union():
    assert supported_bits() == [2, 3, 4, 8]


def test_unsupported_pair_has_a_reason():
    assert get_backend("bnb").unsupported_reason(3) == "bnb does not support 3-bit weights (supported: 4, 8)"
    assert get_backend("hqq").unsupported_reason(3) is None


def test_missing_package_reason(monkeypatch):
    backend = get_backend("hqq")
    monkeypatch.setattr(type(backend), "requires", ("not_a_real_package_qrel",))
    assert backend.unsupported_reason(4) == "hqq needs not_a_real_package_qrel: install pytest-qrel[hqq]"


def test_backends_group_sizes():
    assert get_backend("bnb").group_size_for(4, 128) == 64  # nf4 blocks are fixed
    assert get_backend("bnb").group_size_for(8, 128) is None  # int8: per row
    assert get_backend("hqq").group_size_for(4, 128) == 128
