"""The files an lm-eval task YAML reads, read as lm-eval reads them (issue 34): its YAML loader
(libyaml's CSafeLoader where installed, with ``!function``) and its ``include:`` resolution (the
path resolved first, an include taken beside the resolved file), so the files scanned for code
are exactly the files loaded; each must be a regular file; each file's data locations resolve
beside that file, never against the working directory."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

# Keys lm-eval resolves to code from a plain name that pytest-qrel never uses (it scores with
# its own measures): a metric lm-eval does not know is `evaluate.load(name)`, which imports a
# local metric script or fetches one from the Hub; filters only post-process generations.
# They are dropped before lm-eval sees the task.
UNUSED_KEYS = ("metric_list", "filter_list")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def read_tree(path: Path, resolve_funcs: bool = False, code: list[str] | None = None,
              _seen: frozenset[Path] = frozenset()) -> dict[str, Any]:
    """The task config of ``path`` as lm-eval's ``load_yaml`` merges it (an include's keys under
    the file's own; ``task_list`` not inherited), with each file's data locations resolved beside
    it (``resolve_data_files``). Each ``!function`` is appended to ``code`` as ``file:line:
    !function spec`` (and imported only if ``resolve_funcs``). ValueError naming the file: not a
    regular file, not YAML, not a mapping, an include cycle."""
    import yaml
    from lm_eval.tasks._yaml_loader import _make_loader

    path = Path(path).expanduser().resolve()
    if path in _seen:
        raise ValueError(f"Expected task YAML includes without a cycle, but {path} includes itself")
    raw = read_regular(path)
    loader = _make_loader(path.parent, resolve_funcs=resolve_funcs)
    if code is not None:
        base = loader.yaml_constructors["!function"]

        class Scan(loader):  # type: ignore[valid-type, misc]  # lm-eval's own loader, listing what it would import
            pass

        def function(scan: Any, node: Any) -> Any:
            code.append(f"{path}:{node.start_mark.line + 1}: !function {scan.construct_scalar(node)}")
            return base(scan, node)

        yaml.add_constructor("!function", function, Loader=Scan)
        loader = Scan
    try:
        cfg = yaml.load(raw, Loader=loader)  # lm-eval's loader; !function imports only if resolve_funcs
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"Expected valid YAML in {path}, but it has a syntax error{where}: {problem}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"Expected an lm-eval task mapping in {path}, but got {type(cfg).__name__}")
    cfg = resolve_data_files(cfg, path.parent, path)
    if "include" not in cfg:
        return cfg
    includes = cfg.pop("include")
    merged: dict[str, Any] = {}
    for inc in includes if isinstance(includes, list) else [includes]:
        if not isinstance(inc, str):
            raise ValueError(f"Expected `include:` file names in {path}, but got {inc!r}")
        included = read_tree(Path(inc) if Path(inc).is_absolute() else path.parent / inc, resolve_funcs, code,
                             _seen | {path})
        included.pop("task_list", None)
        merged.update(included)
    return {**merged, **cfg}


def read_regular(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file: a FIFO, device or folder would block or
    fail inside lm-eval (opened without blocking, so a FIFO is refused, not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ValueError(f"Expected an lm-eval task YAML at {path}, but it cannot be read: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise ValueError(f"Expected an lm-eval task YAML file at {path}, but it is {kind}")
    with os.fdopen(fd, "rb") as f:
        return f.read()


def resolve_data_files(cfg: dict[str, Any], base: Path, source: Path | None = None) -> dict[str, Any]:
    """Local data locations named by one task YAML (``source``, in folder ``base``) taken relative
    to it, never to the working directory; ``~`` expanded. ``dataset_path``: a datasets builder
    (``json``, ``csv``...) and a Hub id ``org/name`` are kept; any other relative path is beside
    the YAML (ValueError naming both if it is not there). ``data_files`` and ``data_dir`` of
    ``dataset_kwargs`` are beside the YAML (``data_dir`` of a Hub id, a folder of its repository,
    only where it exists beside the YAML)."""
    yaml_name = source or base
    path = cfg.get("dataset_path")
    if isinstance(path, str) and path and "://" not in path and path not in _builders():
        local = Path(path).expanduser()
        explicit = path.startswith(("./", "../", ".\\", "..\\", "~")) or path in (".", "..")
        if local.is_absolute():
            cfg = {**cfg, "dataset_path": str(local)}
        elif explicit or (base / local).exists():
            cfg = {**cfg, "dataset_path": str((base / local).resolve())}
        elif not _HUB_ID.fullmatch(path):
            raise ValueError(f"Expected the dataset folder `dataset_path: {path}` of {yaml_name} beside it, at "
                             f"{base / local}, but it does not exist (a Hub dataset is named `org/name`)")
        elif local.exists():  # datasets would read it from the working directory, not the Hub
            raise ValueError(f"Expected `dataset_path: {path}` of {yaml_name} to be a Hub dataset or a folder beside "
                             f"the YAML, but it names {local.resolve()} in the working directory; write ./{path} "
                             f"beside the YAML or an absolute path")
    kwargs = cfg.get("dataset_kwargs")
    if not isinstance(kwargs, dict):
        return cfg
    kwargs = dict(kwargs)
    hub = isinstance(cfg.get("dataset_path"), str) and bool(_HUB_ID.fullmatch(cfg["dataset_path"]))
    folder = kwargs.get("data_dir")
    if isinstance(folder, str) and "://" not in folder and not Path(folder).expanduser().is_absolute():
        if not hub or (base / folder).exists() or folder.startswith(("./", "../", "~")):
            kwargs["data_dir"] = str((base / Path(folder).expanduser()).resolve())
            if not Path(kwargs["data_dir"]).is_dir():
                raise ValueError(f"Expected the folder `data_dir: {folder}` of {yaml_name} beside it, at "
                                 f"{kwargs['data_dir']}, but there is none")
    elif isinstance(folder, str) and folder.startswith("~"):
        kwargs["data_dir"] = str(Path(folder).expanduser())

    def fix(p: Any) -> Any:
        # relative to the YAML only, never to the working directory: a missing file is named there
        if isinstance(p, str) and "://" not in p:
            return str((base / Path(p).expanduser()).resolve())
        return [fix(x) for x in p] if isinstance(p, list) else {k: fix(v) for k, v in p.items()} if isinstance(p, dict) else p

    if kwargs.get("data_files") is not None:
        kwargs["data_files"] = fix(kwargs["data_files"])
    return {**cfg, "dataset_kwargs": kwargs}


def _builders() -> set[str]:
    """The datasets library's own builders (json, csv, parquet, ...): ``dataset_path: json`` is
    one of them, even beside a folder named ``json``."""
    import datasets.packaged_modules

    return set(getattr(datasets.packaged_modules, "_PACKAGED_DATASETS_MODULES", ()))
