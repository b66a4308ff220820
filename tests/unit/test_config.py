"""Every option parsed and type-checked once: TOML types, empty and zero values, missing libraries."""

import sys
from pathlib import Path

import pytest

from pytest_qrel.config import QrelConfig
from pytest_qrel.matrix import build_matrix


def _config(tmp_path: Path, **values) -> QrelConfig:
    base = {"qrel_models": "zoo-xs", "qrel_no_cache": True}
    base.update({f"qrel_{k}": v for k, v in values.items()})
    return QrelConfig.from_values(base, tmp_path)


@pytest.mark.parametrize("value, expected", [("false", False), ("False", False), ("0", False), ("no", False),
                                             ("true", True), ("1", True), (True, True), (False, False)])
def test_allow_pickle_string_false_is_false(tmp_path, value, expected):
    # a TOML string "false" is truthy in Python: it must never switch pickle loading on
    assert _config(tmp_path, allow_pickle=value).allow_pickle is expected


@pytest.mark.parametrize("value", ["maybe", 1, 0, "", [True]])
def test_allow_pickle_other_values_are_usage_errors(tmp_path, value):
    with pytest.raises(pytest.UsageError, match=r"--qrel-allow-pickle: expected true or false, but got"):
        _config(tmp_path, allow_pickle=value)


@pytest.mark.parametrize("value, shown", [("", "''"), ("0", "0"), (0, "0"), ("-2", "-2")])
def test_empty_or_zero_group_size_is_a_usage_error(tmp_path, value, shown):
    # zero once meant per-row silently: an empty or zero value is an error, never a default
    with pytest.raises(pytest.UsageError, match=rf"--qrel-group-size: expected a power of two >= 8 .* but got {shown}"):
        _config(tmp_path, group_size=value)


@pytest.mark.parametrize("value", ["none", "None", "-1", -1])
def test_per_row_group_size_is_said_in_words_or_minus_one(tmp_path, value):
    assert _config(tmp_path, group_size=value).group_size is None


def test_toml_scalars_are_accepted(tmp_path):
    config = _config(tmp_path, bits=4, quant_ratio=0.5, group_size=32, seed=3, calibration_samples=16,
                     kl_threshold={"4": 0.2}, methods=["hqq"], models=["zoo-xs"])
    assert config.bits == (4,) and config.quant_ratios == (0.5,) and config.group_size == 32
    assert config.seed == 3 and config.calibration_samples == 16 and config.property_settings["kl"].threshold == {4: 0.2}
    assert config.methods == ("hqq",)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("quant_ratio", 0, r"--qrel-quant-ratio: expected ratios in \(0, 1\], but got 0"),
        ("quant_ratio", "0", r"--qrel-quant-ratio: expected ratios in \(0, 1\], but got '0'"),
        ("calibration_samples", 0, r"--qrel-calibration-samples: expected one integer >= 1, but got 0"),
        ("calibration_samples", "0", r"--qrel-calibration-samples: expected one integer >= 1, but got '0'"),
        ("quant_trials", 0, r"--qrel-quant-trials: expected one integer >= 1, but got 0"),
        ("bits", 4.5, r"--qrel-bits: expected comma-separated integers, but got 4.5"),
        ("bits", True, r"--qrel-bits: expected a comma-separated string or a list, but got True"),
        ("min_coverage", "1.5", r"--qrel-min-coverage: expected one number in \[0, 1\], but got '1.5'"),
        ("quant_select", "best", r"--qrel-quant-select: expected one of random, sensitivity, but got 'best'"),
        ("kl_threshold", {"4": True}, r"--qrel-kl-threshold: expected bits:value pairs like 4:0.1"),
    ],
)
def test_zero_and_mistyped_values_are_usage_errors_not_defaults(tmp_path, key, value, message):
    with pytest.raises(pytest.UsageError, match=message):
        _config(tmp_path, **{key: value})


def test_ratios_that_print_alike_are_a_usage_error(tmp_path):
    config = _config(tmp_path, quant_ratio="0.5,0.5000001", methods="rtn", bits="4")
    with pytest.raises(pytest.UsageError, match=r"ratios 0.5 and 0.5000001 would share the test id 'zoo-xs-rtn-4b-g64-q0.5m'"):
        build_matrix(config)
    ids = [v.id for v in build_matrix(_config(tmp_path, quant_ratio="0.5,0.55", methods="rtn", bits="4"))]
    assert ids == ["zoo-xs-rtn-4b-g64-q0.5m", "zoo-xs-rtn-4b-g64-q0.55m"]


