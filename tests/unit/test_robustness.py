"""The robustness gates' hypotheses (paired t-test on per-prompt accuracy, paired bootstrap
for AUROC), what cannot be checked, and the robustness options."""

from pathlib import Path

import numpy as np
import pytest

from pytest_qrel.config import QrelConfig
from pytest_qrel.measures.family import decide, judge
from pytest_qrel.measures.generation import QAScores
from pytest_qrel.measures.robustness import MIN_CLASS_ANSWERS, hypotheses
from pytest_qrel.properties import ROBUSTNESS

THRESHOLD = {"accuracy": 0.05, "auroc": 0.05, "robust_accuracy": 0.05, "robust_auroc": 0.05}


def _scores(correct, entropy=None, seed=0):
    correct = np.asarray(correct, dtype=bool)
    rng = np.random.default_rng(seed)
    entropy = rng.random(correct.shape) + 0.8 * ~correct if entropy is None else entropy
    n = correct.shape[0]
    return QAScores(correct, entropy, np.zeros(n), np.zeros(n), ("x",) * n)


def _random(rate, n=200, s=4, seed=0):
    return np.random.default_rng(seed).random((n, s)) < rate


def test_a_variant_identical_to_its_base_has_no_harm():
    clean, pert = _scores(_random(0.5, seed=1), seed=1), _scores(_random(0.3, seed=2), seed=2)
    hyps, unchecked = hypotheses(pert, pert, clean, clean, THRESHOLD, seed=0)
    assert not unchecked and set(hyps) == set(ROBUSTNESS.keys)
    for h in hyps.values():
        assert h.value == 0.0 and h.pvalue == 1.0
    assert all(not d.failed for d in decide(hyps, THRESHOLD, dict.fromkeys(THRESHOLD, 0.05), "holm").values())


def test_a_variant_that_loses_every_perturbed_answer_fails_accuracy_and_robust_accuracy():
    base_clean, base = _scores(_random(0.5, seed=1), seed=1), _scores(_random(0.3, seed=2), seed=2)
    quant = _scores(np.zeros((200, 4), bool))
    hyps, unchecked = hypotheses(base, quant, base_clean, base_clean, THRESHOLD, seed=0)
    acc = hyps["accuracy"]
    assert acc.value == pytest.approx(base.correct.mean()) and acc.quant_value == 0.0 and acc.pvalue < 1e-10
    # it loses its whole perturbed accuracy where the base loses only the clean-perturbed gap
    expected = base_clean.correct.mean() - 0.0 - (base_clean.correct.mean() - base.correct.mean())
    assert hyps["robust_accuracy"].value == pytest.approx(expected)
    assert "auroc" in unchecked and f"at least {MIN_CLASS_ANSWERS} right" in unchecked["auroc"]
    decisions = decide(hyps, THRESHOLD, dict.fromkeys(THRESHOLD, 0.05), "holm")
    assert decisions["accuracy"].failed and decisions["robust_accuracy"].failed


def test_an_uninformative_entropy_fails_auroc():
    """Same answers, but the variant's entropy no longer tells right from wrong: AUROC drops
    from about 0.9 to about 0.5, significantly."""
    correct = _random(0.4, seed=3)
    base = _scores(correct, seed=3)
    quant = _scores(correct, entropy=np.random.default_rng(9).random(correct.shape))
    hyps, unchecked = hypotheses(base, quant, base, base, THRESHOLD, seed=0)
    assert not unchecked
    assert hyps["auroc"].value > 0.3 and hyps["auroc"].pvalue < 1e-6 and hyps["accuracy"].value == 0.0
    assert hyps["auroc"].base_value > 0.85 and abs(hyps["auroc"].quant_value - 0.5) < 0.1
    lo, hi = hyps["auroc"].ci
    assert lo <= hyps["auroc"].value <= hi


def test_a_gate_that_cannot_fail_is_unchecked_not_passed():
    # the base answers 2% right under the perturbation: no drop can pass a 0.05 threshold
    base = _scores(_random(0.02, seed=4), seed=4)
    hyps, unchecked = hypotheses(base, base, _scores(_random(0.5)), _scores(_random(0.5)), THRESHOLD, seed=0)
    assert "accuracy" in unchecked and "no drop could pass it" in unchecked["accuracy"]
    # the variant answers about half the unperturbed prompts right and the base loses about as
    # much under the perturbation: even losing every answer, the variant could not lose 0.05 more
    assert "even losing every answer the variant could not pass" in unchecked["robust_accuracy"]
    assert "accuracy" not in hyps and "robust_accuracy" not in hyps


