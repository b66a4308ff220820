"""--qrel-merge (issue 17, item 4b): runs made apart, one per model, merged into one report
equal to a single run over their union (results.json field by field, the report's files and
the exit status); runs that cannot make one run are a one-line usage error."""

import json

import pytest

ARGS = ["--qrel-methods=rtn", "--qrel-bits=2,4,8", "--qrel-cache-dir=cache", "-p", "no:randomly", "-k",
        "test_kl_to_base or test_confidence_shift", "--qrel-tasks=zoo_recall", "--qrel-task-limit=100"]


def _doc(pytester, report: str) -> dict:
    doc = json.loads((pytester.path / report / "results.json").read_text())
    for v in doc["variants"]:
        v.pop("cache", None)  # hit or miss, and whether the base's KL outputs were computed or read
        v.pop("kl_base_forward_passes", None)  # back: the only fields a second run may change
    return doc


def test_the_merge_equals_the_single_run_field_by_field(pytester):
    """One run over zoo-xs and zoo-s, the same as two runs of one model each, and their merge."""
    p = pytester
    whole = p.runpytest("--qrel-models=zoo-xs,zoo-s", *ARGS, "--qrel-report-dir=whole")
    parts = [p.runpytest(f"--qrel-models={m}", *ARGS, f"--qrel-report-dir={m}") for m in ("zoo-xs", "zoo-s")]
    merged = p.runpytest("--qrel-merge", "zoo-xs/results.json", "zoo-s/results.json", "--qrel-report-dir=merged")
    assert whole.ret == 1 and all(r.ret == 1 for r in parts)  # 2-bit rtn fails its KL gate on both models
    assert merged.ret == whole.ret
    merged.assert_outcomes()  # no test ran
    single, joined = _doc(p, "whole"), _doc(p, "merged")
    assert single.keys() == joined.keys()
    for key in single:
        assert joined[key] == single[key], key
    assert len(single["results"]) >= 12 and single["fits"]
    assert (p.path / "merged" / "report.md").read_text() == (p.path / "whole" / "report.md").read_text()
    assert sorted(f.name for f in (p.path / "merged").glob("*.png")) == \
        sorted(f.name for f in (p.path / "whole").glob("*.png"))
    merged.stdout.fnmatch_lines(["*pytest-qrel: 2 runs merged*", "*kl_to_base*"])


def _run_file(p, name: str, model: str, **changes) -> str:
    """A minimal results.json of a run of ``model`` (no records), with ``changes`` made."""
    doc = {"schema": 1, "variants": [{"id": f"{model}-rtn-8b-g64", "model": model}], "results": [], "fits": [],
           "settings": {"seed": "0", "kl-threshold": "2:0.5,3:0.2,4:0.1,8:0.01"}, "models_named": [model]}
    for key, value in changes.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    (p.path / name).write_text(json.dumps(doc))
    return name


@pytest.mark.parametrize(
    "other, message",
    [
        ({"settings": {"seed": "1", "kl-threshold": "2:0.5,3:0.2,4:0.1,8:0.01"}},
         "*--qrel-merge: */b.json was run with --qrel-seed='1', */a.json with '0': runs with different settings "
         "cannot be merged*"),
        ({"settings": None}, "*--qrel-merge: */b.json records no settings (written by an older pytest-qrel): rerun it*"),
        ({"schema": 2}, "*--qrel-merge: */b.json has schema 2, but this pytest-qrel reads schema 1*"),
        ({"model": "zoo-xs"}, "*--qrel-merge: model zoo-xs is in both */a.json and */b.json: each model must be "
                              "tested in one run*"),
        ({"name": "nowhere.json"}, "*--qrel-merge: cannot read */nowhere.json (No such file or directory)*"),
        ({"name": None}, "*--qrel-merge: expected at least two results.json files, but got 1*"),
    ],
)
def test_runs_that_cannot_make_one_run_are_a_one_line_usage_error(pytester, other, message):
    a = _run_file(pytester, "a.json", "zoo-xs")
    name = other.pop("name", "b.json")
    files = [a] if name is None else [a, name]
    if name == "b.json":
        _run_file(pytester, "b.json", other.pop("model", "zoo-s"), **other)
    result = pytester.runpytest("--qrel-merge", *files, "--qrel-report-dir=bad")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert not (pytester.path / "bad" / "results.json").exists()


