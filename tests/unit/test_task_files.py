"""Task files do not run code unless asked (issue 15): an lm-eval task YAML whose `!function`
(in it, or in a file it `include:`s) would import Python from beside it is refused unless
--qrel-allow-task-code, like trust_remote_code; `data_files` and a relative `dataset_path` resolve
beside the YAML only."""

import json
from pathlib import Path

import pytest

from pytest_qrel.config import QrelConfig
from pytest_qrel.data.task_files import resolve_data_files
from pytest_qrel.data.tasks import resolve_task

TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {{test: questions.jsonl}}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
"""


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    # the code a task file would run: it leaves a mark if it is ever imported
    (tmp_path / "utils.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n\ndef docs(d):\n    return d\n")
    (tmp_path / "coded.yaml").write_text(TASK.format(name="coded") + "process_docs: !function utils.docs\n")
    (tmp_path / "base.yaml").write_text("process_docs: !function utils.docs\n")
    (tmp_path / "including.yaml").write_text("include: base.yaml\n" + TASK.format(name="including"))
    (tmp_path / "plain.yaml").write_text(TASK.format(name="plain"))
    return tmp_path


@pytest.mark.parametrize("name, where", [("coded.yaml", "coded.yaml:10"), ("including.yaml", "base.yaml:1")])
def test_a_task_file_that_runs_code_is_refused_unless_allowed(task_dir, name, where):
    with pytest.raises(ValueError, match=rf"{name} runs Python from a file beside it \(.*{where}: !function utils.docs\); "
                                         r"pytest-qrel runs no code from a task file unless you pass --qrel-allow-task-code"):
        resolve_task(str(task_dir / name), task_dir)
    assert not (task_dir / "ran").exists()
    assert resolve_task(str(task_dir / name), task_dir, allow_code=True).allow_code


def test_the_option_names_the_file_at_start_up(task_dir):
    values = {"qrel_models": "zoo-xs", "qrel_no_cache": True, "qrel_tasks": "coded.yaml"}
    with pytest.raises(pytest.UsageError, match=r"--qrel-tasks: .*coded.yaml runs Python .*--qrel-allow-task-code"):
        QrelConfig.from_values(values, task_dir)
    assert not (task_dir / "ran").exists()


def test_a_task_without_code_and_the_shipped_ones_are_read(task_dir):
    from pytest_qrel.models import fixtures_dir

    assert resolve_task(str(task_dir / "plain.yaml"), task_dir).name == "plain"
    # the zoo's own YAMLs call the shipped fixtures/tasks/utils.py: pytest-qrel's code, trusted as the package is
    assert resolve_task(str(fixtures_dir() / "tasks" / "zoo_recall.yaml"), task_dir).name == "zoo_recall"


def test_data_files_resolve_beside_the_yaml_only(task_dir, monkeypatch, tmp_path_factory):
    """A data file missing beside the YAML is not silently taken from the working directory."""
    elsewhere = tmp_path_factory.mktemp("cwd")
    (elsewhere / "questions.jsonl").write_text("{}\n")
    monkeypatch.chdir(elsewhere)
    cfg = resolve_data_files({"dataset_kwargs": {"data_files": {"test": "questions.jsonl"}}}, task_dir)
    assert cfg["dataset_kwargs"]["data_files"]["test"] == str(task_dir / "questions.jsonl")


@pytest.mark.parametrize("dataset_path", ["./ds", "ds"])
def test_a_relative_dataset_path_is_read_beside_the_yaml(tmp_path_factory, monkeypatch, dataset_path):
    """``dataset_path: ./ds`` (a folder of data files) is the folder beside the YAML, not one of
    that name in the working directory (issue 34)."""
    from pytest_qrel.data.tasks import load_task

    def task_folder(question: str) -> Path:
        root = tmp_path_factory.mktemp("task")
        (root / "ds").mkdir()
        row = {"question": question, "choices": ["yes", "no"], "label": 0}
        (root / "ds" / "test.jsonl").write_text(json.dumps(row) + "\n" + json.dumps({**row, "label": 1}) + "\n")
        return root

    here, decoy = task_folder("beside the YAML?"), task_folder("in the working directory?")
    (here / "task.yaml").write_text(f"task: relative\ndataset_path: {dataset_path}\ntest_split: test\n"
                                    "output_type: multiple_choice\ndoc_to_text: question\n"
                                    "doc_to_choice: choices\ndoc_to_target: label\n")
    monkeypatch.chdir(decoy)
    task = load_task(resolve_task(str(here / "task.yaml"), decoy))
    assert task.contexts == ("beside the YAML?", "beside the YAML?") and task.labels == (0, 1)


def test_a_dataset_builder_name_and_a_hub_id_are_kept(task_dir):
    (task_dir / "json").mkdir()  # a folder that happens to share the builder's name
    assert resolve_data_files({"dataset_path": "json"}, task_dir)["dataset_path"] == "json"
    assert resolve_data_files({"dataset_path": "allenai/ai2_arc"}, task_dir)["dataset_path"] == "allenai/ai2_arc"
    assert resolve_data_files({"dataset_path": "../ds"}, task_dir)["dataset_path"] == str(task_dir.parent / "ds")
