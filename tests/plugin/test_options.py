"""Option parsing and validation, pinned on the real terminal output."""

import pytest

from pytest_qrel import options


def test_help_lists_every_option(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["quantized-model reliability gates (pytest-qrel):"])
    for opt in options.OPTIONS:
        result.stdout.fnmatch_lines([f"*{opt.flag}*"])
    result.stdout.fnmatch_lines(["*(default: hqq,bnb)*", "*(default: 2:0.5,3:0.2,4:0.1,8:0.01)*"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--qrel-methods=hqq,aqlm"], "*--qrel-methods: unknown method 'aqlm'; valid methods: awq, bnb, bnb-fp4, gptq, hqq, quanto, quanto-a8, quanto-fp8, quanto-fp8-a8, rtn, smoothquant, sparsegpt, wanda*"),
        (["--qrel-bits=4,5"], "*--qrel-bits: no backend quantizes to 5 bits; valid bit-widths: 2, 3, 4, 8*"),
        (["--qrel-bits=four"], "*--qrel-bits: expected comma-separated integers, but got 'four'*"),
        (["--qrel-group-size=100"], "*--qrel-group-size: expected a power of two >= 8 (or 'none' or -1 for per-row), but got 100*"),
        (["--qrel-kl-threshold=2:1,4:0.1", "--qrel-bits=2,3"], "*--qrel-kl-threshold: no threshold for 3-bit variants*"),
        (["--qrel-kl-threshold=4=0.1"], "*--qrel-kl-threshold: expected bits:value pairs like 4:0.1, but got '4=0.1'*"),
        (["--qrel-models=zoo-s,/a/zoo-s"], "*--qrel-models: two models would share the test id 'zoo-s' (*/zoo/zoo-s and /a/zoo-s); rename one*"),
        (["--qrel-calibration-samples=300"], "*--qrel-calibration-samples: 300 asked for, but the shipped calibration set has 256 documents*"),
        (["--qrel-calibration-file=nowhere.jsonl"], "*--qrel-calibration-file: Expected a JSONL dataset at */nowhere.jsonl, but it does not exist*"),
    ],
)
def test_bad_options_fail_at_start_up(pytester, args, message):
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_unknown_tool_qrel_key(pytester):
    pytester.makepyprojecttoml("[tool.qrel]\nmodel = ['zoo-xs']\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*[[]tool.qrel]: unknown keys [[]'model']; expected some of: *models*"])


def test_config_file_twins(pytester):
    # ini twin for methods, [tool.qrel] twin for bits and models; the command line wins over both.
    pytester.makepyprojecttoml(
        "[tool.pytest.ini_options]\nqrel_methods = 'hqq'\n\n[tool.qrel]\nbits = [8, 4]\nmodels = ['zoo-xs']\n"
    )
    result = pytester.runpytest("--qrel-group-size=32", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_kl_to_base[[]zoo-xs-hqq-8b-g32]", "*test_kl_to_base[[]zoo-xs-hqq-4b-g32]"])
    assert "bnb" not in result.stdout.str()
    result = pytester.runpytest("--qrel-bits=2", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_kl_to_base[[]zoo-xs-hqq-2b-g64]",
                                 "*test_within_scaling_law[[]kl_to_base-zoo-xs-hqq-2b-g64]", "24 tests collected*"])


def test_default_matrix_is_the_whole_zoo(pytester):
    result = pytester.runpytest("--qrel-methods=hqq,bnb", "--collect-only", "-q")
    out = result.stdout.str()
    for model in ("zoo-xs", "zoo-s", "zoo-m", "zoo-l", "zoo-xl", "zoo-xxl"):
        for vid in ("hqq-2b-g64", "hqq-3b-g64", "hqq-4b-g64", "hqq-8b-g64", "bnb-4b-g64", "bnb-8b"):
            assert f"test_kl_to_base[{model}-{vid}]" in out
            assert f"test_within_scaling_law[kl_to_base-{model}-{vid}]" in out
            for task in ("zoo_recall", "zoo_utilization", "zoo_utilization_heldout"):
                assert f"test_calibration_drift[{model}-{vid}-{task}]" in out
                assert f"test_confidence_shift[{model}-{vid}-{task}]" in out
            assert f"test_fuzzed_answers_agree[{model}-{vid}]" in out
            for perturbation in ("char_insertion", "leetspeak", "emoji", "slang", "translation", "word_swap"):
                assert f"test_perturbation_robustness[{model}-{vid}-{perturbation}-i4]" in out
                assert f"test_perturbation_robustness[{model}-{vid}-{perturbation}-i16]" not in out
    # 48 variants: one KL, one fitted-law and one fuzzing test each, one calibration and one
    # confidence test per task, one robustness test per perturbation (15) at intensity 4
    result.stdout.fnmatch_lines(["1152 tests collected*"])
    # paper 000's full matrix: intensities 4 and 16 (App. B)
    result = pytester.runpytest("--qrel-methods=hqq,bnb", "--qrel-robustness-full", "--collect-only", "-q")
    assert "test_perturbation_robustness[zoo-l-bnb-8b-word_swap-i16]" in result.stdout.str()
    result.stdout.fnmatch_lines(["1872 tests collected*"])