def test_merged_runs_that_checked_nothing_fail_the_merge(pytester):
    """Two runs whose every gate was not checked (too little data) merge into a run that checked
    nothing: it fails, as such a single run does, unless --qrel-allow-unchecked was set."""
    skipped = {"test": "test_kl_to_base[{m}-rtn-8b-g64]", "property": "kl", "variant": "{m}-rtn-8b-g64",
               "model": "{m}", "method": "rtn", "bits": 8, "group_size": 64, "metric": "kl_to_base",
               "status": "skip", "reason": "too few tokens"}
    files = []
    for name, model in (("a.json", "zoo-xs"), ("b.json", "zoo-s")):
        record = {k: v.format(m=model) if isinstance(v, str) else v for k, v in skipped.items()}
        files.append(_run_file(pytester, name, model, results=[record]))
    result = pytester.runpytest("--qrel-merge", *files, "--qrel-report-dir=merged")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*nothing was checked*"])


LAW = ["--qrel-methods=hqq,rtn", "--qrel-bits=4", "--qrel-cache-dir=cache", "-p", "no:randomly",
       "-k", "test_kl_to_base or test_within_scaling_law"]


def test_a_merge_fits_every_law_over_the_union_as_the_single_run(pytester):
    """Issue 34, item 7: each fitted-law bound is fitted on the other variants of its bit-width of
    every model. Alone, the run of zoo-xs and zoo-s has 3 other 4-bit points per variant and the
    run of zoo-m 1 (no law: not checked); the single run over the three has 5, and so must the
    merge: its scaling records, verdicts, values and bands, equal the single run's."""
    p = pytester
    whole = p.runpytest("--qrel-models=zoo-xs,zoo-s,zoo-m", *LAW, "--qrel-report-dir=whole")
    parts = [p.runpytest(f"--qrel-models={m}", *LAW, f"--qrel-report-dir={d}")
             for m, d in (("zoo-xs,zoo-s", "a"), ("zoo-m", "b"))]
    merged = p.runpytest("--qrel-merge", "a/results.json", "b/results.json", "--qrel-report-dir=merged")
    single, joined = _doc(p, "whole"), _doc(p, "merged")
    laws = [[r for r in doc["results"] if r["property"] == "scaling"] for doc in (single, joined)]
    assert len(laws[0]) == 6 and all(r["status"] in ("pass", "fail") and r["fit_points"] == 5 for r in laws[0])
    alone = [r for part in ("a", "b") for r in _doc(p, part)["results"] if r["property"] == "scaling"]
    assert {r["status"] for r in alone} == {"skip"}  # what the runs decided alone: no law
    assert laws[1] == laws[0]  # statuses, reasons, values, thresholds, bands, fit points
    assert joined["results"] == single["results"] and joined["fits"] == single["fits"]
    assert merged.ret == whole.ret and all(r.ret in (0, 1) for r in parts)


