"""Every exception and warning of pytest-qrel, and how an error becomes a one-line reason (a leaf)."""

from __future__ import annotations


class VariantError(RuntimeError):
    """A variant cannot be measured: its base does not load, or it cannot be quantized.
    The message is one line, shown as the test's failure and the report's ERROR reason."""


class ModelLoadError(RuntimeError):
    """A model named in --qrel-models cannot be loaded (the message says why)."""


class QuantizationError(RuntimeError):
    """A backend could not produce the variant asked for (the message says why)."""


class QrelCacheWarning(UserWarning):
    """A cache entry could not be used and is being rebuilt."""


class UnusableEntry(OSError):
    """A file of an entry read after its check is gone or no longer its checksum's."""


class FitError(ValueError):
    """The data cannot determine the law: too few points, degenerate inputs, or no
    convergence. The caller reports such a law as not fitted."""


class InputsCollected(Exception):
    """Raised in a forward hook to stop a calibration pass once the layers it was run for have
    their inputs (quant/prune.py: what comes after them is not needed)."""


class ShrinkBudgetSpent(BaseException):
    """Ends hypothesis's shrinking of a fuzzing test (a BaseException: hypothesis lets it
    through, as it does KeyboardInterrupt); the smallest failing batch so far is the example."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def variant_failure(exc: Exception) -> str:
    """Why a variant could not be scored, in one line: a ``VariantError``'s own words, or
    any other exception (a backend bug) with its type; a family keeps it for that variant's
    tests and goes on with the others."""
    return str(exc) if isinstance(exc, VariantError) else f"{type(exc).__name__}: {one_line(exc)}"