def test_plain_run_is_untouched(pytester):
    pytester.makepyfile("def test_ok():\n    assert True\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "qrel reliability report" not in result.stdout.str()
    assert not (pytester.path / "qrel-report").exists()


@pytest.mark.parametrize(
    "toml, message",
    [
        ("quant-ratio = 0", "*--qrel-quant-ratio: expected ratios in (0, 1], but got 0*"),
        ("calibration-samples = 0", "*--qrel-calibration-samples: expected one integer >= 1, but got 0*"),
        ('allow-pickle = "perhaps"', "*--qrel-allow-pickle: expected true or false, but got 'perhaps'*"),
        ('bits = 4.0', "*--qrel-bits: expected comma-separated integers, but got 4.0*"),
    ],
)
def test_bad_tool_qrel_values_fail_at_start_up(pytester, toml, message):
    pytester.makepyprojecttoml(f"[tool.qrel]\n{toml}\n")
    result = pytester.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_empty_group_size_is_a_usage_error(pytester):
    result = pytester.runpytest("--qrel-group-size=")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--qrel-group-size: expected a power of two >= 8 (or 'none' or -1 for per-row), but got ''*"])


def test_tool_qrel_scalars(pytester):
    pytester.makepyprojecttoml("[tool.qrel]\nmodels = 'zoo-xs'\nmethods = 'rtn'\nbits = 4\nquant-ratio = 0.5\n")
    result = pytester.runpytest("--collect-only", "-q", "--qrel-no-cache")
    result.stdout.fnmatch_lines(["*test_kl_to_base[[]zoo-xs-rtn-4b-g64-q0.5m]",
                                 "*test_within_scaling_law[[]kl_to_base-zoo-xs-rtn-4b-g64-q0.5m]", "24 tests collected*"])


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", ("*--qrel-flips-threshold: expected one share in (0, 1) or bits:share pairs like 2:0.3,4:0.1 (at 0 any "
               "flip would fail, at 1 none could), but got '0'*")),
        ("1.5", "*--qrel-flips-threshold: expected one share in (0, 1) * but got '1.5'*"),
        ("1", "*--qrel-flips-threshold: expected one share in (0, 1) * but got '1'*"),
        ("nan", "*--qrel-flips-threshold: expected one share in (0, 1) * but got 'nan'*"),
        ("inf", "*--qrel-flips-threshold: expected one share in (0, 1) * but got 'inf'*"),
        ("-0.1", "*--qrel-flips-threshold: expected one share in (0, 1) * but got '-0.1'*"),
        ("junk", "*--qrel-flips-threshold: expected one share in (0, 1) or bits:share pairs like 2:0.3,4:0.1, but got 'junk'*"),
        ("0.1,0.2", "*--qrel-flips-threshold: expected one share in (0, 1) or bits:share pairs *, but got '0.1,0.2'*"),
        ("2:x", "*--qrel-flips-threshold: expected one share in (0, 1) or bits:share pairs *, but got '2:x'*"),
        ("2:0.3,8:0", "*--qrel-flips-threshold: expected one share in (0, 1) * but got '2:0.3,8:0'*"),
        ("2:0.3", "*--qrel-flips-threshold: no threshold for 8-bit variants*"),
    ],
)
def test_bad_flips_thresholds_are_one_line_usage_errors(pytester, value, message):
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-bits=2,8", f"--qrel-flips-threshold={value}",
                                "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_the_flip_rate_has_its_own_option_and_a_level_of_its_own(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--qrel-flips-threshold=VALUE*"])
    assert "bits:share pairs (default: off)" in " ".join(result.stdout.str().split())
    # one way to set it: not through the calibration thresholds' metric:value pairs
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-calibration-threshold=flips:0.1", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--qrel-calibration-threshold: unknown metric 'flips'; expected some of: ece, ace, brier*"])
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-flips-threshold=0.1", "--qrel-alpha=flips:0.01",
                                "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
