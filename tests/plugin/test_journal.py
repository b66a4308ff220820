"""The journal --qrel-resume reads (issue 34, items 3 and 12): it records the run's settings, and
a resume with other settings (a threshold, the methods) is a one-line usage error naming the
option and both values; a complete line that is not one test's records is a usage error, never
an INTERNALERROR; a torn last line is cut before the resumed run appends; resuming a journal
that holds every test ends with the run's status, not "no tests ran".

Runs pytest in process on journals its own runs wrote (tests/conftest.py keeps the libraries
imported between runs)."""

import json

import pytest

# zoo-xs's 4-bit KL fails a threshold of 0.001, its 8-bit KL passes 0.5: a run of one of each
ARGS = ["--qrel-models=zoo-xs", "--qrel-methods=hqq", "--qrel-bits=4,8", "--qrel-kl-threshold=4:0.001,8:0.5",
        "--qrel-cache-dir=cache", "--qrel-progress=off", "-p", "no:randomly", "-k", "test_kl_to_base"]


def _lines(pytester) -> list[str]:
    return (pytester.path / "qrel-report" / "journal.jsonl").read_text().splitlines()


@pytest.fixture
def journaled(pytester):
    """A finished run's report directory: its journal, its results.json."""
    run = pytester.runpytest(*ARGS)
    run.assert_outcomes(passed=1, failed=1)
    assert sum('"results"' in line for line in _lines(pytester)) == 2  # one line per test
    return json.loads((pytester.path / "qrel-report" / "results.json").read_text())["results"]


def test_a_resume_with_other_settings_is_a_usage_error(pytester, journaled):
    for changed, option, key, theirs, mine in [
        ("--qrel-kl-threshold=4:0.002,8:0.5", "--qrel-kl-threshold", "kl.threshold", "{'4': 0.001, '8': 0.5}",
         "{'4': 0.002, '8': 0.5}"),
        ("--qrel-methods=hqq,rtn", "--qrel-methods", "methods", "['hqq']", "['hqq', 'rtn']"),  # its records of hqq alone
        # the default context and the same one given differ (a model must then admit it): they are two settings
        ("--qrel-kl-context=512", "--qrel-kl-context", "kl.context_given", "False", "True"),
    ]:
        args = [a for a in ARGS if not a.startswith(option + "=")] + [changed, "--qrel-resume"]
        result = pytester.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert (f"journal.jsonl was run with {key}={theirs}, this run with {mine}: a resumed run must have the "
                "settings and inputs of the run it continues; run without --qrel-resume") in result.stderr.str()
        assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_resume_compares_the_values_as_parsed_not_as_typed(pytester, journaled):
    """The same thresholds spelled otherwise are the same settings (issue 34, review item 9)."""
    args = [a for a in ARGS if not a.startswith("--qrel-kl-threshold=")] + ["--qrel-kl-threshold=8:0.50, 4:0.0010"]
    result = pytester.runpytest(*args, "--qrel-resume")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stderr.str()  # the journaled 4-bit failure, not a usage error
    assert not {"passed", "failed"} & set(result.parseoutcomes())


def test_a_resume_after_a_model_changed_in_place_is_a_usage_error(pytester):
    """The journal records the digest of every input by absolute path: a model edited since
    (same path, same option) does not keep its old verdicts (review item 1)."""
    import shutil

    from pytest_qrel.models import zoo_dir

    shutil.copytree(zoo_dir() / "zoo-xs", pytester.path / "m")
    args = ["--qrel-models=./m", *ARGS[1:-2], "-k", "test_kl_to_base and 8b"]
    pytester.runpytest(*args).assert_outcomes(passed=1)
    weights = pytester.path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one weight's last byte
    weights.write_bytes(bytes(data))
    result = pytester.runpytest(*args, "--qrel-resume")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --qrel-resume: the journaled run */journal.jsonl was run on "
                                 f"{(pytester.path / 'm').resolve()}, which changed since (its content digest differs)*"])


def test_a_fresh_run_starts_a_fresh_journal_before_its_first_test(pytester, journaled):
    """A fresh run that ends before its first report (here: it selects nothing) leaves no
    older run's verdicts for a resume to revive (review item 1)."""
    fresh = pytester.runpytest(*ARGS[:-1], "nomatch")
    assert fresh.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert len(_lines(pytester)) == 1  # its header alone
    pytester.runpytest(*ARGS, "--qrel-resume").assert_outcomes(passed=1, failed=1)  # both run again


def test_a_journaled_variant_outside_the_matrix_is_a_usage_error(pytester, journaled):
    path = pytester.path / "qrel-report" / "journal.jsonl"
    path.write_text(path.read_text().replace("zoo-xs-hqq-8b-g64", "zoo-xs-hqq-2b-g64"))
    result = pytester.runpytest(*ARGS, "--qrel-resume")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --qrel-resume: */journal.jsonl holds zoo-xs-hqq-2b-g64, which is not in this "
                                 "run's matrix*"])


