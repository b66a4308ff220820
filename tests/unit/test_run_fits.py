"""The run's summary laws and sweet spots, from records alone (no model)."""

import pytest

from pytest_qrel.results import Record
from pytest_qrel.summary import sweet_spots


def typed(records: list[dict]) -> list[Record]:
    """Records as results.json has them, with the fields a test does not care about filled in."""
    base = {"test": "t", "property": None, "model": "m", "method": "hqq", "bits": 4, "group_size": None,
            "metric": None, "status": "pass"}
    return [Record.from_dict({**base, **r}) for r in records]


def test_sweet_spots_are_the_best_variant_within_each_budget():
    variants = [{"id": i, "total_bits": b, "bits": bits, "method": "hqq", "model": "m"}
                for i, b, bits in [("a", 100.0, 2), ("b", 150.0, 3), ("c", 200.0, 4), ("d", 400.0, 8), ("e", 300.0, 4)]]
    records = [{"variant": i, "metric": "kl", "status": "pass", "value": v}
               for i, v in [("a", 0.9), ("b", 1.2), ("c", 0.1), ("d", 0.001), ("e", 0.2)]]
    frontier = sweet_spots(variants, typed(records), "kl")
    # b is worse than the cheaper a; e is worse than the cheaper c: neither is a sweet spot
    assert [(s.variant, s.total_bits) for s in frontier] == [("a", 100.0), ("c", 200.0), ("d", 400.0)]
    higher = sweet_spots(variants, typed(records), "kl", higher_is_better=True)
    assert [s.variant for s in higher] == ["a", "b"]


def test_quantization_ratio_law_is_fitted_when_the_run_varies_the_ratio():
    """Paper 004 Scaling Law 1 from the run's records: each model's largest ratio within the
    KL budget, and model size against it (k, c recovered from values made to follow it)."""
    import numpy as np

    from pytest_qrel.summary import run_fits

    k, c = -11.68, 12.0
    variants, records = [], []
    for i, tolerable in enumerate([0.5, 0.7, 0.8, 0.9]):
        params = float(np.exp(k * (1 - tolerable) + c))
        for ratio in (0.5, 0.7, 0.8, 0.9, 1.0):
            vid = f"m{i}-rtn-4b-q{ratio}"
            variants.append({"id": vid, "model": f"m{i}", "params": params, "bits": 4, "quant_ratio": ratio,
                             "total_bits": params * (4 * ratio + 32 * (1 - ratio)), "effective_bits": 4.3,
                             "group_size": 64, "method": "rtn"})
            value = 0.05 if ratio <= tolerable else 0.5  # within the 0.1 budget up to the tolerable ratio
            records.append({"variant": vid, "metric": "kl_to_base", "property": "kl", "status": "pass",
                            "value": value, "threshold": 0.1})
    (law,) = [f for f in run_fits(variants, typed(records)) if f["law"] == "quantization_ratio"]
    assert law["fitted"] and law["n"] == 4
    assert law["coefficients"]["k"] == pytest.approx(k, rel=1e-6) and law["coefficients"]["c"] == pytest.approx(c, rel=1e-6)
    # no ratio axis: no such law
    plain = [dict(v, quant_ratio=1.0) for v in variants if v["quant_ratio"] == 1.0]
    assert not [f for f in run_fits(plain, typed(records)) if f["law"] == "quantization_ratio"]


def test_laws_are_fitted_for_every_metric_of_the_run_per_task():
    """KL and each per-task calibration/confidence metric get their laws; values a law cannot
    take or too few points are reported as not fitted, never dropped."""
    import math

    from pytest_qrel.summary import run_fits

    variants, records = [], []
    for i, params in enumerate([2e4, 6e4, 2e5, 4e5, 8e5]):
        vid = f"m{i}-hqq-4b"
        total = params * 4.3
        variants.append({"id": vid, "model": f"m{i}", "params": params, "bits": 4, "quant_ratio": 1.0,
                         "total_bits": total, "effective_bits": 4.3, "group_size": 64, "method": "hqq"})
        kl = 0.02 * math.log(total) ** 2 - 0.5 * math.log(total) + 4.0
        records += [
            {"variant": vid, "metric": "kl_to_base", "property": "kl", "status": "pass", "value": kl, "threshold": 0.1},
            {"variant": vid, "metric": "ece_increase", "property": "calibration", "task": "zoo_recall",
             "status": "pass", "value": 0.01 * (i + 1), "threshold": 0.05},
        ]
    fits = {(f["metric"], f["law"], f["family"]): f for f in run_fits(variants, typed(records))}
    kl = fits[("kl_to_base", "log_quadratic", "4-bit")]
    assert kl["fitted"] and kl["n"] == 5 and kl["coefficients"]["a"] == pytest.approx(0.02, rel=1e-6)
    assert fits[("ece_increase@zoo_recall", "log_quadratic", "4-bit")]["fitted"]
    # every variant has the same effective bits: the multiplicative law cannot separate its
    # factors, and the report says so instead of inventing exponents
    power = fits[("ece_increase@zoo_recall", "power_law", "all")]
    assert power["fitted"] is False and power["reason"]
