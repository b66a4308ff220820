"""Results.merge keeps what each report says of a variant key by key (issue 34, item 16): under
xdist a variant's tests can report from two workers (its KL test, and a fitted-law test on the
worker that runs them all), and the later one must not drop what the earlier one measured, so
results.json holds the same variant fields as a single process's."""

from pytest_qrel.results import Results


def _payload(variant_id: str, info: dict) -> dict:
    return {"results": [], "variant_info": {variant_id: info}, "variant": variant_id}


def test_a_later_report_of_a_variant_keeps_the_fields_of_an_earlier_one():
    results = Results()
    results.merge(_payload("zoo-xs-hqq-4b-g64", {"coverage": 1.0, "cache": "miss", "kl_base_forward_passes": 8}))
    results.merge(_payload("zoo-xs-hqq-4b-g64", {"coverage": 1.0, "cache": "hit"}))  # the fitted-law test's worker
    assert results.variant_info["zoo-xs-hqq-4b-g64"] == {"coverage": 1.0, "cache": "hit", "kl_base_forward_passes": 8}
    # a quantization error replaces the fields and a later success clears it, as one process's store does
    results.merge(_payload("v", {"coverage": 1.0, "kl_base_forward_passes": 8}))
    results.merge(_payload("v", {"error": "out of memory"}))
    assert results.variant_info["v"] == {"error": "out of memory"}
    results.merge(_payload("v", {"coverage": 0.5}))
    assert results.variant_info["v"] == {"coverage": 0.5}


def test_a_lost_fitted_law_test_is_recorded_as_an_error(tmp_path):
    """A fitted-law test's parameter is ``<metric>-<variant id>``: a report of it with nothing
    else (its worker died) still names its variant, so it is an ERROR, not dropped (review item 4)."""
    from pytest_qrel.config import QrelConfig
    from pytest_qrel.matrix import build_matrix

    config = QrelConfig.from_values({"qrel_models": "zoo-xs", "qrel_methods": "hqq", "qrel_bits": "4,8",
                                     "qrel_no_cache": True}, tmp_path)
    nodeid = "suites/test_scaling.py::test_within_scaling_law[kl_to_base-zoo-xs-hqq-4b-g64]"
    from pytest_qrel.matrix import variant_of_nodeid

    variant = variant_of_nodeid(nodeid, build_matrix(config), config.catalog.scaled_metrics())
    assert variant is not None and variant.id == "zoo-xs-hqq-4b-g64"
    payload = Results().lost(nodeid.rsplit("::", 1)[-1], variant, "node down: gw1")
    assert [(r["variant"], r["status"]) for r in payload["results"]] == [("zoo-xs-hqq-4b-g64", "error")]
    assert payload["results"][0]["reason"].startswith("worker crashed during test_within_scaling_law[")
