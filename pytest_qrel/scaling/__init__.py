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


from ..errors import FitError
from .fit import AblationRow, ScalingFit
from .laws import (
    POWER_LAW_FACTORS,
    ablate_power_law,
    fit_block_size_law,
    fit_log_quadratic,
    fit_power_law,
    fit_quantization_ratio_law,
)

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
