"""The catalog is the single source of what a property is: no built-in property's name is used
outside its measure (measures/<name>.py and its family's helpers), its suite file and the
catalog (properties.py). Like test_structure.py greps imports, this reads the package's AST:
a property name compared with, used as a subscript, passed to a call, iterated over, or read
as a field of the config (``config.kl``) anywhere else means a module knows a property by name, where it
should ask the catalog (axis, fitted, scales, records_as) or the property's own settings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_qrel
from pytest_qrel.properties import BUILTIN

PACKAGE = Path(pytest_qrel.__file__).parent
NAMES = frozenset({p.key for p in BUILTIN} | {p.records_as for p in BUILTIN})
# where a built-in property may be named: the catalog, and each property's measure and the
# helpers of its family (drift.py decides calibration and confidence together; kl_base.py holds
# KL's base outputs; fuzzing records as robustness and samples with its settings)
ALLOWED: dict[str, frozenset[str]] = {
    "properties.py": NAMES,
    "measures/kl.py": frozenset({"kl"}),
    "measures/kl_base.py": frozenset({"kl"}),
    "measures/calibration.py": frozenset({"calibration"}),
    "measures/confidence.py": frozenset({"confidence"}),
    "measures/drift.py": frozenset({"calibration", "confidence"}),
    "measures/choices.py": frozenset({"calibration", "confidence"}),
    "measures/robustness.py": frozenset({"robustness"}),
    "measures/fuzz.py": frozenset({"fuzz", "robustness"}),
    "measures/scaling.py": frozenset({"scaling"}),
}
# a string that spells a property's name but is data: (file, the expression that uses it, why)
DATA = {
    ("data/qa.py", "r['robustness']"): "zoo_qa.jsonl's field marking the questions set apart for robustness",
}


def _constants(node: ast.AST) -> list[ast.Constant]:
    """``node`` if it is a property name, or the names among its elements (``in ("kl", ...)``)."""
    elements = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [e for e in elements if isinstance(e, ast.Constant) and e.value in NAMES]


def _is_config(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "config") or (
        isinstance(node, ast.Attribute) and node.attr == "config")


def uses(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """(the node, the property name) of every use of a built-in property's name in ``tree``."""
    out: list[tuple[ast.AST, str]] = []
    for node in ast.walk(tree):
        found: list[ast.Constant] = []
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                found += _constants(operand)
        elif isinstance(node, ast.Subscript):
            found += _constants(node.slice)
        elif isinstance(node, ast.Call):
            for arg in (*node.args, *(k.value for k in node.keywords)):
                found += _constants(arg)
        elif isinstance(node, (ast.For, ast.comprehension)):  # for p in ("calibration", "confidence")
            found += _constants(node.iter)
        elif isinstance(node, ast.Attribute) and node.attr in NAMES and _is_config(node.value):
            out.append((node, node.attr))
        out += [(c if isinstance(node, ast.comprehension) else node, str(c.value)) for c in found]
    return out


def violations(package: Path = PACKAGE) -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel.startswith(("suites/", "fixtures/")):  # the suites: each names its own property
            continue
        for node, name in uses(ast.parse(path.read_text())):
            expression = ast.unparse(node)
            if name in ALLOWED.get(rel, ()) or (rel, expression) in DATA:
                continue
            out.append(f"{rel}:{node.lineno}: {name!r} in {expression[:100]}")
    return sorted(set(out))


def test_no_builtin_property_is_named_outside_its_measure_suite_and_the_catalog():
    found = violations()
    assert not found, ("a module names a built-in property; ask the catalog or the property's settings "
                       "instead:\n" + "\n".join(found))


def test_the_rule_sees_each_kind_of_use():
    code = ('if r.property == "kl": pass\nx = measures["scaling"]\ny = key in ("kl", "robustness")\n'
            'z = f("fuzz")\nw = self.config.robustness\nv = {"calibration": 1}\nu = "confidence in words"\n'
            't = [p for p in ("confidence",)]\n')
    assert sorted(name for _, name in uses(ast.parse(code))) == ["confidence", "fuzz", "kl", "kl", "robustness",
                                                                 "robustness", "scaling"]


def test_data_exemptions_are_still_needed():
    # an exemption whose expression is gone from its file allows nothing: remove it
    for rel, expression in DATA:
        tree = ast.parse((PACKAGE / rel).read_text())
        assert any(ast.unparse(node) == expression for node, _ in uses(tree)), (rel, expression)
