"""results.json's schema is written down once (pytest_qrel/schema.py, issue 35 item 2): the
writer's output is what it declares, both readers check through it, docs/results-json.md
documents every key, the run summary is typed, and summary.py / merge.py take their
properties from the catalog instead of naming them."""

import json
import re
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _variant_entry() -> dict:
    from pytest_qrel.variants import QuantizedInfo, Variant, variant_record

    info = QuantizedInfo(["a", "b"], ["a", "b", "c"], 3, 64, 4.3125, 5.9, 1000, 5.4e5, 6000, 0.66, 0.66,
                         base_total_bits=6.5e5, skipped={"c": "too narrow"})
    return variant_record(Variant("m", "/models/m", "hqq", 4, 64),
                          {"weight_format": "int", "activation_bits": None, **info.as_dict(), "cache": "hit",
                           "kl_base_forward_passes": 0, "status": "pass", "reason": None})


def test_what_a_run_writes_of_a_variant_and_a_record_is_what_the_schema_declares(tmp_path):
    from pytest_qrel import schema, schema_check
    from pytest_qrel.report import write_run
    from pytest_qrel.results import Record
    from pytest_qrel.summary import summarize

    variant = _variant_entry()
    assert set(variant) <= set(schema.keys_of(schema.VariantEntry))  # nothing undeclared
    records = [Record("t[m-hqq-4b-g64]", "kl", "m-hqq-4b-g64", "m", "hqq", 4, 64, "kl_to_base", "pass", value=0.01,
                      base_value=0.0, threshold=0.1, higher_is_better=False, coverage=0.66, min_coverage=0.5,
                      baseline_value=0.02, change=-0.01, detail={"tokens": 10}),
               Record("t2[m-hqq-4b-g64]", "kl", "m-hqq-4b-g64", "m", "hqq", 4, 64, None, "error", "it broke")]
    core = set(records[0].as_dict()) - {"tokens"}
    assert core == set(schema.keys_of(schema.ResultEntry)) - {"task"}
    summary = summarize([{**variant, "id": "m-hqq-4b-g64"}], records)
    write_run(tmp_path, summary, summary.variants, run={"settings": {"seed": "0"}, "models_named": None})
    doc = json.loads((tmp_path / "results.json").read_text())
    assert schema_check.entry_problem(doc, schema.ResultsDocument) is None
    assert [schema_check.result_problem(r) for r in doc["results"]] == [None, None]
    assert all(schema_check.entry_problem(f, schema.FitEntry) is None for f in doc["fits"])


@pytest.mark.parametrize("variant, record, message", [
    ({"quant_ratio": "all"}, {}, "variant 0 of *b.json is not valid: expected 'quant_ratio' to be number, but got 'all'"),
    ({}, {"passed": "yes"}, "record 0 of *b.json (*) is not valid: expected 'passed' to be bool, but got 'yes'"),
    ({}, {"group_size": 6.5}, "record 0 of *b.json (*) is not valid: expected 'group_size' to be int or null, but got 6.5"),
])
def test_the_merge_reads_every_key_the_schema_declares(tmp_path, variant, record, message):
    """A key is declared once: a variant's or record's key of the wrong type is refused by the
    merge because schema.py declares its type, with no list of keys in merge.py or results.py."""
    from pytest_qrel.merge import read_runs

    paths = []
    for name, model in (("a.json", "ma"), ("b.json", "mb")):
        vid = f"{model}-rtn-8b-g64"
        rec = {"test": f"test_kl_to_base[{vid}]", "property": "kl", "variant": vid, "model": model, "method": "rtn",
               "bits": 8, "group_size": 64, "metric": "kl_to_base", "status": "pass", "passed": True, "reason": None,
               "value": 0.001, "base_value": 0.0, "threshold": 0.01, "higher_is_better": False, "coverage": 1.0,
               "min_coverage": 1.0, **(record if name == "b.json" else {})}
        doc = {"schema": 1, "variants": [{"id": vid, "model": model, **(variant if name == "b.json" else {})}],
               "results": [rec], "fits": [], "settings": {"seed": "0"}, "models_named": [model]}
        (tmp_path / name).write_text(json.dumps(doc))
        paths.append(tmp_path / name)
    with pytest.raises(pytest.UsageError) as error:
        read_runs(tuple(paths))
    assert re.fullmatch(re.escape(message).replace(r"\*", ".*"), str(error.value).removeprefix("--qrel-merge: "))


def test_a_baseline_and_a_merge_read_a_record_through_one_check():
    """The baseline's check is the schema's check of a compared record (plus a KL value's
    bounds); the merge's is the same, then every key of the record."""
    from pytest_qrel import baseline, results
    from pytest_qrel import schema_check as schema

    compared = {"test": "t", "metric": "kl_to_base", "status": "pass", "value": "abc"}
    assert baseline.record_problem(compared) == schema.result_problem(compared, whole=False) == \
        results.record_problem(compared) == "expected a number as the value of a passed metric, but got 'abc'"
    assert baseline.record_problem({**compared, "value": 0.1}) is None
    assert results.record_problem({**compared, "value": 0.1}) == schema.result_problem({**compared, "value": 0.1}) \
        == "it has no 'variant'"


