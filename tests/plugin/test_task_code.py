"""A task YAML's templates run no code at collection (issue 34): with the default options a
template that reaches ``os`` stops the run with one usage error naming the option, the file
and the field, for --qrel-tasks and for --qrel-kl-text, and no command runs; with
--qrel-allow-task-code the user's opt-in is honoured."""

import pytest

ROW = '{"question": "Is the sky blue?", "choices": ["yes", "no"], "label": 0, "text": "The sky is blue."}\n'
TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {{test: rows.jsonl}}
test_split: test
output_type: {output_type}
doc_to_text: "{text}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{target}"
"""
EXPLOIT = "{{{{ cycler.__init__.__globals__.os.popen('touch {mark}').read() }}}}"


@pytest.fixture
def evil(pytester) -> dict[str, str]:
    mark = pytester.path / "pwned"
    pytester.path.joinpath("rows.jsonl").write_text(ROW * 4)
    pytester.path.joinpath("evil.yaml").write_text(TASK.format(
        name="evil", output_type="multiple_choice", text=EXPLOIT.format(mark=mark) + "{{question}}", target="label"))
    pytester.path.joinpath("evil_text.yaml").write_text(TASK.format(
        name="evil_text", output_type="loglikelihood_rolling", text="", target=EXPLOIT.format(mark=mark) + "{{text}}"))
    return {"tasks": "--qrel-tasks=evil.yaml", "kl_text": "--qrel-kl-text=evil_text.yaml"}


@pytest.mark.parametrize("option, field", [("tasks", "doc_to_text"), ("kl_text", "doc_to_target")])
def test_a_template_that_reaches_os_stops_collection_and_runs_nothing(pytester, evil, option, field):
    flag = evil[option].split("=")[0]
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-no-cache", "--co", evil[option])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {flag}: Expected task templates that pytest-qrel's sandbox renders *, "
                                 f"but the `{field}` template of */{evil[option].split('=')[1]} was refused: "
                                 f"access to attribute '__init__' of 'type' object is unsafe"])
    assert "Traceback" not in result.stderr.str()
    assert not (pytester.path / "pwned").exists()


@pytest.mark.parametrize("option", ["tasks", "kl_text"])
def test_allow_task_code_honours_the_opt_in(pytester, evil, option):
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-no-cache", "--co", evil[option], "--qrel-allow-task-code")
    assert result.ret == pytest.ExitCode.OK
    assert (pytester.path / "pwned").exists()


@pytest.mark.parametrize("option, output_type, target", [("--qrel-tasks", "multiple_choice", "label"),
                                                         ("--qrel-kl-text", "loglikelihood_rolling", "{{text}}")])
def test_a_metric_script_named_by_a_task_never_runs(pytester, option, output_type, target):
    """lm-eval would import a metric it does not know from its path (evaluate.load): pytest-qrel
    never uses lm-eval's metrics, so collection runs nothing of it (issue 34, round two)."""
    mark = pytester.path / "pwned"
    pytester.path.joinpath("evilmetric.py").write_text(f"open({str(mark)!r}, 'w').close()\n")
    pytester.path.joinpath("rows.jsonl").write_text(ROW * 4)
    pytester.path.joinpath("metric.yaml").write_text(
        TASK.format(name="metric", output_type=output_type, text="{{question}}", target=target)
        + f"metric_list:\n  - metric: {pytester.path / 'evilmetric.py'}\n    aggregation: mean\n")
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-no-cache", "--co", f"{option}=metric.yaml")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    assert not mark.exists()
