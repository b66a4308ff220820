"""A task YAML is read as lm-eval reads it, and runs nothing it does not say (issue 34, round
two): no metric script, no `!function` hidden behind a tab or a symlinked include; its data is
beside the file that names it, never the working directory; its templates and includes cannot
hang start-up (those checks run in a subprocess with a timeout, so a regression fails, not hangs)."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_qrel.data.tasks import load_task, resolve_task
from pytest_qrel.data.text import read_kl_text

ROWS = [{"question": "Is the sky blue?", "choices": ["yes", "no"], "label": 0},
        {"question": "Is grass red?", "choices": ["yes", "no"], "label": 1}]
BODY = ("test_split: test\noutput_type: multiple_choice\ndoc_to_text: question\n"
        "doc_to_choice: choices\ndoc_to_target: label\n")
MARK = "open({mark!r}, 'w').close()\n\ndef docs(d):\n    return d\n"


def _task(folder: Path, name: str, extra: str = "", data: str = "dataset_kwargs: {data_files: {test: qa.jsonl}}\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path = folder / f"{name}.yaml"
    path.write_text(f"task: {name}\ndataset_path: json\n{data}{BODY}{extra}")
    return path


def test_a_metric_that_names_a_script_is_never_imported(tmp_path):
    """lm-eval resolves a metric it does not know with evaluate.load, which imports a local
    script: pytest-qrel scores with its own measures and drops metric_list before lm-eval."""
    (tmp_path / "evilmetric.py").write_text(MARK.format(mark=str(tmp_path / "ran")))
    path = _task(tmp_path, "metric", f"metric_list:\n  - metric: {tmp_path / 'evilmetric.py'}\n"
                                     "    aggregation: mean\n    higher_is_better: true\n")
    assert load_task(resolve_task(str(path), tmp_path)).labels == (0, 1)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("gap, tail", [("\t", ""), (" \t", ""), (" ", "\t")])
def test_a_function_after_a_tab_is_found(tmp_path, gap, tail):
    """libyaml (lm-eval's loader) reads `key:<tab>!function x` (or a line ending in a tab) as a function; the scan reads it
    with the same loader, so it is refused, not missed."""
    (tmp_path / "evil.py").write_text(MARK.format(mark=str(tmp_path / "ran")))
    path = _task(tmp_path, "tab", f"process_docs:{gap}!function evil.docs{tail}\n")
    with pytest.raises(ValueError, match=r"tab.yaml:9: !function evil.docs\); pytest-qrel runs no code"):
        load_task(resolve_task(str(path), tmp_path))
    assert not (tmp_path / "ran").exists()


def test_an_include_through_a_symlink_is_scanned_where_lm_eval_reads_it(tmp_path):
    """lm-eval resolves a symlinked include first and takes its own includes beside the target:
    so does the scan."""
    real, top = tmp_path / "real", tmp_path / "top"
    real.mkdir()
    (real / "evil.py").write_text(MARK.format(mark=str(tmp_path / "ran")))
    (real / "base.yaml").write_text("process_docs: !function evil.docs\n")
    (real / "inc.yaml").write_text("include: base.yaml\n")
    path = _task(top, "linked", data="dataset_kwargs: {data_files: {test: qa.jsonl}}\ninclude: link.yaml\n")
    (top / "link.yaml").symlink_to(real / "inc.yaml")
    with pytest.raises(ValueError, match=r"real/base.yaml:1: !function evil.docs\); pytest-qrel runs no code"):
        load_task(resolve_task(str(path), tmp_path))
    assert not (tmp_path / "ran").exists()


def test_no_data_location_resolves_against_the_working_directory(tmp_path, monkeypatch):
    """A bare `dataset_path: mydata` or a `data_dir` that is only in the working directory is an
    error naming the YAML, not the working directory's data; `~` is the home folder."""
    cwd, yamls = tmp_path / "cwd", tmp_path / "yamls"
    for folder in (cwd / "mydata", cwd / "data", tmp_path / "home" / "ds"):
        _task(folder, "unused")
        (folder / "qa.jsonl").rename(folder / "test.jsonl")
    monkeypatch.chdir(cwd)
    bare = _task(yamls, "bare", data="").read_text().replace("dataset_path: json", "dataset_path: mydata")
    (yamls / "bare.yaml").write_text(bare)
    with pytest.raises(ValueError, match=r"`dataset_path: mydata` of .*yamls/bare.yaml beside it, at .*yamls/mydata, "
                                         r"but it does not exist"):
        load_task(resolve_task(str(yamls / "bare.yaml"), cwd))
    datadir = _task(yamls, "datadir", data="dataset_kwargs: {data_dir: data}\n")
    with pytest.raises(ValueError, match=r"`data_dir: data` of .*yamls/datadir.yaml beside it, at .*yamls/data, "):
        load_task(resolve_task(str(datadir), cwd))
    _task(cwd / "org" / "name", "unused")  # a Hub id's shape, but a folder of the working directory
    (yamls / "hubby.yaml").write_text(bare.replace("task: bare", "task: hubby").replace("mydata", "org/name"))
    with pytest.raises(ValueError, match=r"to be a Hub dataset or a folder beside the YAML, but it names .*cwd/org/name"):
        load_task(resolve_task(str(yamls / "hubby.yaml"), cwd))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (yamls / "tilde.yaml").write_text(bare.replace("task: bare", "task: tilde").replace("mydata", "~/ds"))
    assert load_task(resolve_task(str(yamls / "tilde.yaml"), cwd)).labels == (0, 1)


def test_data_files_of_an_include_resolve_beside_the_include(tmp_path):
    """A YAML included from another folder names its data files beside itself, as a reader expects."""
    shared = _task(tmp_path / "shared", "unused")
    (shared.parent / "base.yaml").write_text("dataset_path: json\ndataset_kwargs: {data_files: {test: qa.jsonl}}\n")
    (tmp_path / "mine").mkdir()
    path = tmp_path / "mine" / "mine.yaml"
    path.write_text(f"include: ../shared/base.yaml\ntask: mine\n{BODY}")
    assert load_task(resolve_task(str(path), tmp_path)).labels == (0, 1)


def test_a_utf16_yaml_is_read_and_bad_bytes_are_named(tmp_path):
    path = _task(tmp_path, "wide")
    path.write_text(path.read_text(), encoding="utf-16")  # with a byte-order mark, as libyaml reads it
    assert load_task(resolve_task(str(path), tmp_path)).name == "wide"
    (tmp_path / "latin.yaml").write_bytes(b"task: caf\xe9\n")
    with pytest.raises(ValueError, match=r"^Expected valid YAML in .*latin.yaml, but it has a syntax error"):
        resolve_task(str(tmp_path / "latin.yaml"), tmp_path)


def test_a_kl_text_that_is_not_a_regular_file_is_named(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    for path, kind in ((tmp_path, "a folder"), (tmp_path / "pipe.txt", "a FIFO")):
        with pytest.raises(ValueError, match=rf"^Expected a file \(plain text, JSONL .*\) or an lm-eval task, but "
                                             rf"{path} is {kind}$"):
            read_kl_text(str(path))


def _run(script: str, timeout: float = 60) -> str:
    """``script`` in a fresh interpreter (this one's pytest_qrel), its output; a hang is a failure."""
    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout} s: {script}")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_fifo_include_or_a_fifo_beside_the_yaml_does_not_block(tmp_path):
    """An include that is a FIFO is refused at once (lm-eval would wait on it); a FIFO elsewhere
    in the YAML's folder is never opened (the folder is not indexed)."""
    os.mkfifo(tmp_path / "base.yaml")
    _task(tmp_path, "piped", "include: base.yaml\n")
    _task(tmp_path / "ok", "plain")
    (tmp_path / "ok" / "sub").mkdir()
    os.mkfifo(tmp_path / "ok" / "sub" / "stuck.yaml")
    out = _run(f"""
        from pathlib import Path
        from pytest_qrel.data.tasks import load_task, resolve_task
        try:
            resolve_task({str(tmp_path / 'piped.yaml')!r}, Path('.'))
        except ValueError as exc:
            print(exc)
        print(load_task(resolve_task({str(tmp_path / 'ok' / 'plain.yaml')!r}, Path('.'))).labels)
    """)
    assert out.splitlines() == [f"Expected an lm-eval task YAML file at {tmp_path / 'base.yaml'}, but it is a FIFO",
                                "(0, 1)"]


def test_templates_that_loop_or_backtrack_for_ever_are_stopped(tmp_path):
    """A range is capped (10,000 items), and a render stops after its time (here 0.5 s): nested
    loops and a backtracking regex_replace end in a one-line refusal naming the field."""
    _task(tmp_path, "loops").write_text(_task(tmp_path, "loops").read_text().replace(
        "doc_to_text: question", 'doc_to_text: "{% for i in range(10000) %}{% for j in range(10000) %}'
                                 '{% endfor %}{% endfor %}{{question}}"'))
    _task(tmp_path, "redos").write_text(_task(tmp_path, "redos").read_text().replace(
        "doc_to_text: question", "doc_to_text: \"{{ ('a' * 48 + '!') | regex_replace('(a|aa)+$', '') }}{{question}}\""))
    _task(tmp_path, "big").write_text(_task(tmp_path, "big").read_text().replace(
        "doc_to_text: question", 'doc_to_text: "{% for i in range(20000) %}{% endfor %}{{question}}"'))
    out = _run(f"""
        from pathlib import Path
        from pytest_qrel.data import lmeval
        from pytest_qrel.data.tasks import load_task, resolve_task
        lmeval.TEMPLATE_SECONDS = 0.5
        for name in ("loops", "redos", "big"):
            try:
                load_task(resolve_task(str(Path({str(tmp_path)!r}) / f"{{name}}.yaml"), Path('.')))
                print(name, "rendered")
            except ValueError as exc:
                print(name, str(exc).split("was refused: ")[-1])
    """)
    assert out.splitlines() == ["loops the render ran past 0.5 s", "redos regex_replace ran past 0.5 s",
                                "big range of 20000 items; a task template may have 10000"]


@pytest.mark.parametrize("expr, op", [("'a' * 2000000", "*"), ("('a' * 1000000) + ('b' * 100000)", "+"),
                                      ("2 ** 100000000", "**")])
def test_a_template_cannot_make_a_huge_value(tmp_path, expr, op):
    """Multiplying, adding or raising to a value of megabytes is refused before it is made."""
    path = _task(tmp_path, "huge")
    path.write_text(path.read_text().replace("doc_to_text: question", f'doc_to_text: "{{{{ {expr} }}}}{{{{question}}}}"'))
    with pytest.raises(ValueError, match=rf"`doc_to_text` template of .*huge.yaml was refused: "
                                         rf"{re.escape(op)} would make a value too big for a template$"):
        load_task(resolve_task(str(path), tmp_path))


def test_a_task_yaml_that_is_a_fifo_or_a_folder_is_named(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "dir.yaml").mkdir()
    for name, kind in (("pipe.yaml", "a FIFO"), ("dir.yaml", "a folder")):
        with pytest.raises(ValueError, match=rf"^Expected an lm-eval task YAML file at .*{name}, but it is {kind}$"):
            resolve_task(str(tmp_path / name), tmp_path)
