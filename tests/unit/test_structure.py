"""The package's shape: imports point down the layers of ARCHITECTURE.md, no cycle, imports
inside functions only for heavy libraries, no private name crossing a module, ``__init__``
files that only re-export with a checked ``__all__``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import pytest_qrel

PACKAGE = Path(pytest_qrel.__file__).parent
ARCHITECTURE = PACKAGE.parent / "ARCHITECTURE.md"
# third-party libraries whose import costs seconds: a module importing one at its top is
# imported by others only inside the function that needs it
HEAVY = {"torch", "transformers", "scipy", "hypothesis", "matplotlib", "lm_eval", "hqq", "bitsandbytes",
         "gptqmodel", "optimum", "datasets", "sklearn", "safetensors", "accelerate",
         "xdist"}  # xdist: optional (the test extra), imported only from its own hook


def package_modules(root: Path = PACKAGE) -> dict[str, Path]:
    out = {}
    for p in root.rglob("*.py"):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports(mods: dict[str, Path], name: str) -> list[tuple[str, str, bool, int]]:
    """(imported module, imported name, inside a function?, line) of every package import of ``name``."""
    path = mods[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text())
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = ".".join(package[: len(package) - child.level + 1] + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    target = full if full in mods else base
                    if target in mods:
                        out.append((target, alias.name if target == base else "", inside, child.lineno))
            elif isinstance(child, ast.Import):
                out.extend((a.name, "", inside, child.lineno) for a in child.names if a.name in mods)
            visit(child, inside)

    visit(tree, False)
    return [i for i in out if i[0] != name]


def layers(text: str) -> dict[str, int]:
    """ARCHITECTURE.md's layer table: name (``data``, ``data.types``, ``pytest_qrel``) -> layer."""
    section = text.split("## Layers", 1)[1]
    out = {}
    for number, names in re.findall(r"^\| (\d+) \| ([^|]+) \|$", section, flags=re.M):
        for n in names.split(","):
            out[n.strip()] = int(number)
    return out


def layer_of(module: str, table: dict[str, int]) -> int:
    """The layer of the longest listed name that is ``module`` or a package holding it."""
    if module == "pytest_qrel":
        return table["pytest_qrel"]
    parts = module.removeprefix("pytest_qrel.").split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in table:
            return table[".".join(parts[:k])]
    raise AssertionError(f"{module} is in no layer of ARCHITECTURE.md")


def heavy_modules(mods: dict[str, Path]) -> set[str]:
    """Modules that import a heavy library at import time, directly or through a package module."""
    top: dict[str, set[str]] = {}
    direct = set()
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        third = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                third |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                third.add((node.module or "").split(".")[0])
        if third & HEAVY:
            direct.add(name)
        top[name] = {t for t, _, inside, _ in imports(mods, name) if not inside}
    heavy, changed = set(direct), True
    while changed:
        changed = False
        for name, targets in top.items():
            if name not in heavy and targets & heavy:
                heavy.add(name)
                changed = True
    return heavy


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def problems(root: Path = PACKAGE, architecture: str | None = None) -> list[str]:
    """Every structural problem of the package at ``root``, one line each."""
    mods = package_modules(root)
    table = layers(architecture if architecture is not None else ARCHITECTURE.read_text())
    heavy = heavy_modules(mods)
    found, edges = [], {}
    for name in sorted(mods):
        found += [f"{name} is in no layer of ARCHITECTURE.md"] if not _listed(name, table) else []
        edges[name] = set()
        for target, imported_name, inside, line in imports(mods, name):
            edges[name].add(target)
            where = f"{mods[name].relative_to(root.parent)}:{line}"
            if _listed(name, table) and _listed(target, table) and layer_of(target, table) > layer_of(name, table):
                found.append(f"{where}: {name} (layer {layer_of(name, table)}) imports {target} "
                             f"(layer {layer_of(target, table)}), a higher layer")
            if inside and target not in heavy:
                found.append(f"{where}: {name} imports {target} inside a function, but it loads no heavy library")
            if imported_name.startswith("_") and not imported_name.startswith("__"):
                found.append(f"{where}: {name} imports the private name {imported_name} of {target}")
    found += [f"import cycle: {' -> '.join(group)}" for group in cycles(edges)]
    return found


def _listed(module: str, table: dict[str, int]) -> bool:
    try:
        layer_of(module, table)
    except AssertionError:
        return False
    return True


def test_the_package_has_no_cycle_no_upward_import_and_no_private_name_crossing():
    assert problems() == []


@pytest.fixture
def copy(tmp_path) -> Path:
    """A copy of the package to damage."""
    import shutil

    out = tmp_path / "pytest_qrel"
    shutil.copytree(PACKAGE, out, ignore=shutil.ignore_patterns("__pycache__"))
    return out


def test_an_upward_import_is_found(copy):
    """The check is not vacuous: a copy of the package where a layer-1 module imports the
    session (the highest but two) fails it, naming the import; so does a cycle."""
    variants = copy / "variants.py"
    variants.write_text(variants.read_text() + "\nfrom .session import QrelSession  # noqa: E402,F401\n")
    found = problems(copy)
    assert any("pytest_qrel.variants (layer 1) imports pytest_qrel.session (layer 10), a higher layer" in p for p in found)
    assert any(p.startswith("import cycle:") and "pytest_qrel.variants" in p for p in found)


def test_a_light_import_inside_a_function_and_a_private_name_are_found(copy):
    config = copy / "config.py"
    config.write_text(config.read_text() + "\n\ndef _late():\n    from .options import MODELS\n    from .parsing import _x\n")
    found = problems(copy)
    assert any("imports pytest_qrel.options inside a function, but it loads no heavy library" in p for p in found)
    assert any("imports the private name _x of pytest_qrel.parsing" in p for p in found)


def test_a_module_missing_from_the_layer_table_is_found():
    text = ARCHITECTURE.read_text().replace("| 4 | baseline, checkpoints, settings |", "| 4 | baseline, settings |")
    assert "pytest_qrel.checkpoints is in no layer of ARCHITECTURE.md" in problems(architecture=text)


def test_the_plugin_imports_no_heavy_library():
    """`pytest` with the plugin installed and no --qrel-* option loads no torch, scipy, ..."""
    import subprocess
    import sys

    code = ("import sys, pytest_qrel.plugin; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in %r))" % sorted(HEAVY))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


INIT_FILES = sorted(p for p in PACKAGE.rglob("__init__.py"))


@pytest.mark.parametrize("init", INIT_FILES, ids=lambda p: str(p.parent.relative_to(PACKAGE.parent)))
def test_init_files_only_reexport_with_a_checked_all(init: Path):
    """An ``__init__`` holds its docstring, imports and ``__all__`` (and the package's
    ``__version__``); ``__all__`` is exactly the names it imports, each of which exists."""
    import importlib
    import inspect

    tree = ast.parse(init.read_text())
    other = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))
             and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
             and not (isinstance(n, ast.Assign) and {t.id for t in n.targets if isinstance(t, ast.Name)} <= {"__all__", "__version__"})]
    assert not other, f"{init}: {[ast.unparse(n)[:60] for n in other]}"
    imported = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    module = importlib.import_module(".".join(init.parent.relative_to(PACKAGE.parent).parts))
    exported = set(module.__all__)
    # a submodule imported for its side effect (registering perturbations) is not a re-export
    reexported = {n for n in imported - {"annotations"} if not inspect.ismodule(getattr(module, n))}
    assert exported - {"__version__"} == reexported, init
    assert all(hasattr(module, name) for name in exported)
