"""lm-eval tasks as multiple-choice questions: lm-eval supplies the task definition, the
documents and the prompt formatting; the scores are pytest-qrel's own (engine.py)."""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..models import fixtures_dir
from .task_files import UNUSED_KEYS, read_regular, read_tree
from .types import ZOO_TASKS, ChoiceTask, TaskRef

EXTRA = "pip install 'pytest-qrel[lmeval]'"
TEMPLATE_RANGE = 10_000  # items of one range() in a task template (jinja's sandbox: 100,000)
TEMPLATE_SECONDS = 5.0  # one render of a task template (a document's prompt): loops and regexes stop there


def _require_lm_eval(what: str) -> None:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise ValueError(f"{what} needs lm-eval, which is not installed: {EXTRA}") from None
    for name in ("lm_eval", "lm-eval"):  # its INFO lines would drown the test output
        logging.getLogger(name).setLevel(logging.ERROR)
    import datasets

    datasets.disable_progress_bars()


_NEEDS = {"multiple_choice": ("dataset_path", "doc_to_choice", "confidence is a softmax over choices"),
          "loglikelihood_rolling": ("dataset_path", "doc_to_target", "the KL suite's text is a perplexity task's")}


def read_task_yaml(path: Path, allow_code: bool = False, output_type: str = "multiple_choice") -> dict[str, Any]:
    """A local lm-eval task file of ``output_type``, read and checked: ValueError naming the
    file and the problem.
    A file that would run Python (``!function``, in it or in a file it includes) is refused
    unless ``allow_code`` (or it ships with pytest-qrel)."""
    if not path.exists():
        raise ValueError(f"Expected an lm-eval task YAML at {path}, but it does not exist")
    if not read_regular(path).strip():  # a folder or FIFO is named, not read
        raise ValueError(f"Expected an lm-eval task in {path}, but the file is empty")
    _require_lm_eval(f"task file {path}")
    code: list[str] = []
    cfg = read_tree(path, code=code)  # the files lm-eval would read, as it reads them; nothing imported
    if code and not (allow_code or _shipped(path)):
        raise ValueError(f"{path} runs Python from a file beside it ({code[0]}); pytest-qrel runs no code from a "
                         f"task file unless you pass --qrel-allow-task-code")
    if "group" in cfg and "task" not in cfg:
        raise ValueError(f"Expected one task in {path}, but it defines group {cfg['group']!r}; name its tasks instead")
    if not isinstance(cfg.get("task"), str) or not cfg["task"].strip():
        raise ValueError(f"Expected a `task: <name>` entry in {path}, but it has none")
    *keys, why = _NEEDS[output_type]
    got = cfg.get("output_type", "generate_until")
    if got != output_type:
        raise ValueError(f"Expected `output_type: {output_type}` in {path} ({why}), but got {got!r}")
    for key in keys:
        if key not in cfg:
            raise ValueError(f"Expected a `{key}` entry in {path}, but it has none")
    return cfg


def _shipped(path: Path) -> bool:
    """The zoo's own task YAMLs (fixtures/tasks/) are pytest-qrel's code, trusted as the package is."""
    return path.resolve().is_relative_to((fixtures_dir() / "tasks").resolve())


def lmeval_task(ref: TaskRef) -> ChoiceTask:
    """Every question of an lm-eval multiple-choice task (named, or a local YAML) with the
    contexts and continuations lm-eval would request; ValueError saying why not."""
    with sandboxed_templates(ref):
        task, where = _load_task(ref)
        if task.OUTPUT_TYPE != "multiple_choice":
            raise ValueError(f"Expected a multiple_choice task, but {where} has output_type {task.OUTPUT_TYPE!r}")
        if task.multiple_input or task.multiple_target:
            raise ValueError(f"Expected one context and one gold choice per question, but {where} has several")
        return _to_choice_task(ref.name, task, where)


