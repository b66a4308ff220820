"""Multiple-choice tasks: the shipped zoo QA tasks, lm-eval tasks by name or local YAML,
resolved once, loaded once per process and subsampled reproducibly."""

from __future__ import annotations

from pathlib import Path

from .files import data_dir, load_jsonl
from .lmeval import lmeval_task, read_task_yaml
from .types import TARGET_DELIMITER, ZOO_TASKS, ChoiceTask, TaskRef


def resolve_task(spec: str, invocation_dir: Path, allow_code: bool = False) -> TaskRef:
    """What one ``--qrel-tasks`` entry names; a YAML file is checked now (ValueError naming it,
    also when it would run Python and ``allow_code`` is off)."""
    spec = spec.strip()
    if spec in ZOO_TASKS:
        return TaskRef(spec, "zoo", spec)
    if spec.endswith((".yaml", ".yml")):
        path = Path(spec).expanduser()
        path = path if path.is_absolute() else invocation_dir / path
        return TaskRef(read_task_yaml(path, allow_code)["task"], "yaml", str(path.resolve()), allow_code)
    return TaskRef(spec, "lmeval", spec)


_LOADED: dict[TaskRef, ChoiceTask] = {}


def load_task(ref: TaskRef) -> ChoiceTask:
    """Every question of ``ref``, loaded once per process; ValueError with the reason if not."""
    if ref not in _LOADED:
        if ref.kind == "zoo":
            _LOADED[ref] = zoo_task(ref.name)
        else:
            _LOADED[ref] = lmeval_task(ref)
    return _LOADED[ref]


def zoo_task(name: str, path: str | Path | None = None) -> ChoiceTask:
    """One zoo QA task, read natively (no lm-eval needed): prompts and choices exactly as
    the shipped lm-eval YAMLs in fixtures/tasks/ format them."""
    if name not in ZOO_TASKS:
        raise ValueError(f"Expected a zoo task in {sorted(ZOO_TASKS)}, but got {name!r}")
    kind, trained, stratum = ZOO_TASKS[name]
    rows = [r for r in load_jsonl(path or data_dir() / "zoo_qa.jsonl") if r["task"] == kind and r["trained"] == trained]
    return ChoiceTask(
        name=name,
        contexts=tuple(r["question"] for r in rows),
        continuations=tuple(tuple(TARGET_DELIMITER + c for c in r["choices"]) for r in rows),
        choices=tuple(tuple(r["choices"]) for r in rows),
        labels=tuple(int(r["label"]) for r in rows),
        stratum=stratum,
        questions_total=len(rows),
    )


