"""pytest_qrel.scaling: each law recovers known coefficients, its standard errors and
prediction bands match the spread of repeated noisy fits, R² / adjusted R² match a hand
computation (and numpy.polyfit / sklearn for the log-quadratic law), and bad input
raises ValueError with a message that says what was expected.

Every synthetic data set is generated here from the law's formula, written out again
independently of the module, with a seeded generator.
"""

from __future__ import annotations

import copy
import doctest
import inspect
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import scipy.stats

import pytest_qrel.scaling as scaling
from pytest_qrel import effective_bits
from pytest_qrel.scaling import (
    FitError,
    ScalingFit,
    ablate_power_law,
    fit_block_size_law,
    fit_log_quadratic,
    fit_power_law,
    fit_quantization_ratio_law,
)

# ----------------------------------------------------------------- synthetic laws

TOTAL_BITS = np.geomspace(3e6, 3e10, 12)  # tiny-zoo to 2B-parameter budgets, in bits


def log_quadratic(B: Any, a: float = 0.015, b: float = -0.7, c: float = 9.0) -> np.ndarray:
    u = np.log(np.asarray(B, dtype=float))
    return a * u * u + b * u + c


def paper_002_grid() -> dict[str, np.ndarray]:
    """The 384 configurations of paper 002 App. A: 6 OPT sizes x 4 bits x 4 calibration
    sizes x 4 group sizes, with b_eff of an asymmetric scheme (App. D)."""
    sizes = [125e6, 350e6, 1.3e9, 2.7e9, 6.7e9, 13e9]
    grid = list(itertools.product(sizes, [2, 3, 4, 8], [8, 128, 1024, 4096], [32, 64, 128, 1024]))
    return {
        "model_size": np.array([g[0] for g in grid]),
        "calibration_size": np.array([g[2] for g in grid], dtype=float),
        "group_size": np.array([g[3] for g in grid], dtype=float),
        "effective_bits": np.array([effective_bits(g[1], g[3]) for g in grid]),
    }


POWER_TRUTH = {"A": 0.05, "alpha": 0.06, "beta": 0.1, "gamma": -0.01, "delta": 0.5}


def power_law(f: dict[str, Any], t: dict[str, float] = POWER_TRUTH) -> np.ndarray:
    """P = A N^alpha (ln C_b)^beta G^gamma (ln b_eff)^delta, terms absent from f dropped."""
    out = t["A"] * np.ones(np.shape(next(iter(f.values()))))
    exps = {"model_size": "alpha", "calibration_size": "beta", "group_size": "gamma", "effective_bits": "delta"}
    for name, x in f.items():
        x = np.asarray(x, dtype=float)
        base = np.log(x) if name in ("calibration_size", "effective_bits") else x
        out = out * base ** t[exps[name]]
    return out


def ratio_law(q: Any, k: float = -11.68, c: float = 4.83) -> np.ndarray:  # paper 004 §4.2, 5 % budget
    return np.exp(k * (1.0 - np.asarray(q, dtype=float)) + c)


def block_law(s: Any, A: float = 1.65, k: float = 0.62) -> np.ndarray:  # paper 004 §4.3, 7B, q = 0.9
    return A * np.asarray(s, dtype=float) ** k


@dataclass(frozen=True)
class Case:
    id: str
    fit: Callable[[Any, np.ndarray], ScalingFit]
    x: Any
    law: Callable[[Any], np.ndarray]
    truth: dict[str, float]
    noise: float  # standard deviation of the additive noise in the noisy tests
    x_new: Any  # one point inside the data's range, for coverage of new observations
    predictors: int  # the p of adjusted R² this law must use


CASES = [
    Case(
        "log_quadratic",
        fit_log_quadratic,
        TOTAL_BITS,
        log_quadratic,
        {"a": 0.015, "b": -0.7, "c": 9.0},
        0.05,
        2e8,
        2,  # ln B and (ln B)^2
    ),
    Case(
        "power_law",
        fit_power_law,
        paper_002_grid(),
        power_law,
        POWER_TRUTH,
        0.01,
        {"model_size": 2e9, "calibration_size": 256.0, "group_size": 64.0, "effective_bits": 3.3},
        4,  # one per factor
    ),
    Case(
        "quantization_ratio",
        fit_quantization_ratio_law,
        np.array([0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97]),  # N from 2 to 88
        ratio_law,
        {"k": -11.68, "c": 4.83},
        0.3,
        0.82,
        1,
    ),
    Case(
        "block_size",
        fit_block_size_law,
        np.array([16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0]),
        block_law,
        {"A": 1.65, "k": 0.62},
        0.5,
        300.0,
        1,
    ),
]
CASE_IDS = [c.id for c in CASES]