def _loose(hint: object) -> bool:
    """Whether a type hint is or holds an untyped dict (``dict``, ``list[dict]``, ``dict[str, dict]``)."""
    if hint is dict or hint is typing.Any:
        return True
    return any(_loose(a) for a in typing.get_args(hint))


def test_the_run_summary_holds_typed_records_not_dicts():
    from pytest_qrel.summary import RobustnessTable, RunSummary

    for cls in (RunSummary, RobustnessTable):
        loose = {name: hint for name, hint in typing.get_type_hints(cls).items() if _loose(hint)}
        assert loose == {}, cls.__name__


def test_summary_and_merge_take_their_properties_from_the_catalog():
    """No built-in property's name in summary.py or merge.py: what they need of a property
    (its records per condition, a threshold per bit-width, ...) the catalog says."""
    from pytest_qrel.properties import BUILTIN

    names = {p.key for p in BUILTIN} | {p.records_as for p in BUILTIN}
    for module in ("summary.py", "merge.py"):
        source = (ROOT / "pytest_qrel" / module).read_text()
        found = sorted(n for n in names if re.search(rf"""["']{n}["']""", source))
        assert found == [], module


def test_docs_name_every_key_of_the_schema():
    from pytest_qrel import schema

    doc = (ROOT / "docs" / "results-json.md").read_text()
    kinds = [schema.ResultsDocument, schema.VariantEntry, schema.ResultEntry, schema.FitEntry, schema.DriftRow,
             schema.KnowledgeRow, schema.GateOutcome, schema.KLStatistics, schema.KLTailDetail, schema.TestDetail,
             schema.DriftDetail, schema.RobustnessDetail, schema.FuzzDetail, schema.LawDetail, schema.BaselineDetail,
             schema.RobustnessComparison, schema.PrunedVsQuantized, schema.PrunedPoint, schema.PrunedPair,
             schema.PrunedFinding]
    missing = {k.__name__: [key for key in schema.keys_of(k) if f"`{key}`" not in doc] for k in kinds}
    assert {k: v for k, v in missing.items() if v} == {}
    assert "schema.py" in doc
    # and the writer's docstring points there, not to a DESIGN.md the repository does not hold
    assert "schema.py" in (ROOT / "pytest_qrel" / "report" / "results_json.py").read_text().split('"""')[1]


def _coverage_failed_run(tmp_path: Path, name: str, model: str) -> Path:
    """A run's results.json as the default zoo run writes it where bnb's CPU kernel leaves
    layers unquantized: a robustness metric that could not be checked fails with the variant's
    coverage, no value and no direction (record 329 of that run's file)."""
    vid = f"{model}-bnb-4b-g64"
    common = {"property": "robustness", "variant": vid, "model": model, "method": "bnb", "bits": 4, "group_size": 64,
              "perturbation": "case_change", "intensity": 4}
    failed = {**common, "test": f"test_perturbation_robustness[{vid}-case_change-i4]", "metric": "accuracy_drop",
              "status": "fail", "passed": False, "value": None, "base_value": None, "threshold": 0.05,
              "higher_is_better": None, "coverage": None, "min_coverage": None,
              "reason": "quantized 25.0% of the weights asked for, below the minimum coverage 100%; ... "
                        "(accuracy_drop not checked: the base's accuracy under this perturbation is 0.0375)"}
    doc = {"schema": 1, "variants": [{"id": vid, "model": model}], "results": [failed], "fits": [],
           "settings": {"seed": "0"}, "models_named": [model]}
    (tmp_path / name).write_text(json.dumps(doc))
    return tmp_path / name


def test_a_record_failed_by_its_variants_coverage_without_a_value_is_read_back(tmp_path):
    """The default zoo run's own results.json was refused as --qrel-baseline and by --qrel-merge
    ("expected a number as the value of a failed metric, but got None"): a record that failed
    by its variant's coverage on a metric that could not be checked has no value. It is read
    back, kept failed by the merge, and compares with nothing; a passed one without a value, or
    a failed one without its reason, is still refused."""
    from pytest_qrel import schema_check
    from pytest_qrel.baseline import Baseline
    from pytest_qrel.merge import read_runs

    path = _coverage_failed_run(tmp_path, "a.json", "ma")
    record = json.loads(path.read_text())["results"][0]
    assert schema_check.result_problem(record) is None
    assert Baseline.read(path).values == {}  # nothing to compare with
    merged = read_runs((path, _coverage_failed_run(tmp_path, "b.json", "mb")))
    assert [(r.status, r.value) for r in merged.records if r.metric == "accuracy_drop"] == [("fail", None)] * 2
    assert schema_check.result_problem({**record, "status": "pass", "passed": True}) == \
        "expected a number as the value of a passed metric, but got None"
    assert schema_check.result_problem({**record, "reason": None}) == \
        "expected a number as the value of a failed metric, but got None"
