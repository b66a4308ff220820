"""Typed parsers of option values: a value is a string (command line, ini file) or a TOML
value; anything malformed is a ``pytest.UsageError`` naming the option and what it expected."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Literal

import pytest

from .properties import Property
from .variants import Sparsity

# a tolerated regression against a baseline: relative (0.1 = 10%) or absolute
Tolerance = tuple[Literal["relative", "absolute"], float]
# what an option declares (options.Option.parse): its flag and value -> the typed value
Parser = Callable[[str, Any], Any]


def metric_map(flag: str, value: Any, valid: tuple[str, ...]) -> dict[str, float]:
    """metric:value pairs ("ece:0.05,ace:0.03", a TOML table, or a list of "m:v" strings)."""
    pairs = [(str(k), v) for k, v in value.items()] if isinstance(value, dict) else []
    if not isinstance(value, dict):
        for pair in strings(flag, value):
            m, sep, v = pair.partition(":")
            if not sep:
                raise pytest.UsageError(f"{flag}: expected metric:value pairs like {valid[0]}:0.05, but got {pair!r}")
            pairs.append((m.strip(), v))
    out = {}
    for m, v in pairs:
        if m not in valid:
            raise pytest.UsageError(f"{flag}: unknown metric {m!r}; expected some of: {', '.join(valid)}")
        try:
            out[m] = float(v) if not isinstance(v, bool) else math.nan
        except (TypeError, ValueError):
            out[m] = math.nan
        if not 0 <= out[m] < math.inf:
            raise pytest.UsageError(f"{flag}: expected a finite number >= 0 for {m}, but got {v!r}")
    return out


def strings(flag: str, value: Any) -> list[str]:
    """A comma-separated string, a TOML list of scalars, or one TOML number, as strings."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [str(value)]
    raise pytest.UsageError(f"{flag}: expected a comma-separated string or a list, but got {value!r}")


def ints(flag: str, value: Any) -> list[int]:
    if isinstance(value, float) or (isinstance(value, list) and any(isinstance(v, float) for v in value)):
        raise pytest.UsageError(f"{flag}: expected comma-separated integers, but got {value!r}")
    try:
        return [int(v) for v in strings(flag, value)]
    except ValueError:
        raise pytest.UsageError(f"{flag}: expected comma-separated integers, but got {value!r}") from None


