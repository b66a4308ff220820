"""Pruning as an axis of the matrix: --qrel-sparsities parsed into pruned variants (ids, bits
they are gated at), refused when malformed, and a pruned variant's law fitted over its
sparsity's variants only, never in a bit-width's law or paper 002/004's quantization laws."""

import math
from pathlib import Path

import pytest

from pytest_qrel.config import QrelConfig
from pytest_qrel.drift_table import drift_summary
from pytest_qrel.matrix import build_matrix
from pytest_qrel.measures.scaling import law_gate
from pytest_qrel.results import Record
from pytest_qrel.summary import run_fits
from pytest_qrel.variants import PRUNED_BITS, Sparsity, Variant, bits_label, law_family


def _config(tmp_path: Path, **values) -> QrelConfig:
    base = {"qrel_models": "zoo-xs", "qrel_no_cache": True}
    base.update({f"qrel_{k}": v for k, v in values.items()})
    return QrelConfig.from_values(base, tmp_path)


def test_pruned_variants_name_method_and_sparsity_and_are_gated_at_eight_bits(tmp_path):
    config = _config(tmp_path, methods="rtn,wanda,sparsegpt", bits="4", sparsities="0.1,0.5,2:4")
    ids = [v.id for v in build_matrix(config)]
    assert ids == ["zoo-xs-rtn-4b-g64", "zoo-xs-wanda-s10", "zoo-xs-wanda-s50", "zoo-xs-wanda-2of4",
                   "zoo-xs-sparsegpt-s10", "zoo-xs-sparsegpt-s50", "zoo-xs-sparsegpt-2of4"]
    pruned = [v for v in build_matrix(config) if v.sparsity is not None]
    assert {(v.bits, v.group_size, v.quant_ratio) for v in pruned} == {(PRUNED_BITS, None, 1.0)}
    assert [v.sparsity.text for v in pruned[:3]] == ["0.1", "0.5", "2:4"]  # type: ignore[union-attr]
    # the default sparsities are paper 000 §4.2's
    assert [s.text for s in _config(tmp_path, methods="wanda").sparsities] == ["0.1", "0.3", "0.5", "2:4"]


def test_a_run_of_pruning_methods_alone_needs_an_eight_bit_kl_threshold(tmp_path):
    with pytest.raises(pytest.UsageError, match="--qrel-kl-threshold: no threshold for 8-bit variants"):
        _config(tmp_path, methods="wanda", bits="4", kl_threshold="4:0.1")
    assert _config(tmp_path, methods="rtn", bits="4", kl_threshold="4:0.1").bits == (4,)  # no pruning: no need


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.5", "4:2", "2:2", "0:4", "half", "2:4:8", "0.5,0.5"])
def test_malformed_sparsities_are_usage_errors_naming_the_option(tmp_path, value):
    with pytest.raises(pytest.UsageError, match=r"--qrel-sparsities: "):
        _config(tmp_path, methods="wanda", sparsities=value)


@pytest.mark.parametrize("value", ["", ","])
def test_no_sparsity_is_a_usage_error_not_a_pruning_method_that_tests_nothing(tmp_path, value):
    # as --qrel-bits: rtn,wanda with no sparsity would run rtn alone and pass, wanda never tried
    with pytest.raises(pytest.UsageError, match=r"--qrel-sparsities: expected at least one sparsity"):
        _config(tmp_path, methods="rtn,wanda", bits="4", sparsities=value)


def test_a_repeated_sparsity_is_named_as_written():
    with pytest.raises(pytest.UsageError, match=r"^--qrel-sparsities: 0.5, 2:4 given more than once$"):
        _config(Path.cwd(), methods="wanda", sparsities="0.5,2:4,0.50,2:4")


def test_sparsities_that_share_an_id_are_refused(tmp_path):
    with pytest.raises(pytest.UsageError, match=r"--qrel-sparsities: 0.1 and 0.1000001 would share the test id "
                                                r"'zoo-xs-wanda-s10'"):
        build_matrix(_config(tmp_path, methods="wanda", sparsities="0.1,0.1000001"))


def test_sparsity_text_round_trips_and_labels():
    for text, label in [("0.5", "s50"), ("0.1", "s10"), ("0.125", "s12.5"), ("2:4", "2of4"), ("1:8", "1of8")]:
        s = Sparsity.parse(text)
        assert s.text == text and Sparsity.parse(s.text) == s and s.label == label


def _entry(vid: str, model: str, bits: int, total: float, sparsity: str | None = None) -> dict:
    return {"id": vid, "model": model, "method": "wanda" if sparsity else "rtn", "bits": bits, "sparsity": sparsity,
            "total_bits": total, "params": total / 8, "effective_bits": bits + 0.3, "group_size": None}


