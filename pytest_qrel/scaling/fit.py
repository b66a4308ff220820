"""The shared machinery of every scaling-law fit: non-linear least squares, its
statistics (standard errors, R², adjusted R², prediction bands) and input checks."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, stats

from ..errors import FitError

Side = Literal["both", "below", "above"]

# Above this condition number of the column-scaled Jacobian the data do not pin down
# every coefficient (e.g. one group size for all points, or a single total_bits).
_MAX_CONDITION = 1e10


@dataclass(frozen=True)
class Law:
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
    _law: Law = field(repr=False, compare=False)

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
        observed = float_array(values, "values")
        if np.shape(observed) != np.shape(lower):
            raise ValueError(
                f"Expected `values` to have the shape of the points, {np.shape(lower)}, but got {np.shape(observed)}"
            )
        check_finite(observed, "values")
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



def fit_law(law: Law, X: np.ndarray, y: np.ndarray, p0: np.ndarray | None, name: str) -> ScalingFit:
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



def float_array(x: Any, name: str, *, vector: bool = False) -> np.ndarray:
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


def check_finite(arr: np.ndarray, name: str) -> None:
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"Expected `{name}` to be finite, but got {bad} NaN or infinite values")


def check_positive(arr: np.ndarray, name: str) -> None:
    if np.any(arr <= 0):
        raise ValueError(f"Expected `{name}` to be positive, but got values in {range_text(arr)}")


def law_values(values: ArrayLike, n: int, name: str = "values") -> np.ndarray:
    y = float_array(values, name, vector=True)
    if y.size != n:
        raise ValueError(f"Expected `{name}` to have one value per point ({n}), but got {y.size}")
    check_finite(y, name)
    return y


def range_text(arr: np.ndarray) -> str:
    return f"[{float(np.min(arr)):.6g}, {float(np.max(arr)):.6g}]"


def _is_scalar_input(x: Any) -> bool:
    if isinstance(x, Mapping):
        return all(np.ndim(v) == 0 for v in x.values())
    return np.ndim(x) == 0


def _shaped(arr: np.ndarray, scalar: bool) -> Any:
    return float(arr[0]) if scalar else arr


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
