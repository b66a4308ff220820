"""A pruned variant built from its base as a quantized one is: measured (coverage, measured
sparsity, bits), a shortfall lowering its coverage, and stored and read back bit-identically."""

import math

import pytest
import torch

from pytest_qrel.data import calibration_texts
from pytest_qrel.models import load_base, zoo_dir
from pytest_qrel.quant.pruner import PRUNERS
from pytest_qrel.results import coverage_problem
from pytest_qrel.variants import Sparsity


@pytest.fixture(scope="module")
def zoo_xs():  # type: ignore[no-untyped-def]
    return load_base("zoo-xs", str(zoo_dir() / "zoo-xs"), torch.device("cpu"))


@pytest.mark.parametrize("method", sorted(PRUNERS))
@pytest.mark.parametrize("text", ["0.1", "2:4"])
def test_pruned_variant_is_measured_and_cached_bit_identically(zoo_xs, tmp_path, method: str, text: str) -> None:  # type: ignore[no-untyped-def]
    base, asked = zoo_xs, Sparsity.parse(text)
    pruner = PRUNERS[method].at(asked)
    model, info, pruned = pruner.prune(base, calibration_texts()[:16])
    assert info.coverage == 1.0 and info.skipped == {} and pruned.shortfall() is None
    assert sorted(info.quantized_layers) == sorted(base.linear_layer_names)
    assert coverage_problem(info.as_dict(), 1.0) is None
    widths = {n: base.model.get_submodule(n).weight.shape[1] for n in base.linear_layer_names}
    for name, s in pruned.sparsity.items():  # per-row ceil for unstructured, exactly half for 2:4
        assert s == (0.5 if asked.m else math.ceil(asked.fraction * widths[name] - 1e-9) / widths[name])
    assert info.total_bits < info.base_total_bits == 32 * base.params
    assert info.measured_sparsity == pytest.approx(pruned.measured)
    # bits per pruned weight: unstructured, 32 per non-zero + a 1-bit map; 2:4, (32 + 2) / 2
    expected = 17.0 if asked.m else sum(
        (32 * (1 - pruned.sparsity[n]) + 1) * pruned.numel[n] for n in pruned.sparsity) / sum(pruned.numel.values())
    assert info.effective_bits == pytest.approx(expected)

    pruner.save_quantized(model, info.quantized_layers, tmp_path)
    loaded = pruner.load_quantized(base, 8, None, info.quantized_layers, tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    again = pruner.measure(base, loaded)
    assert again.as_dict() == info.as_dict()


def test_shortfall_and_head_lower_the_coverage(zoo_xs) -> None:  # type: ignore[no-untyped-def]
    base, pruner = zoo_xs, PRUNERS["wanda"]
    model, _, _ = pruner.at(Sparsity(0.1)).prune(base, calibration_texts()[:16])
    short = pruner.at(Sparsity(0.3)).measure(base, model)  # pruned to 0.1, asked 0.3
    assert short.coverage == 0.0 and all("below the asked 0.3" in why for why in short.skipped.values())
    assert "minimum coverage" in str(coverage_problem(short.as_dict(), 1.0))
    _, info, _ = pruner.at(Sparsity(0.1)).prune(base, calibration_texts()[:16], layers=[*base.linear_layer_names, "lm_head"])
    assert info.skipped == {"lm_head": "the output head or the input embeddings (tied to the head): never pruned"}
    assert 0 < info.coverage < 1


@pytest.mark.parametrize("pruned_as, asked_as", [("0.5", "2:4"), ("2:4", "1:2")])
def test_weights_not_in_the_asked_n_of_m_pattern_lower_the_coverage(zoo_xs, pruned_as: str, asked_as: str) -> None:  # type: ignore[no-untyped-def]
    # as many zeros as asked, but not n of each m (a cache entry's files of another sparsity):
    # not what sparse kernels store, so not the variant, however many zeros it has
    base, pruner = zoo_xs, PRUNERS["wanda"]
    model, _, _ = pruner.at(Sparsity.parse(pruned_as)).prune(base, calibration_texts()[:16])
    other = pruner.at(Sparsity.parse(asked_as)).measure(base, model)
    assert other.coverage == 0.0 and all(f"fewer than {asked_as.split(':')[0]} zeros" in why
                                         for why in other.skipped.values())
    assert "minimum coverage" in str(coverage_problem(other.as_dict(), 1.0))