def integer(flag: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    parsed = ints(flag, value)
    if len(parsed) != 1 or parsed[0] < minimum or (maximum is not None and parsed[0] > maximum):
        accepted = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise pytest.UsageError(f"{flag}: expected one integer {accepted}, but got {value!r}")
    return parsed[0]


def distinct(flag: str, values: list) -> list:
    """``values`` with no repeat: a repeated one is an error naming this option."""
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise pytest.UsageError(f"{flag}: {', '.join(repeated)} given more than once")
    return values


def floats(flag: str, value: Any) -> list[float]:
    try:
        return [float(v) for v in strings(flag, value)]
    except ValueError:
        raise pytest.UsageError(f"{flag}: expected comma-separated numbers, but got {value!r}") from None


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def boolean(flag: str, value: Any) -> bool:
    """A TOML bool, or a string spelling one; anything else is an error, never truthy."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise pytest.UsageError(f"{flag}: expected true or false, but got {value!r}")


def choice(flag: str, value: Any, valid: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.strip() not in valid:
        raise pytest.UsageError(f"{flag}: expected one of {', '.join(valid)}, but got {value!r}")
    return value.strip()


def path(flag: str, value: Any, invocation_dir: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise pytest.UsageError(f"{flag}: expected a path, but got {value!r}")
    path = Path(os.path.expanduser(value.strip()))
    return path if path.is_absolute() else invocation_dir / path


def group_size(flag: str, value: Any) -> int | None:
    # zero is an error like every other empty or zero value, never a default (ARCHITECTURE.md);
    # per-row is said in words, or as -1 (GPTQ's convention)
    expected = "expected a power of two >= 8 (or 'none' or -1 for per-row)"
    if isinstance(value, str) and value.strip().lower() in ("none", "-1"):
        return None
    parsed = ints(flag, value)
    if len(parsed) != 1:
        raise pytest.UsageError(f"{flag}: {expected}, but got {value!r}")
    group = parsed[0]
    if group == -1:
        return None
    if group < 8 or group & (group - 1):
        raise pytest.UsageError(f"{flag}: {expected}, but got {group}")
    return group


# -- parsers an option declares (options.Option.parse): each takes the flag and the value ------


def integer_in(minimum: int, maximum: int | None = None, all_is_none: bool = False) -> Parser:
    """One integer in [minimum, maximum]; with ``all_is_none``, ``all`` means no limit (None)."""
    def parse(flag: str, value: Any) -> int | None:
        if all_is_none and isinstance(value, str) and value.strip().lower() == "all":
            return None
        return integer(flag, value, minimum, maximum)
    return parse


def number_in(low: float, high: float, open_low: bool = False, open_high: bool = False) -> Parser:
    """One number in the interval, e.g. [0, 1] or (0, 1)."""
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"

    def parse(flag: str, value: Any) -> float:
        one = floats(flag, value)
        if len(one) != 1 or not ((low < one[0]) if open_low else (low <= one[0])) \
                or not ((one[0] < high) if open_high else (one[0] <= high)):  # NaN too
            raise pytest.UsageError(f"{flag}: expected one number in {interval}, but got {value!r}")
        return one[0]
    return parse


def choice_of(valid: tuple[str, ...]) -> Parser:
    return lambda flag, value: choice(flag, value, valid)


def distinct_ints(flag: str, value: Any) -> tuple[int, ...]:
    return tuple(distinct(flag, ints(flag, value)))


def distinct_strings(flag: str, value: Any) -> tuple[str, ...]:
    return tuple(distinct(flag, strings(flag, value)))


def sparsities(flag: str, value: Any) -> tuple[Sparsity, ...]:
    """Sparsities of the pruning methods: shares in (0, 1) or n:m patterns ("0.5,2:4")."""
    out = []
    for text in strings(flag, value):
        try:
            out.append(Sparsity.parse(text.strip()))
        except ValueError:
            raise pytest.UsageError(
                f"{flag}: expected sparsities in (0, 1) or n:m patterns with 0 < n < m (e.g. 0.5,2:4), but got {text!r}"
            ) from None
    if not out:  # as --qrel-bits: a pruning method named with no sparsity would test nothing
        raise pytest.UsageError(f"{flag}: expected at least one sparsity in (0, 1) or n:m pattern (e.g. 0.5,2:4)")
    return tuple(distinct(flag, out))


def bit_map(flag: str, value: Any) -> dict[int, float]:
    """bits:value pairs: "2:0.5,4:0.1", a TOML table {"2" = 0.5}, or a list of "b:v" strings."""
    if isinstance(value, dict):
        pairs = [(str(k), v) for k, v in value.items()]
    else:
        pairs = []
        for pair in strings(flag, value):
            b, sep, v = pair.partition(":")
            if not sep:
                raise pytest.UsageError(f"{flag}: expected bits:value pairs like 4:0.1, but got {pair!r}")
            pairs.append((b, v))
    out: dict[int, float] = {}
    for b, v in pairs:
        if isinstance(v, bool):
            raise pytest.UsageError(f"{flag}: expected bits:value pairs like 4:0.1, but got {b}:{v!r}")
        try:
            out[int(b)] = float(v)
        except (TypeError, ValueError):
            raise pytest.UsageError(f"{flag}: expected bits:value pairs like 4:0.1, but got '{b}:{v}'") from None
        if not 0 <= out[int(b)] < math.inf:
            raise pytest.UsageError(f"{flag}: expected a finite threshold >= 0, but got '{b}:{v}'")
    return out


def tolerances(flag: str, value: Any, valid: tuple[str, ...] | None = None) -> dict[str, Tolerance]:
    """metric:N% (relative) or metric:N (absolute) pairs; a metric may be a property name
    (kl) or a metric name (kl_to_base), ``*`` any other; a TOML table works too. A name not
    in ``valid`` is an error naming the close ones (a typo must not compare nothing)."""
    pairs = [(str(k), v) for k, v in value.items()] if isinstance(value, dict) else [
        (name, v) for name, _, v in (p.partition(":") for p in strings(flag, value))
    ]
    out: dict[str, Tolerance] = {}
    for name, v in pairs:
        text = str(v).strip()
        relative = text.endswith("%")
        try:
            number = float(text.removesuffix("%")) if not isinstance(v, bool) and text else float("nan")
        except ValueError:
            number = float("nan")
        if not name.strip() or not 0 <= number < math.inf:  # an infinite tolerance could never fail
            raise pytest.UsageError(f"{flag}: expected metric:N% or metric:N with a finite N >= 0, like kl:10%, "
                                    f"but got '{name}:{v}'")
        if valid is not None and name.strip() not in valid:
            import difflib

            close = difflib.get_close_matches(name.strip(), valid, n=3, cutoff=0.4)
            raise pytest.UsageError(f"{flag}: {name.strip()!r} names no metric or property of this run"
                                    + (f"; did you mean {', '.join(close)}?" if close else "")
                                    + f" (valid: {', '.join(valid)})")
        out[name.strip()] = ("relative", number / 100) if relative else ("absolute", number)
    return out


def ratios(flag: str, value: Any) -> tuple[float, ...]:
    """Distinct shares in (0, 1]: the mixed-precision quantization ratios."""
    parsed = tuple(distinct(flag, floats(flag, value)))
    if not parsed or any(not 0 < r <= 1 for r in parsed):
        raise pytest.UsageError(f"{flag}: expected ratios in (0, 1], but got {value!r}")
    return parsed


def agreement(flag: str, value: Any) -> float:
    """One share of agreement in (0, 1]: at 0 no variant could fail."""
    one = floats(flag, value)
    if len(one) != 1 or not 0 < one[0] <= 1:
        raise pytest.UsageError(f"{flag}: expected one agreement in (0, 1], but got {value!r}")
    return one[0]


def thresholds_of(prop: Property) -> Parser:
    """A property's thresholds by metric key: its catalog defaults and the metric:value pairs
    given (one number, for a property with one such metric); a key the catalog does not list,
    or a threshold no harm of its metric can reach (the gate could never fail), is an error."""
    keys = prop.option_keys

    def parse(flag: str, value: Any) -> dict[str, float]:
        if len(keys) == 1 and isinstance(value, (str, int, float)) and not isinstance(value, bool) \
                and ":" not in str(value):
            value = {keys[0]: value}
        given = metric_map(flag, value, keys)
        for key, v in given.items():
            upper = prop.metric(key).upper
            if upper is not None and v >= upper:
                raise pytest.UsageError(f"{flag}: expected {key} in [0, {upper:g}): no {prop.metric(key).name} can reach "
                                        f"{v:g}, so that gate could never fail, but got {key}:{v:g}")
        return {**prop.default_thresholds(), **given}
    return parse