def _record(of: str, **changes) -> dict:
    """A passed KL record of model ``of``'s rtn 8-bit variant as a run writes it, with ``changes``."""
    record = {"test": f"test_kl_to_base[{of}-rtn-8b-g64]", "property": "kl", "variant": f"{of}-rtn-8b-g64",
              "model": of, "method": "rtn", "bits": 8, "group_size": 64, "metric": "kl_to_base", "status": "pass",
              "passed": True, "reason": None, "value": 0.001, "base_value": 0.0, "threshold": 0.01,
              "higher_is_better": False, "coverage": 1.0, "min_coverage": 1.0}
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def _merge_is_refused(pytester, results: list, variants: list | None, message: str) -> None:
    """Merging zoo-xs's run with a zoo-s run holding ``results`` (and ``variants``) is a one-line
    usage error matching ``message``: no traceback, no report written."""
    a = _run_file(pytester, "a.json", "zoo-xs", results=[_record("zoo-xs")])
    b = _run_file(pytester, "b.json", "zoo-s", results=results,
                  **({"variants": variants} if variants is not None else {}))
    result = pytester.runpytest("--qrel-merge", a, b, "--qrel-report-dir=bad")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert not (pytester.path / "bad" / "results.json").exists()


@pytest.mark.parametrize(
    "results, variants, message",
    [
        ([_record("zoo-s", model=...)], None, "*record 0 of */b.json (test_kl_to_base[[]zoo-s-rtn-8b-g64[]]) is not "
                                              "valid: it has no 'model'"),
        ([["not", "an", "object"]], None, "*record 0 of */b.json is not valid: expected an object, but got list"),
        ([_record("zoo-s", threshold=...)], None, "*record 0 of */b.json (*) is not valid: expected a passed record "
                                                  "to have its 'threshold', but it has none"),
        ([_record("zoo-s", bits="8")], None, "*record 0 of */b.json (*) is not valid: expected 'bits' to be int, "
                                             "but got '8'"),
        ([_record("zoo-s", variant="zoo-s-rtn-2b-g64")], None, "*record 0 of */b.json (*) is not valid: its variant "
                                                               "zoo-s-rtn-2b-g64 is not among the file's variants"),
        ([_record("zoo-s"), _record("zoo-s")], None, "*record 1 of */b.json (*) is not valid: it repeats record 0*"),
        ([], [{"model": "zoo-s"}], "*variant 0 of */b.json is not valid: expected 'id' to be str, but got None"),
        ([], ["zoo-s-rtn-8b-g64"], "*variant 0 of */b.json is not valid: expected an object, but got str"),
    ],
    ids=["no-model", "not-an-object", "no-threshold", "bits-a-string", "unlisted-variant", "duplicate", "no-id",
         "variant-not-an-object"],
)
def test_malformed_runs_are_a_one_line_usage_error(pytester, results, variants, message):
    """Issue 34, item 11: what a merge reads is checked against results.json's schema first."""
    _merge_is_refused(pytester, results, variants, message)


def test_a_merge_decides_every_status_again_from_value_and_threshold(pytester):
    """Issue 34, item 11: a record that says pass though its value is past its threshold fails
    the merge (and a fail whose value is within passes), whatever the file says."""
    edited = _record("zoo-s", value=0.5, status="pass")  # 0.5 > 0.01: a run would have failed it
    cleared = _record("zoo-xs", value=0.002, status="fail", reason="edited")
    files = [_run_file(pytester, "a.json", "zoo-xs", results=[cleared]),
             _run_file(pytester, "b.json", "zoo-s", results=[edited])]
    result = pytester.runpytest("--qrel-merge", *files, "--qrel-report-dir=merged")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    doc = json.loads((pytester.path / "merged" / "results.json").read_text())
    status = {r["variant"]: (r["status"], r["reason"]) for r in doc["results"]}
    assert status == {"zoo-xs-rtn-8b-g64": ("pass", None),
                      "zoo-s-rtn-8b-g64": ("fail", "kl_to_base = 0.5, expected <= 0.01")}


