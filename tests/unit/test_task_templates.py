"""Task templates run no code unless asked (issue 34): lm-eval renders a task's Jinja templates
(``doc_to_text`` and the like) in an unsandboxed environment, where a template reaches ``os``
through a global's ``__globals__``. pytest-qrel has them rendered in jinja's sandbox unless
--qrel-allow-task-code; lm-eval-style templates (fields, attribute access to data, indexing,
string methods, filters) still render, as lm-eval's own shipped tasks write them."""

import json
from pathlib import Path

import pytest

from pytest_qrel.data.lmeval import lmeval_docs
from pytest_qrel.data.tasks import load_task, resolve_task
from pytest_qrel.data.text import read_kl_text
from pytest_qrel.data.types import TaskRef

# the exploit: a template global's function globals hold `os`
EXPLOIT = "{{{{ cycler.__init__.__globals__.os.popen('touch {mark}').read() }}}}"

CHOICE_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {{test: questions.jsonl}}
test_split: test
output_type: multiple_choice
doc_to_text: {text!r}
doc_to_choice: "{{{{choices.text}}}}"
doc_to_target: "{{{{choices.label.index(answerKey)}}}}"
"""

TEXT_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {{test: text.jsonl}}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: {target!r}
"""


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    rows = [{"question": "Is the sky blue?", "answer": "yes it is #### A",
             "choices": {"text": ["blue", "red"], "label": ["A", "B"]}, "answerKey": "A"},
            {"question": "Is grass red?", "answer": "no #### B",
             "choices": {"text": ["pink", "green"], "label": ["A", "B"]}, "answerKey": "B"}]
    (tmp_path / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "text.jsonl").write_text('{"text": "one sentence"}\n{"text": "another one"}\n')
    mark = tmp_path / "pwned"
    (tmp_path / "evil.yaml").write_text(CHOICE_TASK.format(name="evil", text=EXPLOIT.format(mark=mark) + "{{question}}"))
    (tmp_path / "evil_text.yaml").write_text(TEXT_TASK.format(name="evil_text", target=EXPLOIT.format(mark=mark) + "{{text}}"))
    return tmp_path


def test_a_template_that_reaches_os_is_refused_naming_the_file_and_field(task_dir):
    ref = resolve_task(str(task_dir / "evil.yaml"), task_dir)
    with pytest.raises(ValueError, match=r"^Expected task templates that pytest-qrel's sandbox renders .*"
                                         r"--qrel-allow-task-code lifts it\), but the `doc_to_text` template of "
                                         rf".*{task_dir.name}/evil.yaml was refused: access to attribute '__init__' "):
        load_task(ref)
    assert not (task_dir / "pwned").exists()


def test_a_kl_text_template_that_reaches_os_is_refused(task_dir):
    with pytest.raises(ValueError, match=r"the `doc_to_target` template of .*evil_text.yaml was refused"):
        read_kl_text(str(task_dir / "evil_text.yaml"))
    assert not (task_dir / "pwned").exists()


def test_allow_task_code_renders_the_template_unsandboxed(task_dir):
    """The user's opt-in is honoured: the same template runs (lm-eval's own environment)."""
    task = load_task(resolve_task(str(task_dir / "evil.yaml"), task_dir, allow_code=True))
    assert task.contexts == ("Is the sky blue?", "Is grass red?")
    assert (task_dir / "pwned").exists()
    (task_dir / "pwned").unlink()
    assert lmeval_docs(str(task_dir / "evil_text.yaml"), allow_code=True) == ["one sentence", "another one"]
    assert (task_dir / "pwned").exists()


def test_lm_eval_style_templates_render_in_the_sandbox(task_dir):
    """Fields, attribute access to data, list indexing and methods, string methods, jinja's and
    lm-eval's filters, ``{% set %}``: what lm-eval's tasks write."""
    text = ("{% set q = question | trim %}Question: {{q}} ({{answer.split('####')[-1].strip()}}, "
            "{{choices.text[0] | upper}}, {{answer | regex_replace(' ?#+', '')}})\nAnswer:")
    (task_dir / "styled.yaml").write_text(CHOICE_TASK.format(name="styled", text=text))
    task = load_task(resolve_task(str(task_dir / "styled.yaml"), task_dir))
    assert task.contexts == ("Question: Is the sky blue? (A, BLUE, yes it is A)\nAnswer:",
                             "Question: Is grass red? (B, PINK, no B)\nAnswer:")
    assert task.choices == (("blue", "red"), ("pink", "green"))
    assert task.labels == (0, 1)


def test_shipped_tasks_still_load(task_dir):
    from pytest_qrel.models import fixtures_dir

    task = load_task(resolve_task(str(fixtures_dir() / "tasks" / "zoo_recall.yaml"), task_dir))
    assert task.questions_total > 0 and len(task.choices[0]) > 1
    assert read_kl_text("zoo_heldout_text").prefix(1000).strip()


# lm-eval's own tasks: each template field as it ships, and a document shaped like its dataset's
LM_EVAL_TASKS = {
    "arc/arc_easy.yaml": {"question": "Which is a gas?", "choices": {"text": ["ice", "steam"], "label": ["A", "B"]},
                          "answerKey": "B"},
    "openbookqa/openbookqa.yaml": {"question_stem": "Sun is a", "answerKey": " B",
                                   "choices": {"text": ["moon", "star"], "label": ["A", "B"]}},
    "gsm8k/gsm8k.yaml": {"question": "1+1?", "answer": "It is 2.\n#### 2"},
    "piqa/piqa.yaml": {"goal": "Open a jar", "sol1": "twist", "sol2": "kick", "label": 0},
    "sciq/sciq.yaml": {"support": "  Water boils.", "question": "What boils?", "distractor1": "ice",
                       "distractor2": "rock", "distractor3": "sand", "correct_answer": "water"},
    "truthfulqa/truthfulqa_mc1.yaml": {"question": "Is it?", "mc1_targets": {"choices": ["yes", "no"], "labels": [1, 0]}},
    "mmlu/default/_default_template_yaml": {"question": " What? ", "choices": ["a", "b", "c", "d"], "answer": 2},
}


@pytest.mark.parametrize("path", sorted(LM_EVAL_TASKS))
def test_lm_eval_shipped_templates_render_the_same_in_the_sandbox(path):
    import lm_eval
    import lm_eval.utils
    from lm_eval.tasks._yaml_loader import load_yaml

    from pytest_qrel.data.lmeval import sandboxed_templates

    cfg = load_yaml(Path(lm_eval.__file__).parent / "tasks" / path, resolve_func=False)
    doc = LM_EVAL_TASKS[path]
    fields = [k for k, v in cfg.items() if k.startswith("doc_to_") and isinstance(v, str) and "{" in v]
    assert fields, f"{path} has no template to check"
    unsafe = {k: lm_eval.utils.apply_template(cfg[k], doc) for k in fields}
    with sandboxed_templates(TaskRef(cfg.get("task", path), "lmeval", cfg.get("task", path))):
        assert lm_eval.utils.env is not None and type(lm_eval.utils.env).__name__ == "Sandbox"
        assert {k: lm_eval.utils.apply_template(cfg[k], doc) for k in fields} == unsafe
    assert type(lm_eval.utils.env).__name__ == "Environment"  # lm-eval's own, given back
