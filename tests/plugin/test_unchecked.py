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
