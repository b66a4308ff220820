"""RTN against an independent numpy implementation of paper 002's asymmetric group quantizer."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_qrel.quant.base import storage_bytes
from pytest_qrel.quant.rtn import RTNBackend
from pytest_qrel.quant.rtn_linear import RTNLinear, _pack, _unpack


def _reference(w: np.ndarray, bits: int, group: int) -> np.ndarray:
    out = np.empty_like(w)
    levels = 2**bits - 1
    for r in range(w.shape[0]):
        for g in range(0, w.shape[1], group):
            x = w[r, g : g + group]
            lo, hi = min(x.min(), 0.0), max(x.max(), 0.0)  # the range includes 0 (GPTQ's quantizer)
            scale = np.float32(np.float16((hi - lo) / levels))
            zero = np.round(-lo / scale)
            q = np.clip(np.round(x / scale) + zero, 0, levels)
            out[r, g : g + group] = (q - zero) * scale
    return out


def _textbook(group: list[float], bits: int) -> list[float]:
    """Asymmetric min-max round-to-nearest of one group whose range includes 0, written out
    element by element in plain Python (the float16 rounding of the stored scale aside)."""
    levels = 2**bits - 1
    lo, hi = min(min(group), 0.0), max(max(group), 0.0)
    if lo == hi == 0.0:  # an all-zero group: GPTQ's quantizer takes the range [-1, 1]
        lo, hi = -1.0, 1.0
    scale = float(np.float16((hi - lo) / levels))
    zero = round(-lo / scale)
    return [(min(max(round(x / scale) + zero, 0), levels) - zero) * scale for x in group]


@pytest.mark.parametrize(
    "group",
    [
        [1.0, 1.2, 1.5, 2.0],  # all positive: a range without 0 would collapse it onto 1.0 at 2 bits
        [-2.0, -1.5, -1.2, -1.0],  # all negative
        [-0.7, 0.1, 0.4, 1.3],  # mixed signs
        [0.0, 0.0, 0.0, 0.0],  # all zero: no division by a zero scale
    ],
    ids=["positive", "negative", "mixed", "zero"],
)
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_rtn_group_matches_textbook_and_keeps_zero(group, bits):
    linear = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([group]))
    got = RTNLinear.from_linear(linear, bits, 4).dequantized_weight()[0].tolist()
    assert got == pytest.approx(_textbook(group, bits), abs=1e-7)
    # every weight lies within half a step of its code: nothing collapses onto one value
    step = (max(max(group), 0.0) - min(min(group), 0.0)) / (2**bits - 1) or 1.0
    assert max(abs(a - b) for a, b in zip(got, group)) <= step / 2 * 1.001
    # 0 is a code exactly
    with torch.no_grad():
        linear.weight[0, 0] = 0.0
    assert RTNLinear.from_linear(linear, bits, 4).dequantized_weight()[0, 0].item() == 0.0


def test_rtn_narrow_rows_get_a_smaller_group():
    from pytest_qrel.quant.base import fitting_group

    assert fitting_group(96, 64) == 32 and fitting_group(32, 64) == 32 and fitting_group(128, 64) == 64
    assert fitting_group(100, 64) is None and fitting_group(12, None) is None  # one group per row
    layer = RTNBackend()._quantize_layer(torch.nn.Linear(96, 8), 4, 64)
    assert layer.group_size == 32


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("group", [16, 64, None])
def test_rtn_matches_reference(bits, group):
    torch.manual_seed(bits)
    linear = torch.nn.Linear(64, 24, bias=True)
    layer = RTNLinear.from_linear(linear, bits, group)
    w = linear.weight.detach().numpy()
    np.testing.assert_allclose(layer.dequantized_weight().numpy(), _reference(w, bits, group or 64), rtol=0, atol=1e-6)
    x = torch.randn(3, 64)
    expected = x @ torch.from_numpy(_reference(w, bits, group or 64)).T + linear.bias
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bits, group", [(2, 64), (3, 64), (4, 32), (8, 16)])
def test_rtn_storage_is_the_paper_formula(bits, group):
    layer = RTNLinear.from_linear(torch.nn.Linear(128, 64, bias=False), bits, group)
    stored_bits = storage_bytes(layer) * 8 / (128 * 64)
    # b + (16 + b) / G (paper 002 App. D), up to the final byte of padding of each packed buffer
    assert stored_bits == pytest.approx(bits + (16 + bits) / group, abs=16 / (128 * 64))


def test_reconstruction_error_ordered_by_bits():
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 64, bias=False)
    errors = [
        (RTNLinear.from_linear(linear, b, 64).dequantized_weight() - linear.weight).norm().item() for b in (2, 3, 4, 8)
    ]
    assert errors == sorted(errors, reverse=True) and errors[-1] > 0


def test_state_dict_round_trip():
    linear = torch.nn.Linear(64, 8)
    layer = RTNLinear.from_linear(linear, 3, 32)
    again = RTNLinear(64, 8, 3, 32, torch.zeros(8), torch.float32)
    again.load_state_dict(layer.state_dict())
    torch.testing.assert_close(again.dequantized_weight(), layer.dequantized_weight())


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8).flatmap(lambda b: st.tuples(st.just(b), st.lists(st.integers(0, 2**b - 1), min_size=1, max_size=40))))
def test_pack_round_trip(case):
    bits, codes = case
    packed = _pack(torch.tensor(codes), bits)
    assert packed.numel() == (len(codes) * bits + 7) // 8
    assert _unpack(packed, bits, len(codes)).tolist() == codes


def _bitstream_pack(codes: list[int], bits: int) -> list[int]:
    """The stored format spelled out: each code's ``bits`` bits, most significant first, one
    stream, cut into bytes, the last padded with zero bits (what cache entries hold)."""
    stream = [(c >> (bits - 1 - i)) & 1 for c in codes for i in range(bits)]
    stream += [0] * (-len(stream) % 8)
    return [int("".join(map(str, stream[i:i + 8])), 2) for i in range(0, len(stream), 8)]


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 8).flatmap(lambda b: st.tuples(st.just(b), st.lists(st.integers(0, 2**b - 1), min_size=1, max_size=70))))
def test_pack_is_the_stored_bitstream(case):
    # the vectorised packing (eight codes at a time) must write the bytes the bit-at-a-time
    # stream wrote: stored entries and their digests stay valid, dequantized weights unchanged
    bits, codes = case
    assert _pack(torch.tensor(codes, dtype=torch.float32), bits).tolist() == _bitstream_pack(codes, bits)


def test_pack_large_layer_matches_bitstream():
    g = torch.Generator().manual_seed(0)
    for bits in (2, 3, 4, 8):
        codes = torch.randint(0, 2**bits, (4099,), generator=g)
        assert _pack(codes, bits).tolist() == _bitstream_pack(codes.tolist(), bits)
        assert torch.equal(_unpack(_pack(codes, bits), bits, len(codes)), codes)