def test_a_law_the_merge_cannot_fit_as_the_single_run_is_a_usage_error(pytester):
    """A single run fits a law on every other variant of its bit-width, measuring one that no
    test of it recorded; a merge has only the records: without one it cannot decide the law."""
    variants = [{"id": f"zoo-xs-{m}-4b-g64", "model": "zoo-xs", "bits": 4, "total_bits": b}
                for m, b in (("rtn", 1.0e5), ("hqq", 1.1e5))]
    law = _record("zoo-xs", test="test_within_scaling_law[kl_to_base-zoo-xs-rtn-4b-g64]", property="scaling",
                  variant="zoo-xs-rtn-4b-g64", bits=4, status="skip", reason="no 4-bit law", value=0.05,
                  threshold=None, higher_is_better=...)
    files = [_run_file(pytester, "a.json", "zoo-xs", variants=variants, results=[law]),
             _run_file(pytester, "b.json", "zoo-s", results=[_record("zoo-s")])]
    result = pytester.runpytest("--qrel-merge", *files, "--qrel-report-dir=merged")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--qrel-merge: the law bounding test_within_scaling_law[[]kl_to_base-zoo-xs-rtn-4b-g64[]] "
                                 "is fitted on every other 4-bit variant, but no record holds zoo-xs-hqq-4b-g64's "
                                 "kl_to_base (were its tests deselected?): rerun its run with them"])


ROBUST = {"test": "test_robustness[zoo-s-rtn-8b-g64-typos-i1]", "property": "robustness", "metric": "accuracy_drop",
          "value": 0.01, "threshold": 0.05, "higher_is_better": False, "comparison": {"base": {"accuracy": 0.5}}}


@pytest.mark.parametrize(
    "results, variants, message",
    [
        ([_record("zoo-s", value=3.18, threshold=5.0)], None,
         "*record 0 of */b.json (*) is not valid: its threshold 5.0 is not the 0.01 its run's settings give (a merge "
         "decides with the runs' settings)"),
        ([_record("zoo-s", higher_is_better=True)], None,
         "*record 0 of */b.json (*) is not valid: it says higher_is_better=True, but kl_to_base is better lower"),
        ([_record("zoo-s", value=5.0, status="skip", reason="edited")], None,
         "*record 0 of */b.json (*) is not valid: it is skipped, but its value 5 is past its threshold 0.01: a run "
         "fails it"),
        ([_record("zoo-s", metric="kl_to_base_renamed")], None,
         "*record 0 of */b.json (*) is not valid: its metric 'kl_to_base_renamed' of property 'kl' is not one the "
         "catalog gates"),
        ([_record("zoo-s", property="made_up")], None,
         "*record 0 of */b.json (*) is not valid: its metric 'kl_to_base' of property 'made_up' is not one the "
         "catalog gates"),
        ([_record("zoo-s", value=0.005, kl_lower=0.002, kl_upper=0.003)], None,
         "*record 0 of */b.json (*) is not valid: expected its value 0.005 within its bounds kl_lower..kl_upper = "
         "[[]0.002, 0.003[]]"),
        ([_record("zoo-s", kl_lower=0.003, kl_upper=0.0005)], None, "*record 0 of */b.json (*) is not valid: "
                                                                    "expected its value 0.001 within its bounds*"),
        ([_record("zoo-s", baseline_value=0.5, baseline_bounds=[0.01, 0.02])], None,
         "*record 0 of */b.json (*) is not valid: its baseline_value 0.5 is not within its baseline_bounds "
         "[[]0.01, 0.02[]]"),
        ([_record("zoo-s", **ROBUST)], None,
         "*record 0 of */b.json (*) is not valid: expected a robustness comparison to name its 'perturbation' and "
         "'intensity'"),
        ([_record("zoo-s", **{**ROBUST, "perturbation": "typos", "intensity": 1, "threshold": 0.5})], None,
         "*record 0 of */b.json (*) is not valid: its threshold 0.5 is not the 0.05 its run's settings give*"),
        ([], [{"id": "zoo-s-rtn-8b-g64", "model": "zoo-s", "bits": 8, "total_bits": "nan"}],
         "*variant 0 of */b.json is not valid: expected 'total_bits' to be a finite positive number, but got 'nan'"),
        ([], [{"id": "zoo-s-rtn-8b-g64", "model": "zoo-s", "bits": 8, "total_bits": 0}],
         "*variant 0 of */b.json is not valid: expected 'total_bits' to be a finite positive number, but got 0"),
        ([], [{"id": "zoo-s-rtn-8b-g64", "model": "zoo-s", "bits": 8, "total_bits": -5.0}],
         "*variant 0 of */b.json is not valid: expected 'total_bits' to be a finite positive number, but got -5.0"),
    ],
    ids=["threshold-not-the-settings", "direction-flipped", "skip-hides-a-failure", "unknown-metric",
         "unknown-property", "value-outside-bounds", "inverted-bounds", "baseline-outside-bounds",
         "robustness-without-perturbation", "robustness-threshold", "total-bits-nan", "total-bits-zero", "total-bits-negative"],
)
def test_a_record_the_settings_and_catalog_would_not_decide_so_is_a_usage_error(pytester, results, variants, message):
    """Issue 34, adversarial review: a merge decides with the runs' settings and the catalog,
    not with what a record says of its threshold, direction or status; values outside their
    bounds, unknown metrics and unusable variants are named, never merged or a traceback."""
    _merge_is_refused(pytester, results, variants, message)


