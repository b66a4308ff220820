"""The store's shape (issue 35 item 1): store.py small and without error helpers, every
exception in errors.py, no module writing into the store's dicts or another module's
per-model state, each measure's per-model state a declared, typed dataclass, and the records
that cross the store's edges (VariantInfo, Checkpoint) typed."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest

import pytest_qrel

PACKAGE = Path(pytest_qrel.__file__).parent
OWNERS = {"store.py", "model_state.py"}  # the store's own modules: they write its dicts
# methods that change the object they are called on
MUTATORS = {"setdefault", "update", "pop", "popitem", "clear", "append", "extend", "insert", "remove", "add",
            "discard", "__setitem__", "__delitem__"}
ERROR_HELPERS = {"one_line", "variant_failure"}


def _modules(root: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "fixtures" not in p.relative_to(root).parts)


def test_store_is_under_150_lines_and_defines_no_error_or_error_helper():
    text = (PACKAGE / "store.py").read_text()
    tree = ast.parse(text)
    assert len(text.splitlines()) < 150
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert not defined & (ERROR_HELPERS | {"VariantError"}), defined & (ERROR_HELPERS | {"VariantError"})


def _is_exception(node: ast.ClassDef) -> bool:
    names = {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
    return any(n in ("BaseException", "Exception") or n.endswith(("Error", "Warning", "Exception")) for n in names)


def test_every_exception_and_error_helper_is_defined_in_errors_py():
    outside = []
    for path in _modules():
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and _is_exception(node) or \
                    isinstance(node, ast.FunctionDef) and node.name in ERROR_HELPERS:
                outside.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    assert outside == []


# -- who writes into the store ---------------------------------------------------------------------


def _reaches_store(node: ast.AST, tainted: dict[str, bool]) -> bool | None:
    """Whether ``node`` is an object reached through the store (an attribute ``store``, a name
    ``store``, or a name assigned from such an object): None if not; True if it is reached
    through ``store.state(..., K)`` with K a class this module defines (its own state); False otherwise."""
    own = None
    while True:
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "state" and len(node.args) == 2 \
                    and isinstance(node.args[1], ast.Name) and node.args[1].id in tainted.get("__classes__", ()):
                own = True if own is None else own
            node = func
        elif isinstance(node, ast.Attribute):
            if node.attr == "store":
                return bool(own)
            node = node.value
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Name):
            if node.id == "store":
                return bool(own)
            if node.id in tainted:
                return bool(own) or tainted[node.id]
            return None
        else:
            return None


def store_writes(source: str, where: str) -> list[str]:
    """Every statement of ``source`` that writes into an object reached through the store,
    other than the module's own per-model state: ``x.store.info[v] = ...``,
    ``x.store.info.setdefault(...)``, ``s = x.store.scratch(v); s["k"] = ...``, ``del ...``."""
    tree = ast.parse(source)
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    found = []
    for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        tainted: dict = {"__classes__": classes}
        for _ in range(3):  # names assigned from the store, then names assigned from those
            for node in (n for n in ast.walk(func) if isinstance(n, ast.Assign)):
                for t in node.targets:
                    pairs = zip(t.elts, node.value.elts) if isinstance(t, ast.Tuple) and isinstance(node.value, ast.Tuple) \
                        and len(t.elts) == len(node.value.elts) else [(t, node.value)]
                    for target, value in pairs:
                        reached = _reaches_store(value, tainted)
                        if isinstance(target, ast.Name) and reached is not None:
                            tainted[target.id] = reached
        for node in ast.walk(func):
            targets: list[ast.AST] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            elif isinstance(node, ast.Delete):
                targets = node.targets
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
                if _reaches_store(node.func.value, tainted) is False:
                    found.append(f"{where}:{node.lineno}: {ast.unparse(node)[:90]}")
            for target in targets:
                for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(t, (ast.Subscript, ast.Attribute)) and _reaches_store(t.value, tainted) is False:
                        found.append(f"{where}:{node.lineno}: {ast.unparse(node)[:90]}")
    return sorted(set(found))


def test_no_module_but_the_store_writes_into_the_store_or_another_modules_state():
    found = []
    for path in _modules():
        if path.name in OWNERS and path.parent == PACKAGE:
            continue
        found += store_writes(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert found == []


@pytest.mark.parametrize("code", [
    "def f(self, variant):\n    self.store.info.setdefault(variant, {})['kl_base_forward_passes'] = 1\n",
    "def f(self, variant, outputs):\n    self.store.scratch(variant)['kl_base_outputs'] = outputs\n",
    "def f(self, variant):\n    scratch = self.store.scratch(variant)\n    scratch['kl_text'] = 1\n",
    "def f(self, variant):\n    memo = self.store.scratch(variant).setdefault('fuzz', {})\n    memo[1] = 2\n",
    "def f(self, variant):\n    self.store.info[variant].cache = 'hit'\n",
    "def f(store, variant):\n    store.info.update({variant: 1})\n",
    "def f(self, variant):\n    s = self.store.state(variant, KLState)\n    s.text = 1\n",  # KLState is not this module's
])
def test_a_write_into_the_store_is_found(code):
    """The check is not vacuous: today's writes of measures/kl.py and kl_base.py into the store's
    dicts, and a write into another module's state, are found."""
    assert store_writes(code, "m.py")