def lmeval_docs(spec: str, allow_code: bool = False) -> list[str]:
    """The documents of an lm-eval perplexity task (``output_type: loglikelihood_rolling``, as
    wikitext), named or a local YAML, as lm-eval scores them (its ``doc_to_target``), from
    its evaluation split; ValueError saying why not (unknown task, dataset not available
    offline, not a perplexity task)."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        rolling = "loglikelihood_rolling"
        ref = TaskRef(read_task_yaml(path, allow_code, rolling)["task"], "yaml", str(path.resolve()), allow_code)
    else:
        ref = TaskRef(spec, "lmeval", spec)
    with sandboxed_templates(ref):
        task, where = _load_task(ref, build=False, output_type="loglikelihood_rolling")
        if task.OUTPUT_TYPE != "loglikelihood_rolling":
            raise ValueError(f"Expected a perplexity task (output_type loglikelihood_rolling, as wikitext) for "
                             f"--qrel-kl-text, but {where} has output_type {task.OUTPUT_TYPE!r}")
        docs = list(task.eval_docs)
        if not docs:
            raise ValueError(f"Expected documents in {where}, but its evaluation split is empty")
        return [str(task.doc_to_target(doc)) for doc in docs]


@contextmanager
def sandboxed_templates(ref: TaskRef) -> Iterator[None]:
    """While ``ref`` is loaded and its documents formatted, lm-eval renders the task's Jinja
    templates (``doc_to_text`` and the like) in jinja's ImmutableSandboxedEnvironment, unless
    the user passed --qrel-allow-task-code: lm-eval's own environment is unsandboxed, so a
    template could reach ``os`` through a global's ``__globals__`` and run a command. The
    sandbox keeps lm-eval's settings and filters and what its tasks use (fields, items,
    indexing, string methods such as ``split``); it refuses ``_`` attributes and calls that
    change data. A refused template is a ValueError naming the task and the field."""
    if ref.allow_code:
        yield
        return
    _require_lm_eval(f"task {ref.name!r}")
    import lm_eval.utils
    from jinja2 import BaseLoader, StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class Sandbox(ImmutableSandboxedEnvironment):
        source = ""  # the template being rendered: lm-eval renders each right after compiling it
        deadline = 0.0  # when its render has run too long
        intercepted_binops = frozenset(("*", "**", "+"))  # 'a' * 10**9, 10**10**9, s + s: sized before they are made

        def from_string(self, source, *args, **kwargs):  # jinja's own signature
            self.source, self.deadline = source, time.monotonic() + TEMPLATE_SECONDS
            return super().from_string(source, *args, **kwargs)

        def tick(self) -> None:
            if time.monotonic() > self.deadline:
                raise SecurityError(f"the render ran past {TEMPLATE_SECONDS:g} s")

        def call(__self, __context, __obj, *args, **kwargs):  # jinja's own signature
            __self.tick()  # every call, filter and loop's range: a template's work is bounded in time
            return super().call(__context, __obj, *args, **kwargs)

        def getitem(self, obj, argument):  # jinja's own signature
            self.tick()
            return super().getitem(obj, argument)

        def call_binop(self, context, operator, left, right):  # jinja's own signature
            sized = (str, bytes, list, tuple)
            if operator == "*" and isinstance(left, int) and isinstance(right, sized):
                left, right = right, left
            if operator == "*" and isinstance(left, sized) and isinstance(right, int) and len(left) * right > 1 << 20 \
                    or operator == "+" and isinstance(left, sized) and isinstance(right, sized) \
                    and len(left) + len(right) > 1 << 20 \
                    or operator == "**" and isinstance(left, int) and isinstance(right, int) \
                    and abs(left).bit_length() * right > 1 << 16:
                raise SecurityError(f"{operator} would make a value too big for a template")
            return super().call_binop(context, operator, left, right)

    class CappedRange(Sequence[int]):
        """range(), of at most TEMPLATE_RANGE items (jinja's sandbox: 100,000), its loops timed:
        nested loops multiply, and a task template needs few items."""

        def __init__(self, *args: int) -> None:
            self.items = range(*args)
            if len(self.items) > TEMPLATE_RANGE:
                raise SecurityError(f"range of {len(self.items)} items; a task template may have {TEMPLATE_RANGE}")

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, i):  # range's own signature
            return self.items[i]

        def __iter__(self) -> Iterator[int]:
            for n, i in enumerate(self.items):
                if n % 1024 == 0:
                    sandbox.tick()
                yield i

    def regex_replace(string: str, pattern: str, repl: str, count: int = 0) -> str:
        # lm-eval's filter is re.sub, which a pattern can make backtrack for ever; `regex` has a timeout
        import regex

        try:
            return regex.sub(pattern, repl, string, count=count, timeout=max(sandbox.deadline - time.monotonic(), 0.01))
        except TimeoutError:
            raise SecurityError(f"regex_replace ran past {TEMPLATE_SECONDS:g} s") from None

    unsafe = lm_eval.utils.env
    sandbox = Sandbox(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)
    sandbox.filters.update({k: f for k, f in unsafe.filters.items() if k not in sandbox.filters})
    sandbox.filters["regex_replace"] = regex_replace
    sandbox.globals["range"] = CappedRange
    lm_eval.utils.env = sandbox
    try:
        yield
    except Exception as exc:
        refused = _in_chain(exc, SecurityError)
        if refused is None:
            raise
        where = ref.source if ref.kind == "yaml" else f"lm-eval task {ref.name!r}"
        field = _field_of(sandbox.source, _config_of(ref)) or "a"
        raise ValueError(f"Expected task templates that pytest-qrel's sandbox renders (no attribute that starts "
                         f"with '_', no call that changes data, a range of {TEMPLATE_RANGE} items, {TEMPLATE_SECONDS:g} s "
                         f"a render; --qrel-allow-task-code lifts it), but the `{field}` "
                         f"template of {where} was refused: {str(refused).rstrip('.')}") from None
    finally:
        lm_eval.utils.env = unsafe


def _in_chain(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first exception it was raised from (or during) that is a ``kind``."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, kind):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _field_of(source: str, cfg: Any, prefix: str = "") -> str | None:
    """The config key (``doc_to_text``, ``fewshot_config.doc_to_text``) whose template is ``source``."""
    items = cfg.items() if isinstance(cfg, dict) else enumerate(cfg) if isinstance(cfg, list) else ()
    for key, value in items:
        name = f"{prefix}{key}" if isinstance(key, str) else f"{prefix.rstrip('.')}[{key}]"
        found = name if value == source else _field_of(source, value, f"{name}.")
        if found:
            return found
    return None


def _load_task(ref: TaskRef, build: bool = True, output_type: str = "multiple_choice") -> tuple[Any, str]:
    """The lm-eval task object of ``ref`` (its requests built) and how to name it."""
    _require_lm_eval(f"task {ref.name!r}")
    from lm_eval.tasks import TaskManager

    if ref.kind == "yaml":
        path = Path(ref.source)
        read_task_yaml(path, ref.allow_code, output_type)  # checked first: a malformed file, or code not allowed, is named
        # `!function` imported (beside its file) only where allowed; the metrics and filters that
        # lm-eval would resolve to code (evaluate.load) are never used here, so never resolved
        cfg = read_tree(path, resolve_funcs=ref.allow_code or _shipped(path))
        cfg = {k: v for k, v in cfg.items() if k not in UNUSED_KEYS}
        # a task config needs no index: none of the YAML's folder (a FIFO or a .venv there) is read
        spec: dict[str, Any] | str
        manager, spec, where = TaskManager(include_defaults=False), cfg, str(path)
    else:
        manager, spec, where = TaskManager(), ref.name, f"lm-eval task {ref.name!r}"
        if ref.name not in manager.all_subtasks:
            import difflib

            close = difflib.get_close_matches(ref.name, manager.all_subtasks, n=3)
            groups = " (a group or tag: name its tasks)" if ref.name in manager.all_tasks else ""
            raise ValueError(
                f"Expected a zoo task ({', '.join(_zoo_names())}), a task YAML or an lm-eval task, "
                f"but got {ref.name!r}{groups}" + (f"; did you mean {', '.join(close)}?" if close else "")
            )
    try:
        task = next(iter(manager.load([spec])["tasks"].values()))
        if build:
            task.build_all_requests(rank=0, world_size=1)
    except Exception as exc:  # every failure becomes one line naming the task
        from jinja2.sandbox import SecurityError

        if _in_chain(exc, SecurityError):
            raise  # a template the sandbox refused: sandboxed_templates names the field
        raise ValueError(_load_failure(where, (_config_of(ref, manager) or {}).get("dataset_path"), exc)) from None
    return task, where


def _zoo_names() -> list[str]:
    return list(ZOO_TASKS)


def _config_of(ref: TaskRef, manager: Any = None) -> dict[str, Any] | None:
    """A task's config as its YAML says (for error messages: its dataset, a template's field);
    ``manager``: the lm-eval TaskManager that indexed it, if there is one."""
    try:
        from lm_eval.tasks._yaml_loader import load_yaml

        if ref.kind == "yaml":
            return read_tree(Path(ref.source))
        from lm_eval.tasks import TaskManager

        entry = (manager or TaskManager()).task_index.get(ref.name)
        return load_yaml(entry.yaml_path, resolve_func=False) if entry and entry.yaml_path else None
    except Exception:  # only for the message
        return None


def _load_failure(where: str, dataset: str | None, exc: BaseException) -> str:
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " ".join(f"{type(x).__name__} {x}" for x in chain).lower()
    offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    network = any(w in text for w in ("offline", "connection", "resolve", "network", "couldn't reach", "max retries"))
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if network or offline and "not found" in text:
        return (
            f"{where} needs its dataset{f' {dataset!r}' if dataset else ''} from the network (Hugging Face Hub), "
            f"which is not in the local cache and cannot be fetched"
            + (" in offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set)" if offline else "")
            + f"; download it once online, or use a local task YAML with `dataset_path: json` ({type(exc).__name__}: {first})"
        )
    return f"cannot load {where}: {type(exc).__name__}: {first}"


def _to_choice_task(name: str, task: Any, where: str) -> ChoiceTask:
    by_doc: dict[int, list] = {}
    for inst in task.instances:
        by_doc.setdefault(inst.doc_id, []).append(inst)
    contexts, continuations, choices, labels = [], [], [], []
    for doc_id in sorted(by_doc):
        insts = sorted(by_doc[doc_id], key=lambda i: i.idx)
        doc = insts[0].doc
        texts = [str(c) for c in task.doc_to_choice(doc)]
        pairs = [inst.arguments for inst in insts][: len(texts)]  # acc_mutual_info adds unconditional ones
        gold = task.doc_to_target(doc)
        label = texts.index(gold) if isinstance(gold, str) and gold in texts else gold
        if not isinstance(label, int) or not 0 <= label < len(texts):
            raise ValueError(f"Expected the gold answer of document {doc_id} of {where} among its {len(texts)} choices, but got {gold!r}")
        if len({ctx for ctx, _ in pairs}) != 1:
            raise ValueError(f"Expected one context per question, but document {doc_id} of {where} has several")
        contexts.append(pairs[0][0])
        continuations.append(tuple(cont for _, cont in pairs))
        choices.append(tuple(texts))
        labels.append(label)
    if not labels:
        raise ValueError(f"Expected at least one question in {where}, but it has no documents")
    return ChoiceTask(name, tuple(contexts), tuple(continuations), tuple(choices), tuple(labels), None, len(labels))
