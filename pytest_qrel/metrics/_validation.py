"""Argument validation shared by every metric (one place, so messages stay uniform).

Every check raises ``ValueError`` with a message of the form
``Expected `<name>` to <what was expected>, but got <what came>``.
Inputs may be numpy arrays, sequences or torch tensors; torch is never imported
here — a tensor is recognised by its ``detach``/``cpu`` methods.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

# Tolerance for "sums to 1": float32 softmax over a 32k+ vocabulary drifts by ~1e-6,
# so 1e-4 accepts every honest distribution and still catches unnormalised scores.
PROB_SUM_ATOL = 1e-4


def to_numpy(x: ArrayLike) -> np.ndarray:
    """Convert numpy input, sequences or a torch tensor (any device) to numpy."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        tensor: Any = x.detach().cpu()
        # bfloat16/float16 have no (exact) numpy twin; float64 keeps every value.
        if tensor.is_floating_point():
            tensor = tensor.double()
        return np.asarray(tensor.numpy())
    return np.asarray(x)


def _axis_text(axis: int, ndim: int) -> str:
    return "the last axis" if axis in (-1, ndim - 1) else f"axis {axis}"


def _range_text(values: np.ndarray) -> str:
    return f"[{float(np.min(values)):.6g}, {float(np.max(values)):.6g}]"


def as_float_array(
    x: ArrayLike,
    name: str,
    *,
    ndim: int | None = None,
    shape_text: str | None = None,
    finite: bool = False,
    check_nan: bool = True,
) -> np.ndarray:
    """Non-empty float64 array, optionally of a fixed rank, without NaN (or non-finite)."""
    try:
        arr = np.asarray(to_numpy(x), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Expected `{name}` to be a numeric array, but got {type(x).__name__}") from exc
    check_shape(arr, name, ndim=ndim, shape_text=shape_text)
    if check_nan:
        check_no_nan(arr, name)
    if finite:
        n_inf = int(np.isinf(arr).sum())
        if n_inf:
            raise ValueError(f"Expected `{name}` to be finite, but got {n_inf} infinite values")
    return arr


def check_shape(arr: np.ndarray, name: str, *, ndim: int | None = None, shape_text: str | None = None) -> None:
    if ndim is not None and arr.ndim != ndim:
        what = f"a {ndim}-D array" + (f" of shape {shape_text}" if shape_text else "")
        raise ValueError(f"Expected `{name}` to be {what}, but got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"Expected `{name}` to be non-empty, but got shape {arr.shape}")


def check_no_nan(arr: np.ndarray, name: str) -> None:
    n_nan = int(np.isnan(arr).sum())
    if n_nan:
        raise ValueError(f"Expected `{name}` to contain no NaN, but got {n_nan} NaN values")


def check_unit_interval(arr: np.ndarray, name: str) -> None:
    if np.any(arr < 0.0) or np.any(arr > 1.0):
        raise ValueError(f"Expected `{name}` to lie in [0, 1], but got values in {_range_text(arr)}")


def as_probabilities(x: ArrayLike, name: str, *, ndim: int, shape_text: str | None = None) -> np.ndarray:
    """Probabilities in [0, 1] (each entry; normalisation is checked separately)."""
    arr = as_float_array(x, name, ndim=ndim, shape_text=shape_text)
    check_unit_interval(arr, name)
    return arr


def check_sums_to_one(probs: np.ndarray, name: str, axis: int = -1) -> None:
    sums = probs.sum(axis=axis)
    if np.any(np.abs(sums - 1.0) > PROB_SUM_ATOL):
        raise ValueError(
            f"Expected `{name}` to sum to 1 along {_axis_text(axis, probs.ndim)} "
            f"(within {np.format_float_scientific(PROB_SUM_ATOL, trim='-', exp_digits=1)}), "
            f"but got sums in {_range_text(sums)}"
        )


def as_log_probabilities(x: ArrayLike, name: str, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Normalised log-probabilities (``-inf`` allowed for p = 0); returns ``(logp, p)``.

    The probabilities are returned so callers do not exponentiate twice.
    """
    logp = as_float_array(x, name)
    if not -logp.ndim <= axis < logp.ndim:
        raise ValueError(f"Expected `axis` to be in [{-logp.ndim}, {logp.ndim - 1}], but got {axis}")
    with np.errstate(over="ignore"):
        probs = np.exp(logp)
    if np.any(logp > 0.0):
        raise ValueError(
            f"Expected `{name}` to be log-probabilities (<= 0), but got values in {_range_text(logp)}"
        )
    check_sums_to_one(probs, name, axis)
    return logp, probs


def as_labels(x: ArrayLike, name: str, *, n_classes: int) -> np.ndarray:
    """1-D integer class indices in ``[0, n_classes)``."""
    raw = as_float_array(x, name, ndim=1, finite=True)
    if np.any(raw != np.round(raw)):
        raise ValueError(f"Expected `{name}` to hold integer class indices, but got non-integer values")
    if np.any(raw < 0) or np.any(raw >= n_classes):
        raise ValueError(
            f"Expected `{name}` to lie in [0, {n_classes - 1}] (one of {n_classes} classes), "
            f"but got values in {_range_text(raw)}"
        )
    return raw.astype(np.int64)


def as_binary(x: ArrayLike, name: str, *, ndim: int | None = 1) -> np.ndarray:
    """Booleans given as bool or 0/1 numbers."""
    raw = as_float_array(x, name, ndim=ndim)
    if np.any((raw != 0.0) & (raw != 1.0)):
        raise ValueError(f"Expected `{name}` to hold only 0/1 (or bool) values, but got values in {_range_text(raw)}")
    return raw.astype(bool)


def as_mask(mask: ArrayLike, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Boolean mask of exactly ``shape``; True marks positions that count."""
    out = as_binary(mask, name, ndim=None)
    if out.shape != shape:
        raise ValueError(f"Expected `{name}` to have shape {shape}, but got shape {out.shape}")
    return out


def check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"Expected `{name_a}` and `{name_b}` to have the same length, but got {len(a)} and {len(b)}")


def check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"Expected `{name_a}` and `{name_b}` to have the same shape, but got {a.shape} and {b.shape}")


def check_n_bins(n_bins: object) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"Expected `n_bins` to be a positive integer, but got {n_bins!r}")
    return int(n_bins)


def check_both_classes(labels: np.ndarray, name: str) -> None:
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        only = "positive" if n_pos else "negative"
        raise ValueError(f"Expected `{name}` to contain both classes (0 and 1), but got only {only} labels")
