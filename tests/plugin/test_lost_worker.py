"""Under xdist (issue 34, item 5): only the controller writes the journal, one line per test;
and a worker killed mid-test under the plugin's scheduler ends the run (its tests ERROR) instead
of hanging it.

Runs pytest in a subprocess: the xdist workers are real processes, one of them killed."""

import json
import time
from collections import Counter

import pytest

# two tests per variant of zoo-xs; a scope per variant (one model, two workers, a cache): the
# 4-bit variant's worker kills itself (SIGKILL: no report, no clean-up) in its first test, so
# its second test never runs
TESTS = """
import os, signal

def test_first(qrel_variant):
    if qrel_variant.bits == 4 and os.environ.get("QREL_KILL"):
        os.kill(os.getpid(), signal.SIGKILL)

def test_second(qrel_variant):
    pass
"""
ARGS = ["test_variants.py", "--qrel-models=zoo-xs", "--qrel-methods=hqq", "--qrel-bits=4,8", "--qrel-cache-dir=cache",
        "-p", "no:randomly", "--qrel-progress=off", "-n", "2",
        "--qrel-allow-unchecked"]  # these tests gate nothing: only their errors may fail the run


def _journal(pytester) -> list[dict]:
    lines = (pytester.path / "qrel-report" / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[1:]]  # after its settings


def test_only_the_controller_writes_the_journal(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_variants=TESTS)
    result = pytester.runpytest_subprocess(*ARGS, timeout=120)
    result.assert_outcomes(passed=4)
    assert result.ret == 0
    # each test once (its payload names its variant): no worker truncated the journal or doubled a line
    assert Counter(p["variant"] for p in _journal(pytester)) == {"zoo-xs-hqq-4b-g64": 2, "zoo-xs-hqq-8b-g64": 2}


def test_a_killed_worker_ends_the_run_with_its_tests_errored(pytester, monkeypatch):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_variants=TESTS)
    monkeypatch.setenv("QREL_KILL", "1")
    start = time.monotonic()
    result = pytester.runpytest_subprocess(*ARGS, timeout=120)  # a hang fails here
    assert time.monotonic() - start < 60
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "crashed while running 'test_variants.py::test_first[zoo-xs-hqq-4b-g64]'" in out
    assert "before running 'test_variants.py::test_second[zoo-xs-hqq-4b-g64]'" in out
    assert result.ret == 1
    records = json.loads((pytester.path / "qrel-report" / "results.json").read_text())["results"]
    errored = sorted(r["test"] for r in records if r["status"] == "error")
    assert errored == ["test_first[zoo-xs-hqq-4b-g64]", "test_second[zoo-xs-hqq-4b-g64]"]
    # journaled as errors, once each: a resume runs them again
    journaled = [r["test"] for p in _journal(pytester) for r in p["results"]]
    assert sorted(journaled) == errored
    # resumed under -n 2 (no kill now): the workers deselect what the controller's journal held at
    # the start, so only the two errored tests run again, and the journal ends with each test once
    monkeypatch.delenv("QREL_KILL")
    resumed = pytester.runpytest_subprocess(*ARGS, "--qrel-resume", timeout=120)
    resumed.assert_outcomes(passed=2)  # (xdist counts no deselected test of its workers)
    assert resumed.ret == 0
    assert Counter(p["variant"] for p in _journal(pytester) if all(r["status"] != "error" for r in p["results"])) \
        == {"zoo-xs-hqq-4b-g64": 2, "zoo-xs-hqq-8b-g64": 2}
    # the later pass of each errored test supersedes its error: a further resume runs nothing again
    again = pytester.runpytest_subprocess(*ARGS, "--qrel-resume", timeout=120)
    assert again.ret == 0
    assert not {"passed", "failed"} & set(again.parseoutcomes())


def test_a_killed_worker_under_loadscope_from_addopts_still_errors_its_tests(pytester, monkeypatch):
    """A project's ``addopts = --dist=loadscope`` (as this repository's) does not give a qrel run
    xdist's scheduler, which would rerun the crashed test and lose the variant's other (review item 5)."""
    pytest.importorskip("xdist")
    pytester.makepyfile(test_variants=TESTS)
    pytester.makeini("[pytest]\naddopts = --dist=loadscope\n")
    monkeypatch.setenv("QREL_KILL", "1")
    result = pytester.runpytest_subprocess(*ARGS, timeout=120)
    result.assert_outcomes(passed=2, failed=2)
    records = json.loads((pytester.path / "qrel-report" / "results.json").read_text())["results"]
    assert sorted(r["test"] for r in records if r["status"] == "error") == [
        "test_first[zoo-xs-hqq-4b-g64]", "test_second[zoo-xs-hqq-4b-g64]"]


def test_a_teardown_failure_in_one_process_is_not_called_a_crash(pytester):
    """Without xdist a failing teardown is said to be one, not "worker crashed" (review item 6)."""
    pytester.makepyfile(test_variants="""
import pytest

pytestmark = pytest.mark.qrel_property("kl")

@pytest.fixture
def broken():
    yield
    raise RuntimeError("teardown broke")

def test_first(qrel_variant, broken):
    pass
""")
    result = pytester.runpytest(*[a for a in ARGS if a not in ("-n", "2")], "-k", "8b")
    result.assert_outcomes(passed=1, errors=1)
    reasons = [r["reason"] for r in json.loads((pytester.path / "qrel-report" / "results.json").read_text())["results"]]
    assert reasons and all(r.startswith("teardown of test_first[zoo-xs-hqq-8b-g64] failed") for r in reasons), reasons
    # the error counts for its test's property, not for none
    result.stdout.fnmatch_lines(["qrel kl: 0 checked (0 passed, 0 failed), 0 not checked, 1 errors"])


def test_dist_each_is_refused_in_a_qrel_run(pytester):
    """--dist each runs every test on every worker: one variant would count twice (review item 10)."""
    pytest.importorskip("xdist")
    pytester.makepyfile(test_variants=TESTS)
    result = pytester.runpytest(*ARGS, "--dist", "each")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --dist each: runs every test on every worker*"])
    assert not (pytester.path / "qrel-report" / "results.json").exists()