def n_points(case: Case) -> int:
    return len(case.law(case.x))


# ------------------------------------------------------------- recovery of truth


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_noise_free_data_recover_the_coefficients(case: Case) -> None:
    fit = case.fit(case.x, case.law(case.x))
    assert set(fit.coefficients) == set(case.truth)
    for name, true in case.truth.items():
        assert fit.coefficients[name] == pytest.approx(true, rel=1e-6), name
        assert getattr(fit, name) == fit.coefficients[name]
    assert fit.r2 == pytest.approx(1.0, abs=1e-9)
    assert fit.residual_std == pytest.approx(0.0, abs=1e-6 * float(np.std(case.law(case.x))))
    assert fit.n == n_points(case)
    assert fit.dof == fit.n - len(case.truth)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_noisy_fit_lands_within_a_few_standard_errors(case: Case) -> None:
    rng = np.random.default_rng(20240610)
    y = case.law(case.x) + rng.normal(0.0, case.noise, n_points(case))
    fit = case.fit(case.x, y)
    for name, true in case.truth.items():
        assert fit.stderr[name] > 0
        assert abs(fit.coefficients[name] - true) < 4 * fit.stderr[name], name
    # The residual spread estimates the noise that was added.
    assert fit.residual_std == pytest.approx(case.noise, rel=0.5)


def _repeated_fits(case: Case, draws: int, seed: int) -> tuple[list[ScalingFit], np.ndarray, np.ndarray]:
    """``draws`` fits to fresh noisy data, each with one fresh noisy observation at x_new."""
    rng = np.random.default_rng(seed)
    clean = case.law(case.x)
    new_true = float(np.asarray(case.law(case.x_new)).reshape(-1)[0])
    fits, new_obs = [], []
    for _ in range(draws):
        fits.append(case.fit(case.x, clean + rng.normal(0.0, case.noise, clean.size)))
        new_obs.append(new_true + rng.normal(0.0, case.noise))
    estimates = np.array([[f.coefficients[n] for n in case.truth] for f in fits])
    return fits, estimates, np.array(new_obs)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_standard_errors_and_prediction_bands_match_repeated_fits(case: Case) -> None:
    draws = 600
    fits, estimates, new_obs = _repeated_fits(case, draws, seed=7)
    # Reported standard errors ~ the empirical spread of the estimates. With 600 draws the
    # sample standard deviation is within ~6 % (2 sigma) of the truth; 15 % leaves room
    # for the delta-method approximation of the non-linear laws.
    empirical = estimates.std(axis=0, ddof=1)
    reported = np.array([[f.stderr[n] for n in case.truth] for f in fits]).mean(axis=0)
    np.testing.assert_allclose(reported, empirical, rtol=0.15)
    # The mean estimate is unbiased to within its own standard error (x 4).
    truth = np.array(list(case.truth.values()))
    assert np.all(np.abs(estimates.mean(axis=0) - truth) < 4 * empirical / math.sqrt(draws))
    # A q prediction band holds a new observation with probability ~q, up to 3.5 binomial
    # standard errors (3 % at q = 0.95, 6 % at q = 0.8). A band without the residual
    # variance misses these ranges for every law; the exact t quantile and parameter
    # term are pinned by the OLS comparison below.
    for q in (0.95, 0.8):
        covered = [not f.outside_band(case.x_new, y, confidence=q) for f, y in zip(fits, new_obs)]
        assert np.mean(covered) == pytest.approx(q, abs=3.5 * math.sqrt(q * (1 - q) / draws)), q