def test_small_differences_are_noise_and_too_few_prompts_are_not_checked():
    """Ten prompts: a 0.1 drop is past the threshold but not significant, so it does not fail;
    and ten prompts could not have detected a drop of 0.05, so it is not checked either."""
    base_c = np.array([[1, 0]] * 5 + [[0, 1]] * 5, bool)
    quant_c = base_c.copy()
    quant_c[0, 0] = quant_c[5, 1] = False
    hyps, _ = hypotheses(_scores(base_c), _scores(quant_c), _scores(base_c), _scores(base_c), THRESHOLD, seed=0)
    d = decide(hyps, THRESHOLD, dict.fromkeys(THRESHOLD, 0.05), "holm")
    assert hyps["accuracy"].value == pytest.approx(0.1) and not d["accuracy"].failed
    m = judge(hyps["accuracy"], d["accuracy"], "holm", len(hyps), "--qrel-qa-limit")
    assert m.unchecked and "--qrel-qa-limit >= " in m.unchecked


def _config(tmp_path: Path, **values) -> QrelConfig:
    base = {"qrel_models": "zoo-xs", "qrel_no_cache": True}
    base.update({f"qrel_{k}": v for k, v in values.items()})
    return QrelConfig.from_values(base, tmp_path)


def test_robustness_defaults_and_values(tmp_path):
    r = _config(tmp_path).property_settings["robustness"]
    # the default matrix: the 15 perturbations at paper 000 Table 7's intensity; fuzzing 10 batches
    assert len(r.perturbations) == 15 and r.intensities == (4,) and r.qa_limit == 100 and r.fuzz_examples == 10
    assert (r.samples, r.temperature, r.max_new_tokens) == (4, 0.7, 20)
    assert r.threshold == THRESHOLD
    r = _config(tmp_path, perturbations="slang,emoji", intensities=[2, 8], qa_limit="all", temperature=0,
                robustness_threshold="auroc:0.1", alpha="robust_auroc:0.01").property_settings["robustness"]
    assert r.perturbations == ("slang", "emoji") and r.intensities == (2, 8) and r.qa_limit is None
    assert r.temperature == 0.0 and r.threshold["auroc"] == 0.1 and r.threshold["accuracy"] == 0.05
    assert _config(tmp_path, alpha="robust_auroc:0.01").alpha["robust_auroc"] == 0.01
    full = _config(tmp_path, robustness_full="true", qa_limit=10).property_settings["robustness"]
    assert full.qa_limit is None and full.intensities == (4, 16)  # paper 000's full matrix (App. B)
    assert _config(tmp_path, robustness_full="true", intensities="8").property_settings["robustness"].intensities == (8,)  # as named


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("perturbations", "typo", r"--qrel-perturbations: unknown perturbation 'typo'; valid: case_change, .*word_swap"),
        ("perturbations", "slang,slang", r"--qrel-perturbations: expected distinct perturbation names"),
        ("intensities", "0,4", r"--qrel-intensities: expected integers in \[1, 64\] \(edits per prompt\), but got '0,4'"),
        ("qa_limit", "1", r"--qrel-qa-limit: expected one integer >= 2, but got '1'"),
        ("samples", "0", r"--qrel-samples: expected one integer in \[1, 64\], but got '0'"),
        ("temperature", "-1", r"--qrel-temperature: expected one number in \[0, 5\], but got '-1'"),
        ("fuzz_agreement", "1.5", r"--qrel-fuzz-agreement: expected one number in \[0, 1\], but got '1.5'"),
        ("robustness_threshold", "acc:0.1", r"--qrel-robustness-threshold: unknown metric 'acc'; expected some of: accuracy"),
        ("robustness_full", "maybe", r"--qrel-robustness-full: expected true or false, but got 'maybe'"),
        ("insertion_model", "nowhere", r"--qrel-insertion-model: expected a local masked-LM directory with a config.json, but got .*nowhere"),
        ("qa_file", "missing.jsonl", r"--qrel-qa-file: Expected a JSONL dataset at .*missing.jsonl, but it does not exist"),
    ],
)
def test_bad_robustness_options_are_usage_errors(tmp_path, key, value, message):
    with pytest.raises(pytest.UsageError, match=message):
        _config(tmp_path, **{key: value})


def test_stratum_accuracy_is_each_strata_mean_over_its_prompts_answers():
    from pytest_qrel.measures.robustness import stratum_accuracy

    rng = np.random.default_rng(0)
    strata = ["recall", "utilization", "recall", "utilization_heldout", "recall"]

    def scores():
        correct = rng.random((5, 4)) < 0.5
        return QAScores(correct, np.zeros((5, 4)), np.zeros(5), np.zeros(5), ("a",) * 5)

    b, q = scores(), scores()
    out = stratum_accuracy(strata, base=b, quantized=q)
    assert list(out) == ["recall", "utilization", "utilization_heldout"]
    assert out["recall"] == {"prompts": 3, "base": b.correct[[0, 2, 4]].mean(), "quantized": q.correct[[0, 2, 4]].mean()}
    assert out["utilization_heldout"]["base"] == b.correct[3].mean()
