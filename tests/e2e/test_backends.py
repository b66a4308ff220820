"""Every backend, through its real library, on a zoo model at every bit-width it claims:
the weights really change, reconstruction error and KL to base fall as bits rise, the
activation formats add error on top of their weight format, and bits are measured."""

import pytest
import torch

from pytest_qrel.quant import get_backend
from pytest_qrel.session import QrelConfig, QrelSession

MODEL = "zoo-m"
LADDERS = {
    "rtn": (2, 3, 4, 8),
    "hqq": (2, 3, 4, 8),
    "gptq": (2, 3, 4, 8),
    "quanto": (2, 4, 8),
    "bnb": (4, 8),
    "bnb-fp4": (4,),
    "quanto-fp8": (8,),
    "quanto-a8": (8,),
    "quanto-fp8-a8": (8,),
}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    values = {
        "qrel_models": MODEL,
        "qrel_methods": ",".join(LADDERS),
        "qrel_bits": "2,3,4,8",
        "qrel_group_size": "64",
        "qrel_report_dir": str(tmp_path_factory.mktemp("report")),
        "qrel_kl_threshold": "2:9,3:9,4:9,8:9",
        "qrel_allow_pickle": False,
        "qrel_no_cache": True,
        "qrel_calibration_samples": "64",
    }
    return QrelSession(QrelConfig.from_values(values, tmp_path_factory.getbasetemp()), active=True, is_worker=False)


@pytest.fixture(scope="module")
def measured(session):
    """{variant id: (KL to base, info, relative weight reconstruction error)}."""
    out = {}
    for v in session.variants:
        if v.skip_reason:
            continue
        kl = session.kl_to_base(v)
        out[(v.method, v.bits)] = (kl, session.variant_info[v.id], _reconstruction_error(session, v))
    return out


def _reconstruction_error(session, variant) -> float:
    """||W_hat - W|| / ||W|| over every quantized layer, W_hat read back from the layer
    itself: its output on the identity matrix (minus its output on zeros, the bias) is its
    dequantized weight, whatever its storage format (layers that quantize their inputs
    too are read from their stored weights)."""
    base = session.base_model(variant).model
    model = session.quantized_model(variant)
    err = ref = 0.0
    with torch.no_grad():
        for name, module in model.named_modules():
            if not get_backend(variant.method)._is_quantized(module):
                continue
            w = base.get_submodule(name).weight.float()
            if get_backend(variant.method).activation_bits:
                # the probe's inputs would be quantized too: read quanto's stored weights
                w_hat = module.qweight.dequantize().float()
            else:
                eye = torch.eye(w.shape[1], dtype=torch.float32)
                w_hat = (module(eye) - module(torch.zeros_like(eye))).T.float()
            err += float((w_hat - w).pow(2).sum())
            ref += float(w.pow(2).sum())
    return (err / ref) ** 0.5


def test_every_claimed_bit_width_runs(session, measured):
    for method, ladder in LADDERS.items():
        assert set(get_backend(method).bits) == set(ladder)
        for bits in ladder:
            assert (method, bits) in measured, (method, bits)
    # a bit-width a backend does not claim is a skip with its reason, never dropped
    skipped = {(v.method, v.bits): v.skip_reason for v in session.variants if v.skip_reason}
    assert skipped[("quanto", 3)] == "quanto does not support 3-bit weights (supported: 2, 4, 8)"
    assert len(skipped) + len(measured) == len(LADDERS) * 4


@pytest.mark.parametrize("method", LADDERS)
def test_weights_really_change_in_every_linear_layer(measured, method):
    for bits in LADDERS[method]:
        kl, info, err = measured[(method, bits)]
        assert info["quantized_layers"] == info["linear_layers"] > 0
        assert err > 1e-4 and kl > 0, (method, bits, err, kl)
        # measured storage: more than the code bits (scales are stored too), less than fp32
        assert bits < info["storage_bits"] < 16
        # paper 002's b + (16 + z) / G, with groups of at least 8 weights
        assert bits < info["effective_bits"] <= bits + (16 + bits) / 8


@pytest.mark.parametrize("method", ["rtn", "hqq", "gptq", "quanto", "bnb"])
def test_error_and_kl_strictly_ordered_by_bits(measured, method):
    ladder = LADDERS[method]
    errors = [measured[(method, b)][2] for b in ladder]
    kls = [measured[(method, b)][0] for b in ladder]
    assert errors == sorted(errors, reverse=True) and len(set(errors)) == len(errors), errors
    assert kls == sorted(kls, reverse=True) and len(set(kls)) == len(kls), kls


def test_activation_quantization_adds_error_to_its_weight_format(measured):
    # W8A8 = the W8 weights plus quantized activations: the same weights, more KL
    assert measured[("quanto-a8", 8)][2] == pytest.approx(measured[("quanto", 8)][2], rel=1e-6)
    assert measured[("quanto-a8", 8)][0] > measured[("quanto", 8)][0]
    assert measured[("quanto-fp8-a8", 8)][2] == pytest.approx(measured[("quanto-fp8", 8)][2], rel=1e-6)
    assert measured[("quanto-fp8-a8", 8)][0] > measured[("quanto-fp8", 8)][0]


def test_bnb_four_bit_formats_are_different_codes(measured):
    # nf4 and fp4 quantize the same weights on different 4-bit grids
    nf4, fp4 = measured[("bnb", 4)][2], measured[("bnb-fp4", 4)][2]
    assert nf4 != pytest.approx(fp4, rel=1e-3)
    assert max(nf4, fp4) > measured[("bnb", 8)][2]


def test_results_record_formats(session, measured):
    records = {r["id"]: r for r in session.variant_records()}
    assert records[f"{MODEL}-quanto-a8-8b"]["activation_bits"] == 8
    assert records[f"{MODEL}-quanto-fp8-8b"]["weight_format"] == "float8"
    assert records[f"{MODEL}-bnb-fp4-4b-g64"]["weight_format"] == "fp4"
    assert records[f"{MODEL}-gptq-4b-g64"]["activation_bits"] is None


def test_gptq_writes_nothing_in_the_working_directory(session, tmp_path, monkeypatch):
    # gptqmodel logs under ./logs by default; a user's checkout must stay clean
    monkeypatch.chdir(tmp_path)
    variant = next(v for v in session.variants if v.method == "gptq" and v.bits == 4)
    get_backend("gptq").quantize(session.base_model(variant), 4, 64, calibration=session.calibration_texts()[:16])
    assert list(tmp_path.iterdir()) == []