# ------------------------------------------------------------- R², adjusted R²


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_r2_and_adjusted_r2_match_the_hand_formula(case: Case) -> None:
    rng = np.random.default_rng(3)
    y = case.law(case.x) + rng.normal(0.0, case.noise, n_points(case))
    fit = case.fit(case.x, y)
    n, p = n_points(case), case.predictors
    residuals = y - fit.predict(case.x)
    r2 = 1.0 - np.sum(residuals**2) / np.sum((y - y.mean()) ** 2)
    adj = 1.0 - (1.0 - r2) * (n - 1) / (n - p - 1)
    assert fit.predictors == p
    assert fit.r2 == pytest.approx(r2, rel=1e-12)
    assert fit.adj_r2 == pytest.approx(adj, rel=1e-12)
    assert fit.adj_r2 < fit.r2 < 1.0
    assert fit.residual_std == pytest.approx(math.sqrt(np.sum(residuals**2) / (n - p - 1)), rel=1e-12)


def test_log_quadratic_agrees_with_polyfit_and_the_ols_formulas() -> None:
    rng = np.random.default_rng(11)
    y = log_quadratic(TOTAL_BITS) + rng.normal(0.0, 0.05, TOTAL_BITS.size)
    fit = fit_log_quadratic(TOTAL_BITS, y)
    u = np.log(TOTAL_BITS)
    a, b, c = np.polyfit(u, y, 2)
    assert (fit.a, fit.b, fit.c) == pytest.approx((a, b, c), rel=1e-7)
    # Ordinary least squares by hand: Cov = s^2 (X'X)^-1 and the prediction band
    # y0 +- t_{0.975, n-3} s sqrt(1 + x0' (X'X)^-1 x0).
    X = np.column_stack([u**2, u, np.ones_like(u)])
    n = u.size
    s2 = np.sum((y - X @ np.array([a, b, c])) ** 2) / (n - 3)
    xtx_inv = np.linalg.inv(X.T @ X)
    np.testing.assert_allclose(fit.covariance, s2 * xtx_inv, rtol=1e-5)
    assert list(fit.stderr.values()) == pytest.approx(np.sqrt(np.diag(s2 * xtx_inv)), rel=1e-5)
    B0 = np.array([1e7, 5e8, 3e10])
    x0 = np.column_stack([np.log(B0) ** 2, np.log(B0), np.ones(3)])
    half = scipy.stats.t.ppf(0.975, n - 3) * np.sqrt(s2 * (1.0 + np.einsum("ij,jk,ik->i", x0, xtx_inv, x0)))
    lower, upper = fit.prediction_interval(B0)
    np.testing.assert_allclose(lower, x0 @ [a, b, c] - half, rtol=1e-6)
    np.testing.assert_allclose(upper, x0 @ [a, b, c] + half, rtol=1e-6)


def test_log_quadratic_agrees_with_sklearn_linear_regression() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(12)
    y = log_quadratic(TOTAL_BITS) + rng.normal(0.0, 0.05, TOTAL_BITS.size)
    u = np.log(TOTAL_BITS)
    X = np.column_stack([u**2, u])
    reference = linear_model.LinearRegression().fit(X, y)
    fit = fit_log_quadratic(TOTAL_BITS, y)
    assert (fit.a, fit.b) == pytest.approx(tuple(reference.coef_), rel=1e-6)
    assert fit.c == pytest.approx(reference.intercept_, rel=1e-6)
    assert fit.r2 == pytest.approx(reference.score(X, y), rel=1e-9)


def test_constant_values_fit_exactly_with_undefined_r2() -> None:
    fit = fit_log_quadratic(TOTAL_BITS, np.full(TOTAL_BITS.size, 0.25))
    assert fit.predict(1e9) == pytest.approx(0.25, abs=1e-9)
    assert math.isnan(fit.r2) and math.isnan(fit.adj_r2)
    summary = fit.as_dict()
    assert summary["r2"] is None and summary["adj_r2"] is None
    json.dumps(summary, allow_nan=False)


# --------------------------------------------------------------- power-law ablation


