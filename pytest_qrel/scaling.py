r"""Scaling-law fits with standard errors, R², adjusted R² and prediction bands.

Every law is fitted by non-linear least squares (``scipy.optimize.curve_fit``, the
procedure of paper 002 §3.3.3) on the metric's own scale, with additive noise of
constant variance as the error model, and returns a :class:`ScalingFit`; so all fits
look alike in ``results.json`` and in the gate:

* :func:`fit_log_quadratic` — paper 000 eq. 6, a metric against total model bits;
* :func:`fit_power_law` / :func:`ablate_power_law` — paper 002 eq. 2 and Table 1,
  accuracy against model size, calibration-set size, group size and effective bits;
* :func:`fit_quantization_ratio_law` — paper 004 §4.2 (Scaling Law 1), model size
  against the largest tolerable mixed-quantization ratio at a loss budget;
* :func:`fit_block_size_law` — paper 004 §4.3 (Scaling Law 2), Δppl against block size.

Statistics, for ``n`` points and a law with ``k`` coefficients:

.. math::
    \mathrm{dof} = n - k, \qquad s^2 = \frac{SS_\mathrm{res}}{\mathrm{dof}}, \qquad
    R^2 = 1 - \frac{SS_\mathrm{res}}{SS_\mathrm{tot}}, \qquad
    R^2_\mathrm{adj} = 1 - (1 - R^2)\,\frac{n - 1}{n - p - 1}

with ``p = k - 1`` predictors: every law here has exactly one coefficient that plays
the part of the intercept (``c`` of eq. 6, the scale ``A`` of a power law, ``c`` of
the exponential), so ``p`` counts the others — 2 for the log-quadratic law (ln B and
(ln B)², as in a linear regression on those two columns), the number of factors for
the paper-002 power law (as in its Table 1), 1 for each paper-004 law. Then
``n - p - 1 = dof``, and ``n > k`` points are needed.

The parameter covariance is curve_fit's ``pcov`` with ``absolute_sigma=False``:
``(JᵀJ)⁻¹ s²``, J the Jacobian at the optimum. A prediction band for a new
observation at x is

.. math:: \hat y(x) \pm t_{(1+q)/2,\ \mathrm{dof}}\ \sqrt{s^2 + g(x)^\top \Sigma\, g(x)},
          \qquad g(x) = \partial \hat y(x) / \partial \theta,

exact for the log-quadratic law (linear in its coefficients, Gaussian noise) and the
usual delta-method approximation for the others. A point used in the fit pulls the
fit towards itself, so judging a variant against a band fitted without it is stricter.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, stats

__all__ = [
    "POWER_LAW_FACTORS",
    "AblationRow",
    "FitError",
    "ScalingFit",
    "ablate_power_law",
    "fit_block_size_law",
    "fit_log_quadratic",
    "fit_power_law",
    "fit_quantization_ratio_law",
]

PowerLawFactor = Literal["model_size", "calibration_size", "group_size", "effective_bits"]
Side = Literal["both", "below", "above"]

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

# Above this condition number of the column-scaled Jacobian the data do not pin down
# every coefficient (e.g. one group size for all points, or a single total_bits).
_MAX_CONDITION = 1e10


class FitError(ValueError):
    """The data cannot determine the law: too few points, degenerate inputs, or no
    convergence. The caller reports such a law as not fitted."""


@dataclass(frozen=True)
class _Law:
    name: str
    form: str
    coefficient_names: tuple[str, ...]
    # Validated user input -> regressors X, shape (n,) or (factors, n).
    design: Callable[[Any], np.ndarray]
    model: Callable[..., np.ndarray]  # model(X, *theta) -> y, shape (n,)
    jacobian: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (X, theta) -> (n, k)


@dataclass(frozen=True)
class ScalingFit:
    """One fitted law. Coefficients are also attributes: ``fit.a``, ``fit.alpha``.

    ``predictors`` is the ``p`` of adjusted R² (coefficients − 1, see the module
    docstring); ``residual_std`` is ``s = sqrt(SS_res / dof)``; ``covariance`` is the
    parameter covariance in the order of ``coefficients``. ``r2`` and ``adj_r2`` are
    NaN when every value is equal (R² is undefined without variance). The result keeps
    the law's functions and does not pickle: send :meth:`as_dict` across processes.
    """

    name: str
    form: str
    coefficients: dict[str, float]
    stderr: dict[str, float]
    covariance: np.ndarray = field(repr=False, compare=False)
    r2: float
    adj_r2: float
    n: int
    dof: int
    predictors: int
    residual_std: float
    _law: _Law = field(repr=False, compare=False)

    def __getattr__(self, name: str) -> float:
        # Only reached when normal lookup fails; .get keeps copy/pickle from recursing.
        coefficients = self.__dict__.get("coefficients")
        if coefficients is not None and name in coefficients:
            return coefficients[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def _theta(self) -> np.ndarray:
        return np.array(list(self.coefficients.values()), dtype=np.float64)

    def predict(self, x: Any) -> Any:
        """The law's value at x (the same kind of input the fit took), float or array."""
        X, scalar = self._design(x)
        return _shaped(self._law.model(X, *self._theta), scalar)

    def prediction_interval(self, x: Any, confidence: float = 0.95) -> tuple[Any, Any]:
        """``(lower, upper)`` of the two-sided band that holds a new observation at x
        with probability ``confidence`` (t distribution with ``dof`` degrees of freedom)."""
        if not (isinstance(confidence, (int, float, np.floating)) and 0.0 < confidence < 1.0):
            raise ValueError(f"Expected `confidence` to lie strictly between 0 and 1, but got {confidence!r}")
        X, scalar = self._design(x)
        theta = self._theta
        y_hat = self._law.model(X, *theta)
        g = self._law.jacobian(X, theta)
        variance = self.residual_std**2 + np.einsum("ij,jk,ik->i", g, self.covariance, g)
        half = stats.t.ppf(0.5 + confidence / 2.0, self.dof) * np.sqrt(np.maximum(variance, 0.0))
        return _shaped(y_hat - half, scalar), _shaped(y_hat + half, scalar)

    def outside_band(self, x: Any, values: ArrayLike, confidence: float = 0.95, side: Side = "both") -> Any:
        """Whether observed ``values`` at x fall outside the prediction band.

        ``side="below"`` flags only values under the band (a higher-is-better metric
        that regressed), ``"above"`` only values over it (lower-is-better, e.g. KL);
        the band itself is the two-sided one at ``confidence`` either way.
        """
        if side not in ("both", "below", "above"):
            raise ValueError(f"Expected `side` to be one of 'both', 'below', 'above', but got {side!r}")
        lower, upper = self.prediction_interval(x, confidence)
        observed = _float_array(values, "values")
        if np.shape(observed) != np.shape(lower):
            raise ValueError(
                f"Expected `values` to have the shape of the points, {np.shape(lower)}, but got {np.shape(observed)}"
            )
        _check_finite(observed, "values")
        below = observed < lower
        above = observed > upper
        flagged = below if side == "below" else above if side == "above" else below | above
        return bool(flagged) if np.ndim(flagged) == 0 else flagged

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary for the ``fits`` list of results.json (non-finite -> None)."""
        return {
            "name": self.name,
            "form": self.form,
            "coefficients": {k: _json_float(v) for k, v in self.coefficients.items()},
            "stderr": {k: _json_float(v) for k, v in self.stderr.items()},
            "r2": _json_float(self.r2),
            "adj_r2": _json_float(self.adj_r2),
            "n": self.n,
            "dof": self.dof,
            "residual_std": _json_float(self.residual_std),
        }

    def _design(self, x: Any) -> tuple[np.ndarray, bool]:
        X = self._law.design(x)
        scalar = _is_scalar_input(x)
        return X, scalar


@dataclass(frozen=True)
class AblationRow:
    """One factor subset of :func:`ablate_power_law`: its fit, or why it has none."""

    factors: tuple[str, ...]
    fit: ScalingFit | None
    error: str | None

    @property
    def adj_r2(self) -> float:
        return self.fit.adj_r2 if self.fit is not None else math.nan


# --------------------------------------------------------------------------- laws


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
    pytest_qrel.scaling.FitError: Expected at least 4 points to fit 3 coefficients, but got 3
    """
    u = _LOG_QUADRATIC.design(total_bits)
    y = _values(values, u.shape[-1])
    X = np.column_stack([u**2, u, np.ones_like(u)])
    p0 = np.linalg.lstsq(X, y, rcond=None)[0]
    return _fit(_LOG_QUADRATIC, u, y, p0, name)


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
    y = _values(values, X.shape[-1])
    if np.all(y > 0):
        D = np.column_stack([np.ones(y.size), np.log(X).T])
        seed = np.linalg.lstsq(D, np.log(y), rcond=None)[0]
        with np.errstate(over="ignore"):
            p0 = np.concatenate([np.exp(seed[:1]), seed[1:]])
    else:
        p0 = np.concatenate([[float(np.mean(y)) or 1.0], np.zeros(X.shape[0])])
    return _fit(law, X, y, p0, name)


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
    _values(values, X.shape[-1])
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
    y = _values(model_size, x.shape[-1], "model_size")
    _check_positive(y, "model_size")
    p0 = None
    if y.size > 2:
        slope, intercept = np.polyfit(1.0 - x, np.log(y), 1)
        p0 = np.array([slope, intercept])
    return _fit(_QUANTIZATION_RATIO, x, y, p0, name)


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
    y = _values(delta, x.shape[-1], "delta")
    p0 = None
    if y.size > 2 and np.all(y > 0):
        k, log_a = np.polyfit(np.log(x), np.log(y), 1)
        p0 = np.array([math.exp(log_a), k])
    elif y.size > 2:
        p0 = np.array([float(np.mean(y)) or 1.0, 0.0])
    return _fit(_BLOCK_SIZE, x, y, p0, name)


