"""Checking a results.json entry against ``schema.py``'s TypedDicts: one check per entry kind
(``variant_problem``, ``result_problem``), which ``--qrel-merge`` and ``--qrel-baseline`` both
read through; the keys and their types come from the TypedDicts alone."""

import sys
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

from .schema import GATED, STATUSES, ComparedEntry, NonFinite, Number, ResultEntry, VariantEntry, hints

if sys.version_info >= (3, 11):
    from typing import is_typeddict
else:
    from typing_extensions import is_typeddict

_UNIONS = (Union, types.UnionType)  # Optional[int], and int | None


def conforms(value: object, hint: Any) -> bool:
    """Whether a JSON ``value`` is of the type ``hint`` (a TypedDict: each of its keys)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if is_typeddict(hint):
        return entry_problem(value, hint) is None
    origin = get_origin(hint)
    if origin in _UNIONS:
        return any(conforms(value, arm) for arm in get_args(hint))
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in get_args(hint))
    if origin is list:
        (item,) = get_args(hint)
        return isinstance(value, list) and all(conforms(v, item) for v in value)
    if origin is dict:
        key, item = get_args(hint)
        return isinstance(value, dict) and all(conforms(k, key) and conforms(v, item) for k, v in value.items())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def describe(hint: Any) -> str:
    """A type in the words of a message: ``int or null``, ``number``, ``str``."""
    if hint is type(None):
        return "null"
    if is_typeddict(hint) or get_origin(hint) is dict:
        return "an object"
    if get_origin(hint) is list:
        return "a list"
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if get_origin(hint) in _UNIONS:
        arms = [a for a in get_args(hint) if a is not type(None) and a != NonFinite]
        words = ["number" if a is float else describe(a) for a in arms]
        return " or ".join(words + (["null"] if type(None) in get_args(hint) else []))
    return {float: "number"}.get(hint, getattr(hint, "__name__", str(hint)))


def entry_problem(entry: object, kind: Any, missing_as_null: bool = False) -> str | None:
    """Why ``entry`` is not a ``kind`` (a TypedDict class: typing has no type for one), or None: an object, every required key
    present (``missing_as_null``: read as null, said as such), every key it declares of its
    type. Keys it does not declare (a measure's details, a newer run's) are left alone."""
    if not isinstance(entry, dict):
        return f"expected an object, but got {type(entry).__name__}"
    for key, hint in hints(kind).items():
        if key not in entry:
            if key not in kind.__required_keys__:
                continue
            if not missing_as_null:
                return f"it has no {key!r}"
        value = entry.get(key)
        if not conforms(value, hint):
            return f"expected {key!r} to be {describe(hint)}, but got {value!r}"
    return None


def variant_problem(variant: object) -> str | None:
    """Why a results.json variant cannot be read back, or None."""
    return entry_problem(variant, VariantEntry, missing_as_null=True)


def result_problem(record: object, whole: bool = True) -> str | None:
    """Why a results.json record cannot be read back, or None: what a baseline compares (its
    test, status, metric and, gated, a number as its value; ``whole=False``), then every key of
    ``ResultEntry`` (a gated record with its threshold and direction too)."""
    if not isinstance(record, dict):
        return f"expected an object, but got {type(record).__name__}"
    for key in (k for k in hints(ComparedEntry) if k in ComparedEntry.__required_keys__):
        if key not in record:
            return f"it has no {key!r}"
    if not isinstance(record["test"], str) or record["status"] not in STATUSES:
        return f"expected a test name and a status in {STATUSES}, but got {record['test']!r}, {record['status']!r}"
    if record["status"] in GATED and not conforms(record.get("value"), Number) and not valueless_failure(record):
        return f"expected a number as the value of a {record['status']}ed metric, but got {record.get('value')!r}"
    if not whole:
        return None
    problem = entry_problem(record, ResultEntry)
    if problem is None and record["status"] in GATED and not valueless_failure(record):
        for key in ("threshold", "higher_is_better"):
            if record.get(key) is None:
                return f"expected a {record['status']}ed record to have its {key!r}, but it has none"
    return problem


def valueless_failure(record: Mapping[str, Any]) -> bool:
    """Whether ``record`` failed without a value: its variant failed a check of its own (it
    quantized less than --qrel-min-coverage asks) on a metric that could not be checked, so
    the run wrote it as failed (its reason says both) with no value to compare or decide again."""
    return record["status"] == "fail" and record.get("value") is None and bool(record.get("reason"))


def of_type(value: object, kind: type, key: str) -> bool:
    """Whether ``value`` is what ``kind`` declares for ``key``."""
    return conforms(value, hints(kind)[key])
