"""The laws of papers 000, 002 and 004, each fitted by ``fit.py``'s least squares."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import FitError
from .fit import (
    AblationRow,
    Law,
    ScalingFit,
    check_finite,
    check_positive,
    fit_law,
    float_array,
    law_values,
    range_text,
)

# Paper 002 eq. 2: factor -> (exponent name, log-transformed?). The order is the
# paper's (N, C_b, G, b_eff); §3.3.2 takes logs of C_b and b_eff for their
# diminishing returns. (The symbols of eq. 2 are lost in papers/002's text; the form
# follows §3.3.1's factor list and §3.3.2.) A log's base changes only A, never an
# exponent, so the natural log loses nothing.
POWER_LAW_FACTORS: dict[str, tuple[str, bool]] = {
    "model_size": ("alpha", False),
    "calibration_size": ("beta", True),
    "group_size": ("gamma", False),
    "effective_bits": ("delta", True),
}
_FACTOR_SYMBOLS = {"model_size": "N", "calibration_size": "C_b", "group_size": "G", "effective_bits": "b_eff"}


def fit_log_quadratic(total_bits: ArrayLike, values: ArrayLike, *, name: str = "log_quadratic") -> ScalingFit:
    r"""Fit paper 000 eq. 6, a metric against total model bits B:

    .. math:: \mathcal{L}(B) = a\,(\ln B)^2 + b\,\ln B + c

    B in bits (parameters × bits per parameter), natural log (eq. 6 writes "log";
    another base rescales a and b). Linear in (a, b, c): the least-squares solution
    seeds curve_fit, which then confirms it. Adjusted R² uses p = 2 predictors.

    >>> B = np.array([1e6, 1e7, 1e8, 1e9, 1e10])
    >>> fit = fit_log_quadratic(B, 0.02 * np.log(B) ** 2 - 0.9 * np.log(B) + 11.0)
    >>> round(fit.a, 6), round(fit.b, 6), round(fit.c, 6), round(fit.r2, 9)
    (0.02, -0.9, 11.0, 1.0)
    >>> round(fit.predict(math.exp(20.0)), 9)
    1.0
    >>> fit_log_quadratic([1e6, 1e7, 1e8], [0.1, 0.2, 0.3])
    Traceback (most recent call last):
    ...
    pytest_qrel.errors.FitError: Expected at least 4 points to fit 3 coefficients, but got 3
    """
    u = _LOG_QUADRATIC.design(total_bits)
    y = law_values(values, u.shape[-1])
    X = np.column_stack([u**2, u, np.ones_like(u)])
    p0 = np.linalg.lstsq(X, y, rcond=None)[0]
    return fit_law(_LOG_QUADRATIC, u, y, p0, name)


def fit_power_law(
    factors: Mapping[str, ArrayLike], values: ArrayLike, *, name: str = "power_law"
) -> ScalingFit:
    r"""Fit paper 002 eq. 2 (§3.3), the multiplicative power law, on any subset of its factors:

    .. math:: P = A \cdot N^{\alpha} \cdot (\ln C_b)^{\beta} \cdot G^{\gamma} \cdot (\ln b_\mathrm{eff})^{\delta}

    ``factors`` maps names of :data:`POWER_LAW_FACTORS` (``model_size`` N,
    ``calibration_size`` C_b, ``group_size`` G, ``effective_bits`` b_eff) to arrays;
    a factor left out drops its term. As in §3.3.3 the law is fitted directly to the
    untransformed values by NLS (no log of the accuracies), seeded by least squares on
    the logs when every value is positive. Adjusted R² uses p = number of factors
    (Table 1 of paper 002). ln C_b and ln b_eff must be positive: C_b > 1, b_eff > 1.

    >>> N = np.array([1e8, 1e9, 1e10, 1e8, 1e9, 1e10])
    >>> b_eff = np.array([2.5, 2.5, 2.5, 4.25, 4.25, 4.25])
    >>> P = 0.1 * N ** 0.05 * np.log(b_eff) ** 0.4
    >>> fit = fit_power_law({"model_size": N, "effective_bits": b_eff}, P)
    >>> {k: round(v, 6) for k, v in fit.coefficients.items()}
    {'A': 0.1, 'alpha': 0.05, 'delta': 0.4}
    >>> fit.predictors, fit.dof
    (2, 3)
    """
    law = _power_law(factors.keys())
    X = law.design(factors)
    y = law_values(values, X.shape[-1])
    if np.all(y > 0):
        D = np.column_stack([np.ones(y.size), np.log(X).T])
        seed = np.linalg.lstsq(D, np.log(y), rcond=None)[0]
        with np.errstate(over="ignore"):
            p0 = np.concatenate([np.exp(seed[:1]), seed[1:]])
    else:
        p0 = np.concatenate([[float(np.mean(y)) or 1.0], np.zeros(X.shape[0])])
    return fit_law(law, X, y, p0, name)


def ablate_power_law(
    factors: Mapping[str, ArrayLike],
    values: ArrayLike,
    subsets: Iterable[Sequence[str]] | None = None,
) -> list[AblationRow]:
    """Fit :func:`fit_power_law` on factor subsets, as paper 002 Table 1 does (§4.2.1).

    ``subsets`` defaults to every non-empty subset of the given factors, smallest
    first, each in the paper's factor order. A subset the data cannot determine
    (:class:`FitError`) becomes a row with ``fit=None`` and the reason; bad input
    (NaN, unknown factor names, mismatched lengths) raises for the whole table.
    Compare rows by ``adj_r2``: each row's p is its own number of factors.
    """
    # Bad input fails the whole table, before any subset is tried.
    X = _power_law(factors.keys()).design(factors)
    law_values(values, X.shape[-1])
    names = [f for f in POWER_LAW_FACTORS if f in factors]
    if subsets is None:
        chosen = [c for r in range(1, len(names) + 1) for c in itertools.combinations(names, r)]
    else:
        chosen = []
        for subset in subsets:
            unknown = [f for f in subset if f not in factors]
            if not subset or unknown:
                raise ValueError(
                    f"Expected each subset to be a non-empty selection of {names}, but got {list(subset)!r}"
                )
            chosen.append(tuple(f for f in POWER_LAW_FACTORS if f in subset))
    rows = []
    for subset in chosen:
        try:
            fit = fit_power_law({f: factors[f] for f in subset}, values, name="power_law[" + ",".join(subset) + "]")
            rows.append(AblationRow(subset, fit, None))
        except FitError as exc:
            rows.append(AblationRow(subset, None, str(exc)))
    return rows


def fit_quantization_ratio_law(
    max_quantization_ratio: ArrayLike, model_size: ArrayLike, *, name: str = "quantization_ratio_exponential"
) -> ScalingFit:
    r"""Fit paper 004 §4.2 (Scaling Law 1, Fig. 6): model size against the largest
    mixed-quantization ratio Q_r it tolerates at a fixed loss budget,

    .. math:: N = e^{\,k\,(1 - Q_r) + c}

    with ``1 - Q_r`` the fraction of parameters kept in high precision (the paper's
    x axis; its fits at 5/10/20 % Δppl give k ≈ -12, so larger models need
    exponentially fewer high-precision components). ``model_size`` in any unit (the
    paper's c values imply billions of parameters). Fitted by NLS on N itself, seeded
    by least squares on ln N; p = 1.

    >>> q = np.array([0.5, 0.7, 0.8, 0.9, 0.95])
    >>> fit = fit_quantization_ratio_law(q, np.exp(-11.68 * (1 - q) + 4.83))
    >>> round(fit.k, 6), round(fit.c, 6)
    (-11.68, 4.83)
    """
    x = _QUANTIZATION_RATIO.design(max_quantization_ratio)
    y = law_values(model_size, x.shape[-1], "model_size")
    check_positive(y, "model_size")
    p0 = None
    if y.size > 2:
        slope, intercept = np.polyfit(1.0 - x, np.log(y), 1)
        p0 = np.array([slope, intercept])
    return fit_law(_QUANTIZATION_RATIO, x, y, p0, name)


def fit_block_size_law(block_size: ArrayLike, delta: ArrayLike, *, name: str = "block_size_power") -> ScalingFit:
    r"""Fit paper 004 §4.3 (Scaling Law 2, Fig. 8): the relative perplexity change
    Δppl = (ppl_q − ppl_ori) / ppl_ori against quantization block size s,

    .. math:: \Delta = A\, s^{k}

    (the paper reports k ≈ 0.3–0.6 and excludes ratios whose Δppl explodes). Fitted
    by NLS on Δ itself, seeded by least squares on the logs when every Δ > 0; p = 1.

    >>> s = np.array([16.0, 32.0, 64.0, 128.0, 256.0, 512.0])
    >>> fit = fit_block_size_law(s, 0.53 * s ** 0.32)
    >>> round(fit.A, 6), round(fit.k, 6)
    (0.53, 0.32)
    """
    x = _BLOCK_SIZE.design(block_size)
    y = law_values(delta, x.shape[-1], "delta")
    p0 = None
    if y.size > 2 and np.all(y > 0):
        k, log_a = np.polyfit(np.log(x), np.log(y), 1)
        p0 = np.array([math.exp(log_a), k])
    elif y.size > 2:
        p0 = np.array([float(np.mean(y)) or 1.0, 0.0])
    return fit_law(_BLOCK_SIZE, x, y, p0, name)


# ---------------------------------------------------------------- law definitions



def _log_quadratic_design(total_bits: Any) -> np.ndarray:
    B = float_array(total_bits, "total_bits", vector=True)
    check_finite(B, "total_bits")
    check_positive(B, "total_bits")
    return np.log(B)


_LOG_QUADRATIC = Law(
    name="log_quadratic",
    form="L(B) = a*ln(B)^2 + b*ln(B) + c",
    coefficient_names=("a", "b", "c"),
    design=_log_quadratic_design,
    model=lambda u, a, b, c: (a * u + b) * u + c,
    jacobian=lambda u, theta: np.column_stack([u**2, u, np.ones_like(u)]),
)


def _quantization_ratio_design(ratio: Any) -> np.ndarray:
    q = float_array(ratio, "max_quantization_ratio", vector=True)
    check_finite(q, "max_quantization_ratio")
    if np.any((q < 0) | (q > 1)):
        raise ValueError(
            f"Expected `max_quantization_ratio` to lie in [0, 1], but got values in {range_text(q)}"
        )
    return q


_QUANTIZATION_RATIO = Law(
    name="quantization_ratio_exponential",
    form="N = exp(k*(1 - Q_r) + c)",
    coefficient_names=("k", "c"),
    design=_quantization_ratio_design,
    model=lambda q, k, c: np.exp(k * (1.0 - q) + c),
    jacobian=lambda q, theta: np.exp(theta[0] * (1.0 - q) + theta[1])[:, None] * np.column_stack(
        [1.0 - q, np.ones_like(q)]
    ),
)


def _block_size_design(block_size: Any) -> np.ndarray:
    s = float_array(block_size, "block_size", vector=True)
    check_finite(s, "block_size")
    check_positive(s, "block_size")
    return s


_BLOCK_SIZE = Law(
    name="block_size_power",
    form="delta = A * s^k",
    coefficient_names=("A", "k"),
    design=_block_size_design,
    model=lambda s, A, k: A * s**k,
    jacobian=lambda s, theta: np.column_stack([s ** theta[1], theta[0] * s ** theta[1] * np.log(s)]),
)


def _power_law(names: Iterable[str]) -> Law:
    given = list(names)
    unknown = [f for f in given if f not in POWER_LAW_FACTORS]
    if not given or unknown:
        raise ValueError(
            f"Expected `factors` to name one or more of {list(POWER_LAW_FACTORS)}, but got {given!r}"
        )
    ordered = tuple(f for f in POWER_LAW_FACTORS if f in given)

    def design(factors: Any) -> np.ndarray:
        if not isinstance(factors, Mapping) or set(factors) != set(ordered):
            got = list(factors) if isinstance(factors, Mapping) else type(factors).__name__
            raise ValueError(f"Expected a mapping with exactly the factors {list(ordered)}, but got {got!r}")
        columns = []
        for f in ordered:
            column = float_array(factors[f], f, vector=True)
            check_finite(column, f)
            logged = POWER_LAW_FACTORS[f][1]
            if logged and np.any(column <= 1):
                raise ValueError(
                    f"Expected `{f}` to be greater than 1 (its log is raised to a power), "
                    f"but got values in {range_text(column)}"
                )
            check_positive(column, f)
            columns.append(np.log(column) if logged else column)
        lengths = {len(c) for c in columns}
        if len(lengths) > 1:
            raise ValueError(
                "Expected every factor to have the same length, but got "
                + ", ".join(f"{f}: {len(c)}" for f, c in zip(ordered, columns))
            )
        return np.vstack(columns)

    def model(X: np.ndarray, A: float, *exponents: float) -> np.ndarray:
        return A * np.exp(np.asarray(exponents) @ np.log(X))

    def jacobian(X: np.ndarray, theta: np.ndarray) -> np.ndarray:
        log_x = np.log(X)
        shape = np.exp(theta[1:] @ log_x)  # the product of the factor terms
        return np.column_stack([shape, (theta[0] * shape)[:, None] * log_x.T])

    terms = []
    for f in ordered:
        symbol = f"ln({_FACTOR_SYMBOLS[f]})" if POWER_LAW_FACTORS[f][1] else _FACTOR_SYMBOLS[f]
        terms.append(f"{symbol}^{POWER_LAW_FACTORS[f][0]}")
    return Law(
        name="power_law",
        form="P = A * " + " * ".join(terms),
        coefficient_names=("A",) + tuple(POWER_LAW_FACTORS[f][0] for f in ordered),
        design=design,
        model=model,
        jacobian=jacobian,
    )


# ------------------------------------------------------------------------ fitting


