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