def test_a_journal_path_that_is_a_directory_is_a_usage_error(pytester):
    (pytester.path / "qrel-report" / "journal.jsonl").mkdir(parents=True)
    result = pytester.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --qrel-report-dir: cannot write the journal */journal.jsonl: it is a directory"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_resume_of_every_journaled_test_has_the_runs_status(pytester, journaled):
    result = pytester.runpytest(*ARGS, "--qrel-resume")
    assert not {"passed", "failed", "skipped"} & set(result.parseoutcomes())  # nothing left to run ...
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # ... and the journaled 4-bit failure fails it, as it did
    assert json.loads((pytester.path / "qrel-report" / "results.json").read_text())["results"] == journaled


def test_a_torn_last_line_is_cut_and_its_test_runs_again(pytester, journaled):
    path = pytester.path / "qrel-report" / "journal.jsonl"
    lines = _lines(pytester)
    path.write_text("".join(line + "\n" for line in lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # killed mid-write
    result = pytester.runpytest(*ARGS, "--qrel-resume")
    ran = result.parseoutcomes()
    assert ran.get("passed", 0) + ran.get("failed", 0) == 1  # the torn line's test, again
    # each line whole, the torn one's test journaled again (its variant's info may differ: a cache hit)
    records = [json.loads(line).get("results") for line in _lines(pytester)]
    assert records == [json.loads(line).get("results") for line in lines]
    assert json.loads((pytester.path / "qrel-report" / "results.json").read_text())["results"] == journaled


def test_a_line_of_the_wrong_shape_is_a_usage_error(pytester, journaled):
    path = pytester.path / "qrel-report" / "journal.jsonl"
    whole = path.read_text()
    record = ('"property": "kl", "variant": "v", "model": "m", "method": "hqq", "bits": 4, "group_size": 64, '
              '"metric": "kl_to_base"')
    for line, problem in [
        ('{"variant": "zoo-xs-hqq-4b-g64", "results": [5]}', "holds something that is not a record"),
        ('{"variant": "zoo-xs-hqq-4b-g64", "results": [{"test": "t", "status": "pass"}]}',
         "holds something that is not a record"),
        ('[1, 2]', "is not one test's records"),
        ('{"variant": "zoo-xs-hqq-4b-g64", "results": [{"test": 1, %s, "status": "pass"}]}' % record,
         "holds a record without a test name"),
        ('{"variant": "zoo-xs-hqq-4b-g64", "results": [{"test": "t", %s, "status": "maybe"}]}' % record,
         "holds a record without a test name or a status"),
    ]:
        path.write_text(whole + line + "\n")
        result = pytester.runpytest(*ARGS, "--qrel-resume")
        assert result.ret == pytest.ExitCode.USAGE_ERROR, line
        number = len(whole.splitlines()) + 1
        result.stderr.fnmatch_lines([f"ERROR: --qrel-resume: line {number} of */journal.jsonl {problem}*; "
                                     "remove that line *"])
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_resume_that_selects_nothing_or_only_collects_is_not_a_pass(pytester, journaled):
    """``-k`` that selects nothing is "no tests ran", not the journal's verdicts; --co writes no
    report (review item 7)."""
    report = pytester.path / "qrel-report" / "results.json"
    report.unlink()
    assert pytester.runpytest(*ARGS[:-1], "nomatch", "--qrel-resume").ret == pytest.ExitCode.NO_TESTS_COLLECTED
    report.unlink(missing_ok=True)
    assert pytester.runpytest(*ARGS, "--qrel-resume", "--co").ret in (pytest.ExitCode.OK,
                                                                      pytest.ExitCode.NO_TESTS_COLLECTED)
    assert not report.exists()


def test_a_journal_write_that_fails_mid_run_is_one_warning(pytester):
    """The journal turning unwritable after start-up (here: replaced by a directory, as a full
    disk would fail it) costs the resume only: one warning, every record in results.json (item 8)."""
    pytester.makepyfile(test_variants="""
from pathlib import Path

def test_breaks_the_journal(qrel_variant):
    journal = Path("qrel-report/journal.jsonl")
    if journal.is_file():  # the run's first test: the journal holds the header written at start
        journal.unlink()
        journal.mkdir()
""")
    result = pytester.runpytest("test_variants.py", "--qrel-models=zoo-xs", "--qrel-methods=hqq", "--qrel-bits=4,8",
                                "--qrel-cache-dir=cache", "--qrel-progress=off", "-p", "no:randomly",
                                "--qrel-allow-unchecked")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*qrel: cannot write the journal */journal.jsonl (*): this run cannot be resumed*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert (pytester.path / "qrel-report" / "results.json").is_file()


def test_a_journal_of_an_older_format_is_refused_as_older(pytester, journaled):
    """Issue 35 renamed the journaled settings (kl_threshold -> kl.threshold): a run killed
    before the upgrade was refused as if a setting differed ("calibration.threshold=None");
    format 3 refuses it as written by an older pytest-qrel (review of issue 35)."""
    path = pytester.path / "qrel-report" / "journal.jsonl"
    header, *rest = path.read_text().splitlines()
    assert json.loads(header)["qrel_journal"] == 3
    path.write_text("\n".join([json.dumps({**json.loads(header), "qrel_journal": 2}), *rest]) + "\n")
    result = pytester.runpytest(*ARGS, "--qrel-resume")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--qrel-resume: * records no settings on its first line (written by an older "
                                 "pytest-qrel, or not a journal): run without --qrel-resume*"])