def test_a_verdict_option_given_to_the_merge_is_a_usage_error_and_save_baseline_is_written(pytester):
    """A merge decides with the runs' settings: a threshold given to it that is not theirs is
    named, not silently ignored; --qrel-save-baseline writes the merged results.json there."""
    files = [_run_file(pytester, "a.json", "zoo-xs", results=[_record("zoo-xs")]),
             _run_file(pytester, "b.json", "zoo-s", results=[_record("zoo-s")])]
    result = pytester.runpytest("--qrel-merge", *files, "--qrel-report-dir=bad",
                                "--qrel-kl-threshold=2:5,3:0.2,4:0.1,8:0.01")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--qrel-merge: --qrel-kl-threshold='2:5,3:0.2,4:0.1,8:0.01' given to the merge, but the runs were "
                                 "run with '2:0.5,3:0.2,4:0.1,8:0.01': a merge decides with the runs' settings"])
    same = pytester.runpytest("--qrel-merge", *files, "--qrel-report-dir=merged", "--qrel-save-baseline=saved.json",
                              "--qrel-kl-threshold=2:0.5,3:0.2,4:0.1,8:0.01")  # the runs' own: agreed
    assert same.ret == pytest.ExitCode.OK
    assert (pytester.path / "saved.json").read_text() == (pytester.path / "merged" / "results.json").read_text()


