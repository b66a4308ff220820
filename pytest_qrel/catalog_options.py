"""The options a run's catalog adds to the declared ones: the threshold option a property
(a plugin's) names in its catalog entry, generated as a declared option would be."""

from __future__ import annotations

from typing import Iterable

import pytest

from . import options, parsing
from .options import metric_defaults
from .properties import Catalog, Property


def threshold_option(prop: Property) -> options.Option:
    """The option a property's ``threshold_option`` names where no declaration holds it (a plugin's)."""
    keys = ", ".join(prop.option_keys)
    return options.Option(prop.threshold_option or "", f"thresholds of {prop.title}: "
                  + ("one number, or " if len(prop.option_keys) == 1 else "")
                  + f"metric:value pairs of {keys} (default: {metric_defaults(prop)})", metric_defaults(prop),
                  parse=parsing.thresholds_of(prop), prop=prop.key, field="threshold")


def for_catalog(catalog: Catalog | Iterable[Property] | None) -> tuple[options.Option, ...]:
    """Every option of a run with ``catalog``'s properties: the declared ones, and the threshold
    option of each property that names one no declaration holds."""
    declared = {opt.flag: opt for opt in options.OPTIONS}
    generated: dict[str, str] = {}
    for p in catalog or ():
        flag = p.threshold_option
        if not flag:
            continue
        owner = declared[flag].prop if flag in declared else generated.get(flag)
        if (flag in declared or flag in generated) and owner != p.key:
            # the flag would set another property's (or the run's) setting, and this one's none
            whose = f"property {owner!r}'s" if owner else "the run's own"
            raise pytest.UsageError(f"property {p.key!r}: its threshold_option {flag} is already {whose} option; "
                                    "name one of its own")
        if flag not in declared:
            generated[flag] = p.key
    return options.OPTIONS + tuple(threshold_option(p) for p in catalog or () if p.threshold_option in generated)
