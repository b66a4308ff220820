"""Power before PASS (issue 15): a family-wise gate passes a metric only if its test could
have detected a harm of the threshold's size; and only what can fail may pass: degenerate
data (all answers wrong, all right, constant confidences, references nothing can match) give
*not checked* for every gated metric of every family property of the catalog, never PASS —
except the flip rate, which passes only on an exact bound (see below)."""

import numpy as np
import pytest
from scipy import stats

from pytest_qrel.measures import MEASURES, FamilyMeasure
from pytest_qrel.measures.choices import ChoiceScores
from pytest_qrel.measures.drift import hypotheses as choice_hypotheses
from pytest_qrel.measures.family import POWER, decide, judge, minimum_detectable_effect, paired_hypothesis
from pytest_qrel.measures.generation import QAScores
from pytest_qrel.measures.robustness import hypotheses as robust_hypotheses
from pytest_qrel.properties import CATALOG


def test_the_minimum_detectable_effect_has_the_power_it_claims():
    """Against scipy's noncentral t: a harm of the MDE is detected with probability POWER."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=50)
    h = paired_hypothesis("brier", base, base + rng.normal(0.05, 0.4, 50), 1.0)
    for level in (0.05, 0.05 / 30):
        mde = minimum_detectable_effect(h, level)
        critical = stats.t(h.df).ppf(1 - level / 2)
        shifted = stats.nct(h.df, mde / h.se)
        assert abs(shifted.sf(critical) + shifted.cdf(-critical) - POWER) < 0.01, level


def _one(key: str, base: np.ndarray, quant: np.ndarray, family_size: int = 30):
    h = paired_hypothesis(key, base, quant, 1.0)
    d = decide({("v", "t", key): h}, {key: 0.05}, {key: 0.05}, "holm")[("v", "t", key)]
    return judge(h, d, "holm", family_size, "--qrel-task-limit")


def test_too_few_questions_are_not_checked_with_the_sample_size_that_suffices():
    """Paired differences of spread 0.3 (and mean 0): with 8 questions no harm of 0.05 could be
    detected, and the message names the sample size; that many questions of the same spread
    are checked (the suggestion is computed with the smaller sample's larger t quantiles)."""
    spread = lambda n: 0.3 * (np.arange(n) % 2 * 2 - 1)  # noqa: E731 - +0.3, -0.3, ...
    base = np.random.default_rng(1).uniform(0, 1, 8)
    m = _one("brier", base, base + spread(8))
    assert m.unchecked and m.significant is False
    assert "with 8 samples the smallest harm this test detects at power 0.8" in m.unchecked
    needed = int(m.unchecked.rsplit(">= ", 1)[1].split()[0])
    big = np.random.default_rng(2).uniform(0, 1, needed)
    powered = _one("brier", big, big + spread(needed))
    assert not powered.unchecked and powered.detail["minimum_detectable"] <= 0.05


def test_a_significant_harm_fails_and_a_powered_small_change_passes():
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 1, 500)
    harmed = _one("brier", base, base + rng.normal(0.2, 0.1, 500))
    assert harmed.significant and not harmed.unchecked  # the session fails it: past the threshold, significant
    fine = _one("brier", base, base + rng.normal(0.0, 0.05, 500))
    assert not fine.unchecked and fine.detail["minimum_detectable"] < 0.05


# -- degenerate data: one generator per family property of the catalog -----------------------------

N = 200


def _choices(kind: str) -> ChoiceScores:
    labels = np.arange(N) % 4
    probs = np.full((N, 4), 0.25)
    if kind != "constant confidences":
        probs = np.full((N, 4), 0.1 / 3)
        target = labels if kind == "all right" else (labels + 1) % 4
        probs[np.arange(N), target] = 0.9
    return ChoiceScores(np.log(probs), np.ones((N, 4)), labels)


def _qa(kind: str, seed: int) -> QAScores:
    rng = np.random.default_rng(seed)
    correct = {"all wrong": np.zeros((N, 4), bool), "all right": np.ones((N, 4), bool),
               "constant confidences": rng.random((N, 4)) < 0.5,
               "references nothing can match": np.zeros((N, 4), bool)}[kind]
    entropy = np.full((N, 4), 1.0) if kind == "constant confidences" else rng.random((N, 4))
    return QAScores(correct, entropy, np.zeros(N), np.zeros(N), ("",) * N)


def _choice_family(kind: str, thresholds: dict[str, float]):
    return choice_hypotheses(_choices(kind), _choices(kind), flips_threshold=thresholds["flips"]), {}


def _robust_family(kind: str, thresholds: dict[str, float]):
    clean, perturbed = _qa(kind, 0), _qa(kind, 1)
    return robust_hypotheses(perturbed, perturbed, clean, clean, thresholds, seed=0)


FAMILIES = {"calibration": _choice_family, "confidence": _choice_family, "robustness": _robust_family}
KINDS = ("all wrong", "all right", "constant confidences", "references nothing can match")


def test_every_family_property_of_the_catalog_has_degenerate_data_here():
    family_props = {p.key for p in CATALOG if issubclass(MEASURES[p.key], FamilyMeasure)}
    assert family_props == set(FAMILIES)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("prop", sorted(FAMILIES))
def test_degenerate_data_is_not_checked_never_passed(prop, kind):
    spec = CATALOG[prop]
    # every metric gated: the defaults, and the optional flip-rate gate (--qrel-flips-threshold=0.1)
    thresholds = {k: v for p in CATALOG for k, v in p.default_thresholds().items()} | {"flips": 0.1}
    alpha = {m.key: m.alpha for p in CATALOG for m in p.metrics if m.alpha is not None}
    hyps, unchecked = FAMILIES[prop](kind, thresholds)
    family = {("v", "u", k): h for k, h in hyps.items()}
    decisions = decide(family, thresholds, alpha, "holm")
    for key in spec.keys:
        if key in unchecked:
            continue
        m = judge(hyps[key], decisions[("v", "u", key)], "holm", len(family), "--qrel-task-limit")
        if key == "flips":
            # The flip rate counts answers that change, and any of these data could show them (a
            # variant answering otherwise than an all-wrong base flips wrong -> right), so the same
            # answers on 200 questions are evidence: it passes, and only because its exact upper
            # bound at the family's strictest level rules a flip rate of its threshold out.
            assert not m.unchecked and m.detail["upper_bound"] < thresholds["flips"], (prop, kind, m)
            continue
        assert m.unchecked, (prop, kind, key, m)


@pytest.mark.parametrize("batch,batches", [(1, 1), (4, 3), (8, 2), (32, 20)])
def test_the_fuzzing_gates_power_matches_a_simulation(batch, batches):
    """A variant agreeing on 0.4 of its answers (0.1 below the required 0.5) is caught by one of
    ``batches`` batches of ``batch`` prompts about as often as fuzz_power says."""
    from pytest_qrel.measures.fuzz import fuzz_power

    rng = np.random.default_rng(0)
    agree = rng.random((20000, batches, batch)) < 0.4
    caught = (agree.mean(axis=2) < 0.5).any(axis=1).mean()
    assert abs(fuzz_power(batch, batches, 0.5) - caught) < 0.01