def _ablation_data(seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Accuracy that depends on N and b_eff only (beta = gamma = 0), plus noise."""
    factors = paper_002_grid()
    truth = {"A": 0.05, "alpha": 0.06, "beta": 0.0, "gamma": 0.0, "delta": 0.5}
    rng = np.random.default_rng(seed)
    y = power_law(factors, truth) + rng.normal(0.0, 0.01, factors["model_size"].size)
    return factors, y


def test_ablation_fits_every_subset_and_ranks_the_true_factors() -> None:
    factors, y = _ablation_data(seed=5)
    rows = ablate_power_law(factors, y)
    assert len(rows) == 15
    assert len({r.factors for r in rows}) == 15
    by_factors = {r.factors: r for r in rows}
    for row in rows:
        assert row.fit is not None and row.error is None
        assert row.fit.predictors == len(row.factors)
        alone = fit_power_law({f: factors[f] for f in row.factors}, y)
        assert row.adj_r2 == pytest.approx(alone.adj_r2, rel=1e-9)
        # Least squares: adding a factor can never lower R^2.
        for extra in set(factors) - set(row.factors):
            bigger = tuple(f for f in scaling.POWER_LAW_FACTORS if f in row.factors or f == extra)
            assert by_factors[bigger].fit.r2 >= row.fit.r2 - 1e-9
    full = by_factors[("model_size", "calibration_size", "group_size", "effective_bits")]
    true_pair = by_factors[("model_size", "effective_bits")]
    # The factors that generated the data explain it as well as all four (adjusted R^2
    # charges the two useless exponents), and neither one alone comes close.
    assert true_pair.adj_r2 == pytest.approx(full.adj_r2, abs=2e-3)
    assert max(r.adj_r2 for r in rows) == pytest.approx(true_pair.adj_r2, abs=2e-3)
    assert by_factors[("model_size",)].adj_r2 < true_pair.adj_r2 - 0.1
    assert by_factors[("effective_bits",)].adj_r2 < true_pair.adj_r2 - 0.1
    assert abs(full.fit.beta) < 4 * full.fit.stderr["beta"]
    assert abs(full.fit.gamma) < 4 * full.fit.stderr["gamma"]


def test_ablation_takes_the_subsets_of_paper_002_table_1() -> None:
    factors, y = _ablation_data(seed=6)
    table_1 = [
        ["model_size", "effective_bits", "calibration_size", "group_size"],
        ["model_size", "effective_bits"],
        ["model_size", "effective_bits", "group_size"],
        ["model_size", "effective_bits", "calibration_size"],
    ]
    rows = ablate_power_law(factors, y, subsets=table_1)
    # Rows keep the order asked for; factors within a row follow the paper's order.
    assert [set(r.factors) for r in rows] == [set(s) for s in table_1]
    assert rows[1].factors == ("model_size", "effective_bits")
    assert all(r.fit is not None for r in rows)


def test_ablation_reports_a_subset_the_data_cannot_determine_as_not_fitted() -> None:
    factors, y = _ablation_data(seed=8)
    keep = factors["group_size"] == 128  # one group size: its exponent is unidentifiable
    subset = {k: v[keep] for k, v in factors.items()}
    rows = ablate_power_law(subset, y[keep])
    for row in rows:
        if "group_size" in row.factors:
            assert row.fit is None and math.isnan(row.adj_r2)
            assert "determine" in row.error
        else:
            assert row.fit is not None and row.error is None


# ------------------------------------------------------------------ the gate's band


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_a_point_far_off_the_law_is_outside_the_band_and_honest_points_inside(case: Case) -> None:
    rng = np.random.default_rng(99)
    fit = case.fit(case.x, case.law(case.x) + rng.normal(0.0, case.noise, n_points(case)))
    honest = float(np.asarray(case.law(case.x_new)).reshape(-1)[0])
    lower, upper = fit.prediction_interval(case.x_new)
    assert isinstance(lower, float) and lower < fit.predict(case.x_new) < upper
    assert not fit.outside_band(case.x_new, honest)
    worse = honest - 8 * case.noise
    better = honest + 8 * case.noise
    assert fit.outside_band(case.x_new, worse)
    assert fit.outside_band(case.x_new, worse, side="below")
    assert not fit.outside_band(case.x_new, worse, side="above")
    assert fit.outside_band(case.x_new, better, side="above")
    assert not fit.outside_band(case.x_new, better, side="below")
    # The band is wider at higher confidence.
    lo99, up99 = fit.prediction_interval(case.x_new, confidence=0.99)
    assert lo99 < lower and up99 > upper


def test_outside_band_flags_points_of_an_array_one_by_one() -> None:
    rng = np.random.default_rng(4)
    fit = fit_log_quadratic(TOTAL_BITS, log_quadratic(TOTAL_BITS) + rng.normal(0.0, 0.05, TOTAL_BITS.size))
    B = np.array([1e7, 1e8, 1e9, 1e10])
    observed = log_quadratic(B) + np.array([0.0, 0.6, 0.0, -0.6])
    np.testing.assert_array_equal(fit.outside_band(B, observed), [False, True, False, True])
    np.testing.assert_array_equal(fit.outside_band(B, observed, side="above"), [False, True, False, False])
    predicted = fit.predict(B)
    assert isinstance(predicted, np.ndarray) and predicted.shape == (4,)
    assert isinstance(fit.predict(1e8), float)


# ----------------------------------------------------------------- results.json


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_as_dict_is_json_and_carries_the_fit(case: Case) -> None:
    rng = np.random.default_rng(1)
    fit = case.fit(case.x, case.law(case.x) + rng.normal(0.0, case.noise, n_points(case)))
    summary = json.loads(json.dumps(fit.as_dict(), allow_nan=False))
    assert {"name", "form", "coefficients", "stderr", "r2", "adj_r2", "n"} <= set(summary)
    assert summary["coefficients"] == fit.coefficients
    assert summary["stderr"] == fit.stderr
    assert (summary["r2"], summary["adj_r2"], summary["n"]) == (fit.r2, fit.adj_r2, fit.n)
    assert summary["name"] == case.id or summary["name"].startswith(case.id)
    assert all(name in summary["form"] for name in case.truth)


def test_fit_name_is_settable_and_the_result_copies() -> None:
    fit = fit_log_quadratic(TOTAL_BITS, log_quadratic(TOTAL_BITS), name="kl_to_base vs total bits")
    assert fit.as_dict()["name"] == "kl_to_base vs total bits"
    clone = copy.deepcopy(fit)
    assert clone.a == fit.a and clone.predict(1e9) == fit.predict(1e9)
    with pytest.raises(AttributeError, match="alpha"):
        _ = fit.alpha


# ------------------------------------------------------------------- bad input


def test_too_few_points_says_how_many_are_needed() -> None:
    with pytest.raises(ValueError, match=r"^Expected at least 4 points to fit 3 coefficients, but got 3$"):
        fit_log_quadratic([1e6, 1e7, 1e8], [0.1, 0.2, 0.3])
    with pytest.raises(FitError, match="Expected at least 3 points to fit 2 coefficients, but got 2"):
        fit_block_size_law([16, 32], [0.1, 0.2])
    with pytest.raises(FitError, match="Expected at least 3 points to fit 2 coefficients, but got 2"):
        fit_quantization_ratio_law([0.5, 0.9], [1.0, 7.0])
    few = {k: v[:3] for k, v in paper_002_grid().items()}
    with pytest.raises(FitError, match="Expected at least 6 points to fit 5 coefficients, but got 3"):
        fit_power_law(few, np.ones(3))


@pytest.mark.parametrize(
    ("total_bits", "values", "message"),
    [
        ([1e6, np.nan, 1e8, 1e9], [1, 2, 3, 4], r"`total_bits` to be finite, but got 1 NaN"),
        ([1e6, 1e7, 1e8, 1e9], [1, 2, np.nan, 4], r"`values` to be finite, but got 1 NaN"),
        ([1e6, 1e7, 1e8, np.inf], [1, 2, 3, 4], r"`total_bits` to be finite"),
        ([0.0, 1e7, 1e8, 1e9], [1, 2, 3, 4], r"`total_bits` to be positive, but got values in \[0, 1e\+09\]"),
        ([-1e6, 1e7, 1e8, 1e9], [1, 2, 3, 4], r"`total_bits` to be positive"),
        ([1e6, 1e7, 1e8, 1e9], [1, 2, 3], r"`values` to have one value per point \(4\), but got 3"),
        ([[1e6, 1e7], [1e8, 1e9]], [1, 2, 3, 4], r"`total_bits` to be a scalar or a 1-D array"),
        (["a", "b", "c", "d"], [1, 2, 3, 4], r"`total_bits` to be numeric"),
    ],
)
def test_log_quadratic_rejects_bad_input(total_bits: Any, values: Any, message: str) -> None:
    with pytest.raises(ValueError, match="Expected " + message):
        fit_log_quadratic(total_bits, values)


def test_identical_total_bits_cannot_determine_the_curve() -> None:
    with pytest.raises(FitError, match="Expected the data to determine all 3 coefficients"):
        fit_log_quadratic([1e9] * 5, [0.1, 0.2, 0.3, 0.4, 0.5])


def test_power_law_rejects_bad_factors() -> None:
    grid = paper_002_grid()
    y = power_law(grid)
    valid = r"\['model_size', 'calibration_size', 'group_size', 'effective_bits'\]"
    with pytest.raises(ValueError, match=r"one or more of " + valid + r", but got \['bits'\]"):
        fit_power_law({"bits": grid["effective_bits"]}, y)
    with pytest.raises(ValueError, match="one or more of"):
        fit_power_law({}, y)
    with pytest.raises(ValueError, match=r"`calibration_size` to be greater than 1"):
        fit_power_law({**grid, "calibration_size": np.ones(y.size)}, y)
    with pytest.raises(ValueError, match=r"`model_size` to be positive"):
        fit_power_law({**grid, "model_size": -grid["model_size"]}, y)
    with pytest.raises(ValueError, match=r"every factor to have the same length, but got model_size: 383"):
        fit_power_law({**grid, "model_size": grid["model_size"][1:]}, y)
    with pytest.raises(ValueError, match=r"`values` to have one value per point \(384\), but got 383"):
        fit_power_law(grid, y[1:])
    with pytest.raises(ValueError, match=r"`group_size` to be finite"):
        fit_power_law({**grid, "group_size": np.where(grid["group_size"] == 64, np.nan, grid["group_size"])}, y)
    with pytest.raises(ValueError, match=r"each subset to be a non-empty selection"):
        ablate_power_law(grid, y, subsets=[["model_size", "bits"]])
    fit = fit_power_law({"model_size": grid["model_size"], "effective_bits": grid["effective_bits"]}, y)
    with pytest.raises(ValueError, match=r"exactly the factors \['model_size', 'effective_bits'\]"):
        fit.predict({"model_size": 1e9})


def test_paper_004_laws_reject_bad_input() -> None:
    with pytest.raises(
        ValueError, match=r"`max_quantization_ratio` to lie in \[0, 1\], but got values in \[0.5, 1.2\]"
    ):
        fit_quantization_ratio_law([0.5, 0.8, 1.2], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"`model_size` to be positive"):
        fit_quantization_ratio_law([0.5, 0.8, 0.9], [1.0, 0.0, 3.0])
    with pytest.raises(ValueError, match=r"`block_size` to be positive"):
        fit_block_size_law([0, 32, 64], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"`delta` to have one value per point \(3\), but got 2"):
        fit_block_size_law([16, 32, 64], [0.1, 0.2])


def test_band_arguments_are_checked() -> None:
    fit = fit_log_quadratic(TOTAL_BITS, log_quadratic(TOTAL_BITS))
    for confidence in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"`confidence` to lie strictly between 0 and 1"):
            fit.prediction_interval(1e9, confidence)
    with pytest.raises(ValueError, match=r"`side` to be one of"):
        fit.outside_band(1e9, 1.0, side="left")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`values` to be finite"):
        fit.outside_band(1e9, math.nan)
    with pytest.raises(ValueError, match=r"`values` to have the shape of the points"):
        fit.outside_band([1e8, 1e9], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"`total_bits` to be positive"):
        fit.predict(0.0)


# ------------------------------------------------------------------ module shape


def test_docstring_examples_hold() -> None:
    from pytest_qrel.scaling import fit as fit_module
    from pytest_qrel.scaling import laws

    attempted = failed = 0
    for module in (scaling, fit_module, laws):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        attempted, failed = attempted + result.attempted, failed + result.failed
    assert attempted >= 10
    assert failed == 0


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, obj in vars(scaling).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and getattr(obj, "__module__", "").startswith(scaling.__name__ + ".")
    }
    public.add("POWER_LAW_FACTORS")
    public.add("FitError")  # defined in pytest_qrel.errors with every exception, public here
    assert set(scaling.__all__) == public
    assert scaling.fit_log_quadratic is fit_log_quadratic
    assert list(inspect.signature(fit_log_quadratic).parameters)[:2] == ["total_bits", "values"]
