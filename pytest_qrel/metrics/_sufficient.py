"""Base for sufficient statistics that add across batches and xdist workers.

A metric is staged (validate → reduce a batch to sums → compute the number) so that
workers can send their sums through ``config.workeroutput`` as JSON and the
controller adds them; the number computed from the merged sums equals the one-shot
number. Subclasses are ``@dataclass(frozen=True, eq=False)`` classes whose fields are all
additive; ``eq=False`` keeps this mixin's array-aware ``__eq__``.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np

_S = TypeVar("_S", bound="SufficientStats")


class SufficientStats:
    """Mixin: field conversion, ``+``, equality and a JSON-able dict round trip."""

    # field name -> dtype; every field is additive, and the first one is the count
    _dtypes: ClassVar[dict[str, type]]

    def __post_init__(self) -> None:
        for name, dtype in self._dtypes.items():
            value: np.ndarray = np.array(getattr(self, name), dtype=dtype)  # copy: never alias the caller's array
            if value.ndim == 0:
                converted: Any = value.item()
            else:
                value.setflags(write=False)  # frozen means frozen, arrays included
                converted = value
            object.__setattr__(self, name, converted)
        shapes = {np.shape(getattr(self, name)) for name in self._dtypes}
        if len(shapes) != 1:
            cls_name = type(self).__name__
            raise ValueError(f"Expected all fields of {cls_name} to have one shape, but got {sorted(shapes)}")
        counts = np.asarray(getattr(self, next(iter(self._dtypes))))
        if np.any(counts < 0):
            raise ValueError(f"Expected counts of {type(self).__name__} to be >= 0, but got {counts.tolist()}")

    def __add__(self: _S, other: object) -> _S:
        if type(other) is not type(self):
            return NotImplemented
        shape_a = np.shape(getattr(self, next(iter(self._dtypes))))
        shape_b = np.shape(getattr(other, next(iter(self._dtypes))))
        if shape_a != shape_b:
            raise ValueError(
                f"Expected two {type(self).__name__} with the same number of bins, "
                f"but got {shape_a[0] if shape_a else 1} and {shape_b[0] if shape_b else 1}"
            )
        return type(self)(**{name: getattr(self, name) + getattr(other, name) for name in self._dtypes})

    def __radd__(self: _S, other: object) -> _S:
        # lets ``sum(per_batch_stats)`` start from the integer 0
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(np.array_equal(getattr(self, n), getattr(other, n)) for n in self._dtypes)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking arrays: not hashable

    def to_dict(self) -> dict[str, Any]:
        """Plain ints/floats/lists: safe for ``json.dumps`` and xdist ``workeroutput``."""
        return {name: np.asarray(getattr(self, name)).tolist() for name in self._dtypes}

    @classmethod
    def from_dict(cls: type[_S], data: dict[str, Any]) -> _S:
        """Inverse of :meth:`to_dict`."""
        if set(data) != set(cls._dtypes):
            raise ValueError(f"Expected keys {sorted(cls._dtypes)} for {cls.__name__}, but got {sorted(data)}")
        return cls(**data)