def test_a_merge_reads_the_baseline_the_runs_compared_with_and_only_that_file(pytester):
    """Issue 34 review: the settings hold --qrel-baseline as given (relative to the runs'
    directory); a merge reads the file the runs recorded (absolute path and sha256), never one
    the relative path names from the merge's directory, and refuses a file that changed since."""
    law_test = "test_within_scaling_law[kl_to_base-zoo-xs-rtn-4b-g64]"

    def baseline(path, value):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"schema": 1, "variants": [], "fits": [], "results": [
            {"test": law_test, "metric": "kl_to_base", "status": "pass", "value": value}]}))
        return path

    import hashlib
    theirs = baseline(pytester.path / "runs" / "base.json", 0.05)
    baseline(pytester.path / "base.json", 0.001)  # a different file the relative path names from here
    used = {"path": str(theirs), "sha256": hashlib.sha256(theirs.read_bytes()).hexdigest()}
    settings = {"seed": "0", "kl-threshold": "2:0.5,3:0.2,4:0.1,8:0.01", "baseline": "base.json"}
    points = {"zoo-xs": ("rtn", "hqq", "quanto"), "zoo-s": ("rtn", "hqq")}
    files = []
    for i, (model, methods) in enumerate(points.items()):
        variants, results = [], []
        for j, method in enumerate(methods):
            vid = f"{model}-{method}-4b-g64"
            variants.append({"id": vid, "model": model, "bits": 4, "total_bits": 1.0e5 * (1 + i + 0.3 * j)})
            results.append(_record(model, test=f"test_kl_to_base[{vid}]", variant=vid, method=method, bits=4,
                                   value=0.05 - 0.002 * (2 * i + j), threshold=0.1, baseline_value=0.05 - 0.002 * (2 * i + j)))
        if model == "zoo-xs":
            results.append(_record(model, test=law_test, property="scaling", variant="zoo-xs-rtn-4b-g64", bits=4,
                                   status="skip", reason="no 4-bit law", value=0.05, threshold=None,
                                   higher_is_better=...))
        files.append(_run_file(pytester, f"{'ab'[i]}.json", model, variants=variants, results=results,
                               settings=settings, baseline_used=used))
    merged = pytester.runpytest("--qrel-merge", *files, "--qrel-report-dir=merged")
    assert merged.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), merged.stderr.str()
    law = next(r for r in json.loads((pytester.path / "merged" / "results.json").read_text())["results"]
               if r["test"] == law_test)
    assert law["status"] in ("pass", "fail") and law["baseline_value"] == 0.05  # the runs' file, not ./base.json
    baseline(theirs, 0.02)  # the runs' file changed since: its digest is not theirs
    changed = pytester.runpytest("--qrel-merge", *files, "--qrel-report-dir=changed")
    assert changed.ret == pytest.ExitCode.USAGE_ERROR
    changed.stderr.fnmatch_lines([f"*--qrel-merge: {theirs} is not the --qrel-baseline the runs compared with (its "
                                  "sha256 differs): put that file back there to merge them"])


def test_a_skip_a_run_makes_past_its_threshold_still_merges(pytester):
    """Refusing skips that hide a failure must not refuse a run's own: a KL tail of too few
    tokens is not checked at any value (measures/kl.py), and so merges as not checked."""
    tail = _record("zoo-s", test="test_kl_p99[zoo-s-rtn-8b-g64]", metric="kl_p99", status="skip", value=3.0,
                   threshold=1.0, tokens=50, reason="kl_p99 of 50 scored tokens would be their maximum")
    files = [_run_file(pytester, "a.json", "zoo-xs", results=[_record("zoo-xs")]),
             _run_file(pytester, "b.json", "zoo-s", results=[_record("zoo-s"), tail])]
    result = pytester.runpytest("--qrel-merge", *files, "--qrel-report-dir=merged")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    doc = json.loads((pytester.path / "merged" / "results.json").read_text())
    assert [r["status"] for r in doc["results"] if r["metric"] == "kl_p99"] == ["skip"]


@pytest.mark.parametrize("metric, edited, expected", [("kl_p99", 1e9, "0.5"), ("top1_agreement", 0.0, "0.9")])
def test_a_kl_tail_or_top1_threshold_edited_in_a_file_is_a_usage_error(pytester, metric, edited, expected):
    """The p99 and top-1 gates' thresholds come from the runs' --qrel-kl-p99-threshold and
    --qrel-top1-threshold as kl_to_base's do from --qrel-kl-threshold: a file that loosens one
    (a failing tail passed at 1e9) is named, not merged."""
    settings = {"seed": "0", "kl-threshold": "2:0.5,3:0.2,4:0.1,8:0.01", "kl-p99-threshold": "0.5",
                "top1-threshold": "0.9"}
    value, better_high = (1.27, False) if metric == "kl_p99" else (0.775, True)
    loosened = _record("zoo-s", metric=metric, value=value, threshold=edited, higher_is_better=better_high)
    files = [_run_file(pytester, "a.json", "zoo-xs", results=[_record("zoo-xs")], settings=settings),
             _run_file(pytester, "b.json", "zoo-s", results=[loosened], settings=settings)]
    result = pytester.runpytest("--qrel-merge", *files, "--qrel-report-dir=bad")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*record 0 of */b.json (*) is not valid: its threshold {edited!r} is not the "
                                 f"{expected} its run's settings give*"])