def test_named_method_without_its_library_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gptqmodel", None)  # importlib.util.find_spec now finds nothing
    with pytest.raises(pytest.UsageError, match=r"--qrel-methods: gptq needs gptqmodel, which is not installed: "
                                                r"pip install 'pytest-qrel\[gptq\]'"):
        _config(tmp_path, methods="hqq,gptq")


def test_default_methods_without_their_library_skip(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "hqq", None)
    variants = build_matrix(_config(tmp_path, bits="4"))  # default methods: hqq,bnb
    reasons = {v.method: v.skip_reason for v in variants}
    assert reasons["hqq"] == "hqq needs hqq: install pytest-qrel[hqq]" and reasons["bnb"] is None


def test_unwritable_cache_dir_is_a_usage_error_at_start(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(pytest.UsageError, match=r"--qrel-cache-dir: cannot write to .*a-file/cache .*--qrel-no-cache"):
        _config(tmp_path, no_cache=False, cache_dir=str(blocker / "cache"))
    assert _config(tmp_path, no_cache="false", cache_dir="cache").cache_dir == tmp_path / "cache"
    assert (tmp_path / "cache").is_dir()


def test_output_paths_that_cannot_be_written_are_usage_errors_at_start(tmp_path):
    """A report directory that is a file, or a baseline path that cannot be written, stops
    the run at start-up rather than after every test has run (issue 15)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(pytest.UsageError, match=r"--qrel-report-dir: cannot write to .*a-file: .*a-file is a file"):
        _config(tmp_path, report_dir=str(blocker))
    with pytest.raises(pytest.UsageError, match=r"--qrel-save-baseline: cannot write to .*a-file/sub: .*a-file is a file"):
        _config(tmp_path, save_baseline=str(blocker / "sub" / "base.json"))
    (tmp_path / "adir").mkdir()
    with pytest.raises(pytest.UsageError, match=r"--qrel-save-baseline: expected a file path, but .*adir is a directory"):
        _config(tmp_path, save_baseline=str(tmp_path / "adir"))
    # a directory that does not exist yet is fine, and checking it creates nothing
    config = _config(tmp_path, report_dir="new/report", save_baseline="new/base.json")
    assert config.report_dir == tmp_path / "new" / "report" and not (tmp_path / "new").exists()


@pytest.mark.parametrize("key, value, message", [
    ("alpha", "1e-300", r"--qrel-alpha: expected a level in \[1e-06, 0.5\] .*but got ece:1e-300"),
    ("alpha", "ece:0.9", r"--qrel-alpha: expected a level in \[1e-06, 0.5\] .*but got ece:0.9"),
    ("kl_threshold", "2:inf,3:0.2,4:0.1,8:0.01", r"--qrel-kl-threshold: expected a finite threshold >= 0, but got '2:inf'"),
    ("calibration_threshold", "ece:inf", r"--qrel-calibration-threshold: expected a finite number >= 0 for ece"),
    ("robustness_threshold", "accuracy:1", r"--qrel-robustness-threshold: expected accuracy in \[0, 1\): no accuracy_drop "
                                           r"can reach 1, so that gate could never fail"),
    ("intensities", "100000", r"--qrel-intensities: expected integers in \[1, 64\]"),
    ("intensities", "4,4", r"--qrel-intensities: 4 given more than once"),
    ("temperature", "50", r"--qrel-temperature: expected one number in \[0, 5\]"),
    ("samples", "1000", r"--qrel-samples: expected one integer in \[1, 64\]"),
    ("bits", "8,8", r"--qrel-bits: 8 given more than once"),
    ("methods", "hqq,hqq", r"--qrel-methods: hqq given more than once"),
])
def test_absurd_values_are_usage_errors_naming_their_option(tmp_path, key, value, message):
    """Issue 15: values with which a gate could never fail (or always would), and repeats that
    blamed another option, are refused at start-up naming the option and its accepted range."""
    with pytest.raises(pytest.UsageError, match=message):
        _config(tmp_path, **{key: value})


def test_qa_files_name_the_bad_line_and_repeated_prompts(tmp_path):
    from pytest_qrel.data.qa import read_qa_file

    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"prompt": "a?", "answers": ["b"]}\n{"prompt": "caf\xe9?", "answers": ["c"]}\n')
    with pytest.raises(ValueError, match=r"Expected UTF-8 text on .*latin.jsonl:2, but byte 16 of that line is b'\\xe9'"):
        read_qa_file(latin)
    twice = tmp_path / "twice.jsonl"
    twice.write_text('{"prompt": "a?", "answers": ["b"]}\n{"prompt": "c?", "answers": ["d"]}\n{"prompt": "a?", "answers": ["e"]}\n')
    with pytest.raises(ValueError, match=r"Expected distinct prompts in .*twice.jsonl, but rows 1 and 3 are both 'a\?'"):
        read_qa_file(twice)
    with pytest.raises(pytest.UsageError, match=r"--qrel-qa-file: Expected distinct prompts"):
        _config(tmp_path, qa_file=str(twice))


@pytest.mark.parametrize("value, expected", [
    (None, None),
    ("0.1", {2: 0.1, 8: 0.1}),
    (0.25, {2: 0.25, 8: 0.25}),  # a TOML number
    ("2:0.3, 8:0.05", {2: 0.3, 8: 0.05}),
    ({"2": 0.3, "8": 0.05, "4": 0.1}, {2: 0.3, 8: 0.05, 4: 0.1}),  # a TOML table; other bit-widths may be named
    (["2:0.3", "8:0.05"], {2: 0.3, 8: 0.05}),  # a TOML list
])
def test_flips_threshold_is_off_by_default_and_per_bit_width(tmp_path, value, expected):
    config = _config(tmp_path, bits="2,8", **({} if value is None else {"flips_threshold": value}))
    assert config.property_settings["calibration"].flips_threshold == expected
    assert "flips" in config.alpha and "flips" not in config.property_settings["calibration"].threshold


@pytest.mark.parametrize("value", [True, 0, 1, "1e-400", {"2": "x", "8": 0.1}, {"2": 0.1}, [0.1]])
def test_bad_flips_thresholds_name_the_option(tmp_path, value):
    with pytest.raises(pytest.UsageError, match=r"^--qrel-flips-threshold: "):
        _config(tmp_path, bits="2,8", flips_threshold=value)


@pytest.mark.parametrize("values, given", [({}, False), ({"kl_context": "512"}, True), ({"kl_context": "64"}, True)])
def test_kl_context_is_given_when_named_even_at_its_default(tmp_path, values, given):
    kl = _config(tmp_path, **values).property_settings["kl"]
    assert kl.context_given is given
    assert kl.context == int(values.get("kl_context", "512"))


@pytest.mark.parametrize("value", ["0", "4:0,8:0.5", "4:0.5,8:0", {"4": 0.0, "8": 0.5}, "4:inf,8:1"])
def test_a_zero_or_infinite_p99_bound_is_a_usage_error_in_every_form(tmp_path, value):
    # "0" was refused while "4:0" was taken: a zero tail bound fails every variant, an infinite one none
    with pytest.raises(pytest.UsageError, match=r"--qrel-kl-p99-threshold: expected"):
        _config(tmp_path, bits="4,8", kl_p99_threshold=value)


@pytest.mark.parametrize("value", ["4:0.5,8:0.25", {"4": 0.5, "8": 0.25}, ["4:0.5", "8:0.25"]])
def test_p99_bounds_take_the_forms_kl_threshold_takes(tmp_path, value):
    # a [tool.qrel] table or list was refused: settings read it through str()
    assert _config(tmp_path, bits="4,8", kl_p99_threshold=value).property_settings["kl"].p99_threshold == {4: 0.5, 8: 0.25}


def test_results_settings_record_a_flag_as_the_run_reads_it():
    """[tool.qrel] allow-pickle = "false" was read as false but recorded as true in results.json's
    settings (bool("false")), so two runs meaning the same disagreed in --qrel-merge's check."""
    from pytest_qrel import options

    for raw, expected in (("false", False), ("no", False), ("true", True), (True, True), (None, False)):
        assert options.run_settings({"qrel_allow_pickle": raw})["allow-pickle"] is expected, raw


def test_the_default_tasks_named_on_the_command_line_are_given():
    """A model outside the zoo runs the task suites once --qrel-tasks names tasks, the zoo's
    own included: naming exactly the default list is giving it (it was read as not given, and
    the suites were dropped for such a model)."""
    from pytest_qrel import options
    from pytest_qrel.config import QrelConfig

    named = QrelConfig.from_values({"qrel_tasks": options.DEFAULT_TASKS}, Path.cwd())
    default = QrelConfig.from_values({}, Path.cwd())
    assert named.tasks_given and not default.tasks_given
    assert named.tasks == default.tasks