# ---------------------------------------------------------------- law definitions


def _log_quadratic_design(total_bits: Any) -> np.ndarray:
    B = _float_array(total_bits, "total_bits", vector=True)
    _check_finite(B, "total_bits")
    _check_positive(B, "total_bits")
    return np.log(B)


_LOG_QUADRATIC = _Law(
    name="log_quadratic",
    form="L(B) = a*ln(B)^2 + b*ln(B) + c",
    coefficient_names=("a", "b", "c"),
    design=_log_quadratic_design,
    model=lambda u, a, b, c: (a * u + b) * u + c,
    jacobian=lambda u, theta: np.column_stack([u**2, u, np.ones_like(u)]),
)


def _quantization_ratio_design(ratio: Any) -> np.ndarray:
    q = _float_array(ratio, "max_quantization_ratio", vector=True)
    _check_finite(q, "max_quantization_ratio")
    if np.any((q < 0) | (q > 1)):
        raise ValueError(
            f"Expected `max_quantization_ratio` to lie in [0, 1], but got values in {_range_text(q)}"
        )
    return q


_QUANTIZATION_RATIO = _Law(
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
    s = _float_array(block_size, "block_size", vector=True)
    _check_finite(s, "block_size")
    _check_positive(s, "block_size")
    return s


_BLOCK_SIZE = _Law(
    name="block_size_power",
    form="delta = A * s^k",
    coefficient_names=("A", "k"),
    design=_block_size_design,
    model=lambda s, A, k: A * s**k,
    jacobian=lambda s, theta: np.column_stack([s ** theta[1], theta[0] * s ** theta[1] * np.log(s)]),
)


def _power_law(names: Iterable[str]) -> _Law:
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
            column = _float_array(factors[f], f, vector=True)
            _check_finite(column, f)
            logged = POWER_LAW_FACTORS[f][1]
            if logged and np.any(column <= 1):
                raise ValueError(
                    f"Expected `{f}` to be greater than 1 (its log is raised to a power), "
                    f"but got values in {_range_text(column)}"
                )
            _check_positive(column, f)
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
    return _Law(
        name="power_law",
        form="P = A * " + " * ".join(terms),
        coefficient_names=("A",) + tuple(POWER_LAW_FACTORS[f][0] for f in ordered),
        design=design,
        model=model,
        jacobian=jacobian,
    )


# ------------------------------------------------------------------------ fitting


def _fit(law: _Law, X: np.ndarray, y: np.ndarray, p0: np.ndarray | None, name: str) -> ScalingFit:
    n = y.size
    k = len(law.coefficient_names)
    if n <= k:
        raise FitError(f"Expected at least {k + 1} points to fit {k} coefficients, but got {n}")
    if p0 is None or not np.all(np.isfinite(p0)):
        p0 = np.ones(k)

    def jac(x: np.ndarray, *theta: float) -> np.ndarray:
        return law.jacobian(x, np.asarray(theta))

    with warnings.catch_warnings():
        # Non-finite covariance is detected below and reported as a FitError.
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            theta, covariance = optimize.curve_fit(
                law.model, X, y, p0=p0, jac=jac, absolute_sigma=False, method="lm", maxfev=2000
            )
        except RuntimeError as exc:  # maxfev reached or no progress
            raise FitError(f"Expected the {law.name} fit to converge, but curve_fit stopped: {exc}") from exc
    J = law.jacobian(X, theta)
    norms = np.linalg.norm(J, axis=0)
    if not np.all(np.isfinite(J)) or np.any(norms == 0) or np.linalg.cond(J / norms) > _MAX_CONDITION:
        raise FitError(
            f"Expected the data to determine all {k} coefficients of {law.form}, but they do not "
            "(too few distinct inputs, or one factor constant across all points)"
        )
    if not np.all(np.isfinite(covariance)) or not np.all(np.isfinite(theta)):
        raise FitError(f"Expected a finite covariance for {law.form}, but curve_fit could not estimate it")

    residuals = y - law.model(X, *theta)
    dof = n - k
    ss_res = float(residuals @ residuals)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
    predictors = k - 1
    adj_r2 = 1.0 - (1.0 - r2) * (n - 1) / (n - predictors - 1) if ss_tot > 0 else math.nan
    stderr = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    names = law.coefficient_names
    return ScalingFit(
        name=name,
        form=law.form,
        coefficients={c: float(v) for c, v in zip(names, theta)},
        stderr={c: float(v) for c, v in zip(names, stderr)},
        covariance=np.asarray(covariance, dtype=np.float64),
        r2=r2,
        adj_r2=adj_r2,
        n=n,
        dof=dof,
        predictors=predictors,
        residual_std=math.sqrt(ss_res / dof),
        _law=law,
    )


# --------------------------------------------------------------------- validation


def _float_array(x: Any, name: str, *, vector: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Expected `{name}` to be numeric, but got {type(x).__name__}") from exc
    if vector:
        if arr.ndim > 1:
            raise ValueError(f"Expected `{name}` to be a scalar or a 1-D array, but got shape {arr.shape}")
        arr = np.atleast_1d(arr)
        if arr.size == 0:
            raise ValueError(f"Expected `{name}` to hold at least one value, but got none")
    return arr


def _check_finite(arr: np.ndarray, name: str) -> None:
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"Expected `{name}` to be finite, but got {bad} NaN or infinite values")


def _check_positive(arr: np.ndarray, name: str) -> None:
    if np.any(arr <= 0):
        raise ValueError(f"Expected `{name}` to be positive, but got values in {_range_text(arr)}")


def _values(values: ArrayLike, n: int, name: str = "values") -> np.ndarray:
    y = _float_array(values, name, vector=True)
    if y.size != n:
        raise ValueError(f"Expected `{name}` to have one value per point ({n}), but got {y.size}")
    _check_finite(y, name)
    return y


def _range_text(arr: np.ndarray) -> str:
    return f"[{float(np.min(arr)):.6g}, {float(np.max(arr)):.6g}]"


def _is_scalar_input(x: Any) -> bool:
    if isinstance(x, Mapping):
        return all(np.ndim(v) == 0 for v in x.values())
    return np.ndim(x) == 0


def _shaped(arr: np.ndarray, scalar: bool) -> Any:
    return float(arr[0]) if scalar else arr


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