def test_a_module_writes_its_own_state():
    code = ("class KLState:\n    pass\n\n\ndef f(self, variant):\n    s = self.store.state(variant, KLState)\n"
            "    s.text = 1\n    s.gates[1] = 2\n    self.store.state(variant, KLState).text = 3\n")
    assert store_writes(code, "m.py") == []


# -- per-model state ---------------------------------------------------------------------------------


def _state_classes() -> list[type]:
    from pytest_qrel.model_state import ModelState

    for path in _modules():
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    out, todo = [], [ModelState]
    while todo:
        for sub in todo.pop().__subclasses__():
            out.append(sub)
            todo.append(sub)
    return out


def test_each_measures_per_model_state_is_a_declared_typed_dataclass():
    """Each kind of per-model state (torchmetrics' add_state): a dataclass, every field typed
    (never Any, never a bare dict of str to anything), defaulted, and commented."""
    from pytest_qrel.model_state import HeldBase

    kinds = _state_classes()
    assert {k.__name__ for k in kinds} >= {"KLState", "StoredOutputsState", "FamilyState", "FuzzState"}
    for kind in [*kinds, HeldBase]:
        assert dataclasses.is_dataclass(kind), kind
        lines, _ = inspect.getsourcelines(kind)
        for f in dataclasses.fields(kind):
            annotation = str(f.type)
            assert "Any" not in annotation and annotation not in ("dict", "object"), (kind, f.name, annotation)
            if kind is not HeldBase:
                assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, (kind, f.name)
                at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{f.name}:"))
                assert "#" in lines[at] or lines[at - 1].strip().startswith("#"), f"{kind.__name__}.{f.name} has no comment"


def test_the_store_has_no_untyped_dict_attribute():
    for name in OWNERS:
        for node in ast.walk(ast.parse((PACKAGE / name).read_text())):
            if isinstance(node, ast.AnnAssign):
                assert "Any" not in ast.unparse(node.annotation), f"{name}:{node.lineno} {ast.unparse(node)}"


def test_asking_for_state_loads_nothing(monkeypatch):
    """``state()`` is plain access: with no base held it raises, and never loads one."""
    import pytest_qrel.store as store
    from pytest_qrel.measures.kl import KLState
    from pytest_qrel.variants import Variant

    def load_base(*args, **kwargs):
        raise AssertionError("state() loaded a base")

    monkeypatch.setattr(store, "load_base", load_base)
    models = store.ModelStore(None)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="call base"):
        models.state(Variant("zoo-xs", "zoo-xs", "rtn", 4, 64), KLState)


# -- records across the store's edges ------------------------------------------------------------------


def test_variant_info_serializes_as_the_dict_the_store_kept():
    """The keys and their order of a variant's info in a test report and results.json: what the
    quantization measured, then the cache state, then the KL's base passes; an error alone."""
    from pytest_qrel.variants import QuantizedInfo, VariantInfo

    q = QuantizedInfo(["a", "b"], ["a", "b"], 3, 64, 4.25, 4.5, 100, 1000.0, 400, 0.5, 1.0, 2000.0,
                      {"c": "too small"}, {})
    assert VariantInfo(q, "hit").as_dict() == {**q.as_dict(), "cache": "hit"}
    passes = VariantInfo(q, "miss", kl_base_forward_passes=0).as_dict()
    assert list(passes) == [*q.as_dict(), "cache", "kl_base_forward_passes"] and passes["kl_base_forward_passes"] == 0
    assert VariantInfo(error="QuantizationError: no").as_dict() == {"error": "QuantizationError: no"}


def test_a_checkpoint_is_a_record_with_named_fields():
    from pytest_qrel.checkpoints import Checkpoint

    assert dataclasses.is_dataclass(Checkpoint)
    c = Checkpoint("tiny", "/m/tiny", "/m/gptq-4", "gptq", 4, 128)
    assert (c.base_name, c.path, c.method, c.bits, c.group_size) == ("tiny", "/m/gptq-4", "gptq", 4, 128)
