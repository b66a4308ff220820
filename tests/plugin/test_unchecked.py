"""A run that checked nothing is not green (issue 15): every gate not checked, or a model the
user named without a single checked gate, fails the run with one line saying what was not
checked and why; --qrel-allow-unchecked accepts it knowingly. The summary counts checked,
passed, failed and not checked per property.

Runs pytest in process (tests/conftest.py keeps the libraries imported between runs)."""

SCALING_ONLY = ["--qrel-models=zoo-xs", "--qrel-methods=hqq", "--qrel-bits=2,8", "--qrel-cache-dir=cache",
                "-p", "no:randomly", "-k", "test_within_scaling_law"]


def test_a_run_whose_gates_were_all_not_checked_fails(pytester):
    # two variants give no law (a law of 3 coefficients needs 4 points): every test is not checked
    result = pytester.runpytest(*SCALING_ONLY)
    result.assert_outcomes(skipped=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "qrel scaling: 0 checked (0 passed, 0 failed), 2 not checked, 0 errors",
        "qrel: FAILED, nothing was checked: all 2 gates of this run were not checked (e.g. zoo-xs-hqq-2b-g64 "
        "kl_to_base: *no 2-bit law to bound kl_to_base with*); pass --qrel-allow-unchecked to accept it",
    ])


def test_allow_unchecked_accepts_it_knowingly(pytester):
    result = pytester.runpytest(*SCALING_ONLY, "--qrel-allow-unchecked")
    result.assert_outcomes(skipped=2)
    assert result.ret == 0
    assert "nothing was checked" not in result.stdout.str()


def test_a_named_model_without_a_checked_gate_fails_the_run(pytester):
    result = pytester.runpytest("--qrel-models=zoo-xs,zoo-s", "--qrel-methods=hqq", "--qrel-bits=8",
                                           "--qrel-cache-dir=cache", "-p", "no:randomly",
                                           "-k", "test_kl_to_base and zoo-xs")
    result.assert_outcomes(passed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "qrel kl: 1 checked (1 passed, 0 failed), 0 not checked, 0 errors",
        "qrel: FAILED, nothing was checked of zoo-s (none of its tests ran); pass --qrel-allow-unchecked to accept it",
    ])


def test_an_underpowered_gate_never_passes(pytester):
    """Issue 15's first case: zoo-s hqq 2-bit on 60 questions per task passed an ECE increase
    of 0.18 (threshold 0.05), and on 3 questions a Brier increase of 0.645: a metric past its
    threshold either fails (significant) or is not checked, with the size that would suffice."""
    import json

    for limit in ("60", "3"):
        pytester.runpytest("--qrel-models=zoo-s", "--qrel-methods=hqq", "--qrel-bits=2", "--qrel-cache-dir=cache",
                           f"--qrel-task-limit={limit}", f"--qrel-report-dir=r{limit}", "-p", "no:randomly",
                           "-k", "calibration_drift or confidence_shift")
        records = json.loads((pytester.path / f"r{limit}" / "results.json").read_text())["results"]
        assert len(records) == 3 * 5
        for r in records:
            assert r["status"] in ("pass", "fail", "skip"), r
            if r["status"] == "pass":  # a pass could have caught a harm of its threshold's size
                assert r["value"] <= r["threshold"] and r["minimum_detectable"] <= r["threshold"], r
            if r["status"] == "skip":
                assert "--qrel-task-limit >= " in r["reason"], r
        if limit == "3":
            assert all(r["status"] == "skip" for r in records)  # 3 questions can show no harm's size


def test_a_run_whose_every_test_was_skipped_fails(pytester):
    """Issue 34: every variant one its backend lacks (bnb has no 2-bit weights), as on an
    install without the backends: no test recorded a gate, which is nothing checked too."""
    args = ["--qrel-models=zoo-xs", "--qrel-methods=bnb", "--qrel-bits=2", "--qrel-cache-dir=cache",
            "-p", "no:randomly"]
    result = pytester.runpytest(*args)
    outcomes = result.parseoutcomes()
    assert outcomes["skipped"] > 0 and not {"passed", "failed", "errors"} & set(outcomes)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "qrel: FAILED, nothing was checked: no test of this run recorded a gate (e.g. zoo-xs-bnb-2b-g64: bnb does not "
        "support 2-bit weights*); pass --qrel-allow-unchecked to accept it",
    ])
    accepted = pytester.runpytest(*args, "--qrel-allow-unchecked")
    assert accepted.ret == 0 and "nothing was checked" not in accepted.stdout.str()


def test_a_named_model_fails_the_run_when_no_qrel_test_was_selected(pytester):
    """A plain test file named (the suites not collected): the named model got no checked gate,
    so the run fails with the reason, though no qrel test reported (review item 3)."""
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    args = ["--qrel-models=zoo-xs", "--qrel-methods=hqq", "--qrel-bits=8", "--qrel-cache-dir=cache", "test_plain.py"]
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["qrel: FAILED, nothing was checked: no test of this run recorded a gate "
                                 "(no qrel test was selected); pass --qrel-allow-unchecked to accept it"])
    assert pytester.runpytest(*args, "--qrel-allow-unchecked").ret == 0


def _project_with_tool_qrel(pytester, table: str) -> None:
    pytester.makepyprojecttoml(f"[tool.qrel]\n{table}\n")
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")


def test_tool_qrel_models_do_not_make_a_plain_run_a_gate(pytester):
    """[tool.qrel] names models and the project has a qrel test of its own: `pytest -k plain`
    deselects it and must pass as any plain run does (only --qrel-* options on the command line
    make a run a gate that fails for having checked nothing)."""
    _project_with_tool_qrel(pytester, 'models = ["zoo-xs"]\nmethods = ["hqq"]\nbits = [4]')
    pytester.makepyfile(test_myqrel="from pytest_qrel.matrix import suite_marks\n\npytestmark = suite_marks('kl')\n\n"
                                    "def test_kl(qrel, qrel_variant):\n    qrel.gate('kl', qrel_variant)\n")
    for args in (["-k", "plain"], ["-m", "not qrel_property"]):
        result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
        assert result.ret == 0, (args, result.stdout.str()[-2000:])
        assert "nothing was checked" not in result.stdout.str()


def test_tool_qrel_base_does_not_break_a_plain_run(pytester):
    # a base kept in [tool.qrel] for the CI jobs that pass checkpoints on the command line
    _project_with_tool_qrel(pytester, 'base = "zoo-xs"')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()[-2000:] + result.stderr.str()[-2000:]


def test_a_plain_run_leaves_a_killed_runs_journal_alone(pytester):
    """A killed qrel run's journal is what --qrel-resume needs: a plain pytest run in the same
    folder must not reset it (a fresh qrel run does)."""
    _project_with_tool_qrel(pytester, "")
    journal = pytester.path / "qrel-report" / "journal.jsonl"
    journal.parent.mkdir()
    journal.write_text('{"qrel_journal": 2, "settings": {}}\n{"test": "t", "results": []}\n')
    before = journal.read_bytes()
    result = pytester.runpytest_subprocess("test_plain.py", "-p", "no:cacheprovider")
    assert result.ret == 0 and journal.read_bytes() == before