def test_laws_are_fitted_per_sparsity_and_quantization_laws_leave_pruned_variants_out():
    variants, records = [], []
    for i, size in enumerate([1e5, 2e5, 4e5, 8e5, 1.6e6]):
        for vid, bits, total, sparsity, kl in [(f"m{i}-rtn-8b", 8, size * 8.4, None, 1e-3 / (i + 1)),
                                               (f"m{i}-rtn-4b", 4, size * 4.3, None, 0.1 / (i + 1)),
                                               (f"m{i}-wanda-s50", 8, size * 17, "0.5", 0.3 / (i + 1))]:
            variants.append(_entry(vid, f"m{i}", bits, total, sparsity))
            records.append(Record.from_dict({"test": "t", "property": "kl", "variant": vid, "model": f"m{i}",
                                             "method": "x", "bits": bits, "group_size": None, "metric": "kl_to_base",
                                             "status": "pass", "value": kl}))
    fits = run_fits(variants, records)  # type: ignore[arg-type]
    laws = {f["family"]: f for f in fits if f["law"] == "log_quadratic"}
    assert list(laws) == ["4-bit", "8-bit", "sparsity 0.5"]
    assert all(law["fitted"] and len(law["points"]) == 5 for law in laws.values())
    assert laws["sparsity 0.5"]["sparsity"] == "0.5" and laws["sparsity 0.5"]["bits"] == 8
    # the 8-bit law holds the 8-bit quantized variants only, not the pruned ones gated at 8 bits
    assert sorted(p[0] for p in laws["8-bit"]["points"]) == sorted(v["total_bits"] for v in variants
                                                                   if v["id"].endswith("8b"))
    (power,) = [f for f in fits if f["law"] == "power_law"]
    assert power["n"] == 10  # the quantized variants only


def test_a_pruned_variants_law_gate_names_its_sparsity():
    gate = law_gate("kl_to_base", "sparsity 0.5", 0.3, 1e6, [(0.2, 2e6)], 0.95, False)
    assert gate.measurement.unchecked == ("no sparsity 0.5 law to bound kl_to_base with: the other sparsity 0.5 "
                                          "variants give 1 point, and a law of 3 coefficients needs 4")
    pruned = Variant("m", "src", "wanda", PRUNED_BITS, None, sparsity=Sparsity.parse("2:4"))
    assert pruned.family == "sparsity 2:4" == law_family({"bits": 8, "sparsity": "2:4"})
    assert Variant("m", "src", "rtn", 8, 64).family == "8-bit"
    assert bits_label({"bits": 8, "sparsity": "0.1", "measured_sparsity": 0.109375}) == "0.1 sparse (0.109)"
    assert bits_label({"bits": 4, "sparsity": None}) == "4"


def test_knowledge_strata_are_of_quantized_variants_only():
    comparison = {"delta": {"accuracy": -0.5, "conf_true": -0.5}}
    records, variants = [], []
    for vid, sparsity, drop in [("m-rtn-8b", None, -0.01), ("m-wanda-s50", "0.5", -0.5)]:
        variants.append(_entry(vid, "m", 8, 1e6, sparsity))
        records.append(Record.from_dict({
            "test": "t", "property": "calibration", "variant": vid, "model": "m", "method": "x", "bits": 8,
            "group_size": None, "metric": "ece_increase", "status": "pass", "value": 0.0, "task": "zoo_recall",
            "stratum": "memorization", "questions": 10,  # a record's detail, as results.json has it
            "comparison": {**comparison, "delta": {"accuracy": drop, "conf_true": drop}}}))
    drift = drift_summary(records, variants)  # type: ignore[arg-type]
    assert len(drift["tasks"]) == 2  # both rows are listed
    (row,) = drift["knowledge"]
    assert row["accuracy_drop_memorization"] == pytest.approx(0.01) and not math.isnan(row["conf_true_drop"])


def test_methods_help_lists_every_registered_method():
    from pytest_qrel import options
    from pytest_qrel.quant import BACKENDS, PRUNERS

    quantizers = [name for name, backend in BACKENDS.items() if backend.quantizes]  # not the load-only ones
    assert sorted(options.QUANT_METHODS) == sorted(quantizers) and sorted(options.PRUNE_METHODS) == sorted(PRUNERS)
    (methods,) = [o for o in options.OPTIONS if o.flag == options.METHODS]
    assert all(name in methods.help for name in [*quantizers, *PRUNERS])
